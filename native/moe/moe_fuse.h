/*
 * Row-block fusion of the MoE kernels (moe.h): between moeFuseBegin() and moeFuseRun()
 * a grouped GEMM over expert segments, or a row-wise pass, is queued as a stage instead of
 * run. The run splits the sorted rows [0, S) evenly over the pool's threads; each thread walks
 * its rows expert by expert in blocks of a few hundred rows and runs every stage, in queueing
 * order, on one block before the next, so what a stage writes for those rows is still in its
 * core's L2 when the next stage reads it (a whole backward's intermediates never go to memory
 * and back), and the threads meet once instead of once per pass.
 *
 * So each stage may read what earlier stages wrote only at the same rows. Rows-mode GEMMs and
 * row passes are row-local by construction; a weight-gradient GEMM sums over rows, so each
 * block adds into its expert's gradient, and a thread whose rows start inside an expert sums
 * that expert into a private buffer that is added in after the threads meet.
 *
 * Balancing: the host slows one core or the other at random, so a thread done with its part
 * takes the last block left of a part still at work (its owner takes blocks from the front).
 * A taken block's weight-gradient terms are written apart and added after the run, in block
 * order, where the owner would have added them: the sums are the same bit for bit whoever ran
 * which block (MOEKIT_FUSE_STEAL, moe_fuse.c, forces or turns it off for tests and A/B).
 *
 * Block-local arrays (mk_fuse_local): an intermediate that no stage reads outside the block
 * that wrote it (e.g. the fused SwiGLU node's h and dY·W_downᵀ) need not exist whole. Each thread keeps one block's
 * rows of it in a buffer of its own, which stays in its L2, and the array itself is never touched: a stage runs on a
 * copy of its job whose pointers its `relocate` rewrote (mk_fuse_at) to that buffer.
 */
#ifndef MOEKIT_MOE_FUSE_H
#define MOEKIT_MOE_FUSE_H

#include <stddef.h>
#include <stdint.h>

#include "kernel_util.h"

/* What a stage keeps from one block to the next within a thread's part: a rows GEMM, its
 * expert's packed weights (e: which expert's, -1 none yet). */
typedef struct {
  int64_t e;
  void *buf;
  size_t bytes;
} mk_fuse_cache;

/* Rows [r0, r1) of expert e, all of them inside e's segment. A weight-gradient stage writes
 * e's gradient to c (row stride ldc) when c is non-NULL, else to its own output, and adds to
 * what is there iff accumulate (-1: as the job says). */
typedef void (*mk_fuse_gemm_fn)(const void *job, int64_t e, int64_t r0, int64_t r1, void *c, int64_t ldc,
                                int accumulate, mk_fuse_cache *cache);
/* Adds rows [i0, i1) of the [m, n] buffer `terms` into dst ([m, n], contiguous) or, when dst is
 * NULL, into expert e's gradient. first: the terms are the first to arrive there, so they are
 * written instead of added (into the gradient: as the job's accumulate says). */
typedef void (*mk_fuse_reduce_fn)(const void *job, int64_t e, const void *terms, void *dst, int first, int64_t i0,
                                  int64_t i1);

/* How a stage reads or writes an array (mk_fuse_at): row r at p + r·row_bytes; at rows named by
 * an index; or not by sorted row at all (weights, weight gradients). */
typedef enum { MK_FUSE_ROWS, MK_FUSE_GATHERED, MK_FUSE_WHOLE } mk_fuse_access;

/* The block being run and where this thread keeps its block-local arrays' rows. */
typedef struct mk_fuse_map mk_fuse_map;

/* Where a stage's array p lives for the current block: p itself, unless p points into a
 * block-local array, then the matching place in this thread's buffer of it. A block-local array
 * accessed other than by sorted row with its declared row length sets *err (if not yet set). */
void *mk_fuse_at(const mk_fuse_map *m, const void *p, size_t row_bytes, mk_fuse_access how, const char **err);

/* Rewrites each array pointer of a copy of a stage's job through mk_fuse_at; returns *err. */
typedef const char *(*mk_fuse_relocate_fn)(void *job, const mk_fuse_map *m);

typedef struct {
  mk_fuse_gemm_fn gemm;         /* GEMM stages */
  mk_fuse_reduce_fn reduce;     /* weight-gradient stages only */
  mk_range_fn range;            /* row passes: range(job, r0, r1, 0) */
  void *job;                    /* malloc'd; the run frees it */
  size_t job_size;              /* bytes of *job (a block's relocated copy is that long) */
  mk_fuse_relocate_fn relocate; /* NULL: the stage cannot join a fusion with block-local arrays */
  int wgrad;
  int64_t m, n; /* weight-gradient stages: one expert's gradient */
  int64_t rows; /* row passes: their row count (the segments' total) */
  size_t elt;   /* element size */
  /* GEMM stages: the segments (all stages of one run share them), the kernel's MR and KC (a
   * weight-gradient block of at most KC rows is one pass over K) */
  const int32_t *seg;
  int64_t E;
  int mr, kc;
} mk_fuse_stage;

/* Whether a fusion is open on this thread. */
int mk_fuse_open(void);
/* Opens one (0), or returns -1 if one is open already. */
int mk_fuse_begin(void);
/* Queues a stage (the fusion owns stage->job now). Returns 0, or a message saying why the
 * stage cannot join (its segments differ from the other stages'); the stage is then dropped. */
const char *mk_fuse_add(const mk_fuse_stage *stage);
/* Declares [base, base + bytes) block-local for the open fusion, its rows row_bytes long:
 * stages see only the rows of the block they run on, and the array is left unwritten. Returns
 * 0, or why not (nothing is declared then). */
const char *mk_fuse_local(const void *base, size_t bytes, size_t row_bytes);
/* Runs and closes the open fusion. Returns 0, or a message (nothing ran, the stages are
 * dropped) when a row pass's row count is not the segments' total, no GEMM gave them, or a
 * stage reads a block-local array other than by sorted row. */
const char *mk_fuse_run(void);

#endif
