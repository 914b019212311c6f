/*
 * The MoE kernels' C interface, between their files:
 *   moe_sched.c  the task lists of a grouped GEMM (expert, row block, column block) and batches;
 *   moe.c        the grouped GEMMs (moe_impl.inc, once per element type) and the combine;
 *   moe_act.c    the activations (SwiGLU, GELU, GPT-OSS's clamped SwiGLU), their gradients, the
 *                expert bias pass, and the epilogues a GEMM applies to its output tiles;
 *   moe_fuse.c   row-block fusion (moe_fuse.h);
 *   moe_napi.c   the N-API exports: one options object each, checked, then the calls below.
 * Operands are type-erased (`f64`: double, else float); the exports check types and spans.
 */
#ifndef MOEKIT_MOE_H
#define MOEKIT_MOE_H

#include <stddef.h>
#include <stdint.h>

#include "kernel_util.h"

/* ---- task lists and batches (moe_sched.c) ---- */

#define MK_MOE_ROWS 0
#define MK_MOE_WGRAD 1

typedef struct {
  int64_t e, m0, m1, n0, n1;
  double cost;
} mk_moe_task;

/* qsort order of a task list: biggest first, then by (e, m0, n0). */
int mk_moe_task_cmp(const void *x, const void *y);

/* The task list of a grouped GEMM (mode MK_MOE_ROWS: M = each segment, N, K fixed; MK_MOE_WGRAD:
 * M, N fixed, K = each segment), unsorted, `head` bytes into a malloc'd block (room for the
 * caller's job: free the block, not the list, when head > 0). Returns the count (0: no list;
 * -1: out of memory). */
int64_t mk_moe_plan(int mode, int64_t E, const int32_t *seg, int64_t M, int64_t N, int64_t K, int mr, int nr, int mc,
                    int threads, size_t head, mk_moe_task **out);

/* Batches: between open and run, grouped GEMMs only queue their tasks (per thread). */
int mk_moe_batch_open(void);
/* Opens one (0), or -1 when one is open already. */
int mk_moe_batch_begin(void);
/* Queues the nt > 0 tasks of `job`, a malloc'd block the batch now owns (freed after the run
 * through its task 0). */
void mk_moe_batch_add(mk_task_fn fn, void *job, const mk_moe_task *tasks, int64_t nt);
/* Runs the queued tasks, biggest first, in one pool pass, and closes the batch. */
void mk_moe_batch_run(void);

/* ---- grouped GEMMs (moe.c) ---- */

/* What a rows GEMM applies to each output tile once it is final (moe_act.c has them). */
typedef enum { MK_EPI_NONE, MK_EPI_SWIGLU, MK_EPI_GELU } mk_moe_epilogue;

/* One grouped GEMM. Rows mode: c[r*ldc + j] (+)= scale[r] * a[row(r)*lda + :k] · op(B_e)[:, j]
 * for r in expert e's segment, row(r) = a_idx ? a_idx[r] : r, B_e = b + e*b_es stored [K, N]
 * (ldb) or, with b_trans, [N, K]; wgrad mode: C_e = c + e*c_es [M, N] (ldc) (+)=
 * Σ_{r in seg e} scale[r] a[arow(r)*lda + :M]ᵀ b[brow(r)*ldb + :N]. In rows mode b2 (laid out
 * like b) is either stacked along K (k_split > 0: op(B_e) rows p >= k_split are op(B2_e)'s rows
 * p - k_split) or, with epilogue SWIGLU, the up projection: c2 = a·op(B2_e) and h = swiglu(c, c2);
 * with epilogue GELU, h = gelu(c). With an epilogue c (and c2) may be NULL: not kept. */
typedef struct {
  int f64;
  const void *a;
  const int32_t *a_idx;
  const void *scale;
  int64_t lda;
  const void *b;
  const int32_t *b_idx;
  int64_t ldb, b_es;
  int b_trans;
  void *c;
  int64_t ldc, c_es;
  int accumulate;
  const int32_t *seg;
  int64_t M, N, K;
  const void *b2;
  int64_t k_split;
  void *c2, *h;
  int64_t ldh;
  mk_moe_epilogue epilogue;
  /* f32 calls without an epilogue: a / b (and b2) hold bf16 bit patterns (moe_bf16.h); c_half (wgrad,
   * not accumulating): c holds bf16, each f32 sum rounded once as its tile is final */
  int a_half, b_half, c_half;
} mk_moe_gemm;

/* Runs it on the pool, or queues it in an open batch / row fusion. Returns 0 or why not. */
const char *mk_moe_gemm_run(int mode, const mk_moe_gemm *g, int64_t E);

/* out[t, :] = Σ_k w[t*K + k] * y[row[t*K + k]*ldy, :] (row < 0 skipped, w NULL: 1), over the pool. */
void mk_moe_combine(int f64, const void *y, int64_t ldy, const int32_t *row, const void *w, int64_t T, int64_t K,
                    int64_t H, void *out);

/* ---- activations (moe_act.c) ---- */

typedef enum {
  MK_ACT_SWIGLU_FWD,
  MK_ACT_SWIGLU_BWD,
  MK_ACT_GELU_FWD,
  MK_ACT_GELU_BWD,
  MK_ACT_OSS_FWD, /* GPT-OSS: g = min(gate, limit), u = clamp(up, ±limit), h = (u + 1)·g·σ(alpha·g) */
  MK_ACT_OSS_BWD,
  MK_ACT_BIAS, /* dgu[r*ld + goff + q*cs] += bias[e(r)*bias_es + q], e(r) the expert of sorted row r */
} mk_moe_act_kind;

/* A row pass over `rows` rows. The pre-activations of row r: gate (GELU: the only one) at
 * gu[r*ld + goff + q*cs], up at gu[r*ld + uoff + q*cs], q < I. Forward: h [rows, I]. Backward:
 * with dh = w[r] * dy[r, q] (w NULL: 1), dgu gets the pre-activations' gradients in gu's layout
 * (may be gu), hout (may be dy, or NULL) the recomputed h, dw (or NULL) [rows] = <dy_r, h_r>. */
typedef struct {
  int f64;
  const void *gu;
  int64_t ld, goff, uoff, cs, I;
  void *h;
  const void *dy, *w;
  void *dgu, *hout, *dw;
  double limit, alpha;
  /* MK_ACT_BIAS: dgu is written in place; bias [E, bias_es], seg [E + 1] */
  const void *bias;
  int64_t bias_es, E;
  const int32_t *seg;
} mk_moe_act;

/* Runs the pass on the pool, or queues it as a stage of an open row fusion. Returns 0 or why not. */
const char *mk_moe_act_run(mk_moe_act_kind kind, const mk_moe_act *a, int64_t rows);

/* The tile epilogues of a gated / GELU GEMM: h[i*ldh + q] = act(g[i*ld + q], u[i*ld + q]), i < rows, q < n. */
typedef void (*mk_moe_tile_f32)(const float *g, const float *u, int64_t ld, float *h, int64_t ldh, int64_t rows,
                                int64_t n);
typedef void (*mk_moe_tile_f64)(const double *g, const double *u, int64_t ld, double *h, int64_t ldh, int64_t rows,
                                int64_t n);
mk_moe_tile_f32 mk_moe_epilogue_f32(mk_moe_epilogue e);
mk_moe_tile_f64 mk_moe_epilogue_f64(mk_moe_epilogue e);

#endif
