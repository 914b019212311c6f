/* Row-block fusion of the fused MoE kernels: see moe_fuse.h. */
#include "moe_fuse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "threadpool.h"

/* Rows per block: a block's intermediates (e.g. the small config's gate/up gradients, 2 KiB a
 * row) and one expert's packed weights stay within a core's L2 ... */
#define FUSE_BLOCK_ROWS 128
/* ... and half that with weight-gradient stages, so each expert's packed weights and gradients
 * stay in L2 beside the block. Per-step interleaved fwd+bwd against 128: small config 0.982-0.987
 * in 7 of 8 processes; experts of 768 KiB (d 128 x 640, 256 x 256) within 0.5% */
#define FUSE_WGRAD_BLOCK_ROWS 64
#define FUSE_MAX_STAGES 16
#define FUSE_MAX_LOCALS 8
/* bytes of a stage's job that a block's relocated copy can hold */
#define FUSE_MAX_JOB 512

typedef struct {
  uintptr_t base;
  size_t bytes, row_bytes;
} fuse_local;

static _Thread_local struct {
  int open, n, nloc;
  mk_fuse_stage st[FUSE_MAX_STAGES];
  fuse_local loc[FUSE_MAX_LOCALS];
} tl_fuse;

struct mk_fuse_map {
  const fuse_local *loc;
  int n;
  char *const *buf; /* this thread's buffer of each block-local array */
  int64_t r0;       /* the block's first row */
};

void *mk_fuse_at(const mk_fuse_map *m, const void *p, size_t row_bytes, mk_fuse_access how,
                 const char **err) {
  const uintptr_t a = (uintptr_t)p;
  for (int i = 0; i < m->n; i++) {
    const fuse_local *l = &m->loc[i];
    if (a < l->base || a >= l->base + l->bytes) continue;
    const char *why = how == MK_FUSE_GATHERED ? "a block-local array cannot be read through a row index"
                      : how == MK_FUSE_WHOLE  ? "a block-local array must be accessed by sorted row (not a weight or a weight gradient)"
                      : row_bytes != l->row_bytes ? "a block-local array is accessed with a row length other than the one declared"
                                                  : NULL;
    if (why) {
      if (!*err) *err = why;
      return (void *)p;
    }
    /* row r of the array -> row r - r0 of the buffer (unsigned arithmetic wraps as intended) */
    return (void *)((uintptr_t)m->buf[i] + (a - l->base) - (uintptr_t)m->r0 * row_bytes);
  }
  return (void *)p;
}

int mk_fuse_open(void) { return tl_fuse.open; }

int mk_fuse_begin(void) {
  if (tl_fuse.open) return -1;
  tl_fuse.open = 1;
  tl_fuse.n = 0;
  tl_fuse.nloc = 0;
  return 0;
}

static void drop_stages(void) {
  for (int i = 0; i < tl_fuse.n; i++) free(tl_fuse.st[i].job);
  tl_fuse.n = 0;
  tl_fuse.nloc = 0;
  tl_fuse.open = 0;
}

/* the first GEMM stage (the segments' owner), or NULL */
static const mk_fuse_stage *seg_stage(void) {
  for (int i = 0; i < tl_fuse.n; i++)
    if (tl_fuse.st[i].gemm) return &tl_fuse.st[i];
  return NULL;
}

const char *mk_fuse_add(const mk_fuse_stage *stage) {
  const mk_fuse_stage *first = stage->gemm ? seg_stage() : NULL;
  if (first && (first->E != stage->E || memcmp(first->seg, stage->seg, sizeof(int32_t) * (size_t)(stage->E + 1)))) {
    free(stage->job);
    return "a fused stage's seg must equal the other stages' (moeFuseBegin .. moeFuseRun)";
  }
  if (tl_fuse.n == FUSE_MAX_STAGES) {
    free(stage->job);
    return "too many stages in one fusion (moeFuseBegin .. moeFuseRun)";
  }
  if (stage->job_size > FUSE_MAX_JOB) abort(); /* the kernels' jobs are a few hundred bytes */
  tl_fuse.st[tl_fuse.n++] = *stage;
  return 0;
}

typedef struct {
  const mk_fuse_stage *st;
  int ns, threads;
  const int32_t *seg;
  int64_t E, S;
  int mr;
  int64_t block; /* rows per block (at most; block_rows) */
  /* per thread part: the expert its rows start inside (-1: none) and that expert's partial
   * gradients, one [m, n] buffer per weight-gradient stage */
  int64_t *shared_e;
  void **partial;
  mk_fuse_cache *cache; /* [threads * ns] */
  const fuse_local *loc; /* the block-local arrays */
  int nloc;
} fuse_run;

static int64_t part_begin(const fuse_run *f, int64_t t) { return f->S * t / f->threads; }

/* Block size <= f->block splitting n evenly, a multiple of mr where it can be (so at most
 * f->block + mr - 1). */
static int64_t block_rows(const fuse_run *f, int64_t n) {
  const int mr = f->mr;
  if (n <= f->block) return n;
  int64_t nb = (n + f->block - 1) / f->block;
  int64_t b = (n + nb - 1) / nb;
  return (b + mr - 1) / mr * mr;
}

/* Room for a block's rows of block-local array i, in whole cache lines. */
static size_t local_bytes(const fuse_run *f, int i) {
  return ((size_t)(f->block + f->mr) * f->loc[i].row_bytes + 63) / 64 * 64;
}

/* This thread's buffers of the block-local arrays: one grow-only arena per thread, so a step's
 * fusions find them at the same (cached) addresses. */
static void local_buffers(const fuse_run *f, char **buf) {
  static _Thread_local char *arena = NULL;
  static _Thread_local size_t cap = 0;
  size_t need = 0;
  for (int i = 0; i < f->nloc; i++) need += local_bytes(f, i);
  if (need > cap) {
    free(arena);
    arena = (char *)aligned_alloc(64, need);
    if (!arena) abort();
    cap = need;
  }
  size_t off = 0;
  for (int i = 0; i < f->nloc; i++) {
    buf[i] = arena + off;
    off += local_bytes(f, i);
  }
}

static void fuse_part(void *ctx, int64_t t, int tid) {
  (void)tid;
  const fuse_run *f = (const fuse_run *)ctx;
  const int64_t lo = part_begin(f, t), hi = part_begin(f, t + 1);
  mk_fuse_cache *cache = &f->cache[t * f->ns];
  char *buf[FUSE_MAX_LOCALS];
  local_buffers(f, buf);
  mk_fuse_map map = {f->loc, f->nloc, buf, 0};
  _Alignas(64) unsigned char copy[FUSE_MAX_JOB];
  for (int64_t e = 0; e < f->E; e++) {
    const int64_t a = f->seg[e] > lo ? f->seg[e] : lo, b = f->seg[e + 1] < hi ? f->seg[e + 1] : hi;
    if (a >= b) continue;
    const int own = f->seg[e] >= lo;
    const int64_t blk = block_rows(f, b - a);
    for (int64_t r0 = a; r0 < b; r0 += blk) {
      const int64_t r1 = r0 + blk < b ? r0 + blk : b;
      int w = 0;
      map.r0 = r0;
      for (int s = 0; s < f->ns; s++) {
        const mk_fuse_stage *st = &f->st[s];
        void *job = st->job;
        if (f->nloc) { /* check_locals passed: relocating cannot fail */
          memcpy(copy, st->job, st->job_size);
          (void)st->relocate(copy, &map);
          job = copy;
        }
        if (st->range) {
          st->range(job, r0, r1, 0);
        } else if (!st->wgrad) {
          st->gemm(job, e, r0, r1, NULL, 0, -1, &cache[s]);
        } else {
          const int first = r0 == a;
          if (own) st->gemm(job, e, r0, r1, NULL, 0, first ? -1 : 1, &cache[s]);
          else st->gemm(job, e, r0, r1, f->partial[t * f->ns + w], st->n, !first, &cache[s]);
          w++;
        }
      }
    }
  }
}

const char *mk_fuse_local(const void *base, size_t bytes, size_t row_bytes) {
  if (tl_fuse.nloc == FUSE_MAX_LOCALS) return "too many block-local arrays in one fusion";
  if (row_bytes == 0 || bytes < row_bytes) return "a block-local array must hold at least one row";
  const uintptr_t a = (uintptr_t)base;
  for (int i = 0; i < tl_fuse.nloc; i++) {
    const fuse_local *l = &tl_fuse.loc[i];
    if (a < l->base + l->bytes && l->base < a + bytes) return "block-local arrays must not overlap";
  }
  tl_fuse.loc[tl_fuse.nloc++] = (fuse_local){a, bytes, row_bytes};
  return 0;
}

/* Whether every stage reaches the block-local arrays only by sorted row (an identity map: each
 * array's buffer is the array itself, so the stages' copies are only checked). */
static const char *check_locals(void) {
  char *self[FUSE_MAX_LOCALS];
  for (int i = 0; i < tl_fuse.nloc; i++) self[i] = (char *)tl_fuse.loc[i].base;
  const mk_fuse_map m = {tl_fuse.loc, tl_fuse.nloc, self, 0};
  for (int s = 0; s < tl_fuse.n && tl_fuse.nloc; s++) {
    const mk_fuse_stage *st = &tl_fuse.st[s];
    if (!st->relocate) return "a stage of a fusion with block-local arrays cannot relocate its arrays";
    _Alignas(64) unsigned char copy[FUSE_MAX_JOB];
    memcpy(copy, st->job, st->job_size);
    const char *err = st->relocate(copy, &m);
    if (err) return err;
  }
  return 0;
}

const char *mk_fuse_run(void) {
  const mk_fuse_stage *owner = seg_stage();
  if (!owner) {
    const int any = tl_fuse.n > 0;
    drop_stages();
    return any ? "a fusion needs at least one grouped GEMM (it gives the segments)" : 0;
  }
  int wgrad = 0;
  for (int s = 0; s < tl_fuse.n; s++) wgrad |= tl_fuse.st[s].wgrad;
  fuse_run f = {.st = tl_fuse.st, .ns = tl_fuse.n, .threads = mk_get_num_threads(), .seg = owner->seg,
                .E = owner->E, .S = owner->seg[owner->E], .mr = owner->mr,
                .block = wgrad ? FUSE_WGRAD_BLOCK_ROWS : FUSE_BLOCK_ROWS, .loc = tl_fuse.loc, .nloc = tl_fuse.nloc};
  for (int s = 0; s < f.ns; s++)
    if (f.st[s].range && f.st[s].rows != f.S) {
      drop_stages();
      return "a fused row pass must cover the segments' rows (its s is not seg[E])";
    }
  const char *bad = check_locals();
  if (bad) {
    drop_stages();
    return bad;
  }
  if (f.threads > f.S) f.threads = f.S > 0 ? (int)f.S : 1;
  /* experts with no rows: their gradients are written here (zeros, unless accumulating) */
  for (int s = 0; s < f.ns; s++)
    if (f.st[s].wgrad)
      for (int64_t e = 0; e < f.E; e++)
        if (f.seg[e] == f.seg[e + 1]) {
          mk_fuse_cache none = {-1, NULL, 0};
          f.st[s].gemm(f.st[s].job, e, f.seg[e], f.seg[e], NULL, 0, -1, &none);
        }
  f.shared_e = (int64_t *)malloc(sizeof(int64_t) * (size_t)f.threads);
  f.partial = (void **)calloc((size_t)f.threads * (size_t)f.ns, sizeof(void *));
  f.cache = (mk_fuse_cache *)malloc(sizeof(mk_fuse_cache) * (size_t)f.threads * (size_t)f.ns);
  if (!f.shared_e || !f.partial || !f.cache) abort();
  for (int i = 0; i < f.threads * f.ns; i++) f.cache[i] = (mk_fuse_cache){-1, NULL, 0};
  for (int t = 0; t < f.threads; t++) {
    const int64_t lo = part_begin(&f, t), hi = part_begin(&f, t + 1);
    f.shared_e[t] = -1;
    for (int64_t e = 0; e < f.E && lo < hi; e++)
      if (f.seg[e] < lo && f.seg[e + 1] > lo) f.shared_e[t] = e;
    if (f.shared_e[t] < 0) continue;
    int w = 0;
    for (int s = 0; s < f.ns; s++)
      if (f.st[s].wgrad) {
        void *p = malloc(f.st[s].elt * (size_t)(f.st[s].m * f.st[s].n));
        if (!p) abort();
        f.partial[t * f.ns + w++] = p;
      }
  }
  if (f.S > 0) mk_parallel_for(f.threads, fuse_part, &f);
  /* in part order, so the sums do not depend on timing */
  for (int t = 0; t < f.threads; t++) {
    if (f.shared_e[t] < 0) continue;
    int w = 0;
    for (int s = 0; s < f.ns; s++)
      if (f.st[s].wgrad) {
        void *p = f.partial[t * f.ns + w++];
        f.st[s].reduce(f.st[s].job, f.shared_e[t], p);
        free(p);
      }
  }
  for (int i = 0; i < f.threads * f.ns; i++) free(f.cache[i].buf);
  free(f.cache);
  free(f.partial);
  free(f.shared_e);
  drop_stages();
  return 0;
}
