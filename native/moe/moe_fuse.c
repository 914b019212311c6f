/* Row-block fusion of the fused MoE kernels: see moe_fuse.h. */
#include "moe_fuse.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "threadpool.h"

/* Rows per block: a block's intermediates (e.g. the small config's gate/up gradients, 2 KiB a
 * row) and one expert's packed weights stay within a core's L2 ... */
#define FUSE_BLOCK_ROWS 128
/* ... and half that with weight-gradient stages, so each expert's packed weights and gradients
 * stay in L2 beside the block (docs/performance.md: native/moe/moe_fuse.c: FUSE_WGRAD_BLOCK_ROWS) */
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

void *mk_fuse_at(const mk_fuse_map *m, const void *p, size_t row_bytes, mk_fuse_access how, const char **err) {
  const uintptr_t a = (uintptr_t)p;
  for (int i = 0; i < m->n; i++) {
    const fuse_local *l = &m->loc[i];
    if (a < l->base || a >= l->base + l->bytes) continue;
    const char *why = how == MK_FUSE_GATHERED ? "a block-local array cannot be read through a row index"
                      : how == MK_FUSE_WHOLE
                          ? "a block-local array must be accessed by sorted row (not a weight or a weight gradient)"
                      : row_bytes != l->row_bytes
                          ? "a block-local array is accessed with a row length other than the one declared"
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

/* One block of a thread part: rows [r0, r1) of expert e; first: the part's first block of e;
 * own: e starts inside the part (else its weight-gradient terms go to the part's partial). */
typedef struct {
  int64_t e, r0, r1;
  int first, own;
} fuse_block;

typedef struct {
  const mk_fuse_stage *st;
  int ns, nw, threads;
  const int32_t *seg;
  int64_t E, S;
  int mr;
  int64_t block; /* rows per block (at most; block_rows) */
  /* per thread part: the partial gradients of the expert its rows start inside (shared_expert),
   * one [m, n] buffer per weight-gradient stage */
  void **partial;
  mk_fuse_cache *cache;  /* [threads * ns] */
  const fuse_local *loc; /* the block-local arrays */
  int nloc;
  /* The parts' blocks, part t's at [first_block[t], first_block[t + 1]). Its owner takes them
   * from the front; a thread done with its own part takes the last one left of a part whose
   * owner is still at work (queue[t]: front | back << 32). A taken block's weight-gradient
   * terms are kept apart (terms[b * nw + w]) and added after the run in block order, which
   * gives the sums bit for bit that the owner would have made (each block is one pass over K,
   * and a kernel adds its block's sum to what C holds). */
  fuse_block *blocks;
  int64_t *first_block;
  _Atomic uint64_t *queue;
  _Atomic int *started;
  void **terms;
  int steal;
  int64_t leave; /* blocks an owner leaves at the end of its part (MOEKIT_FUSE_STEAL) */
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

/* Part t's blocks, expert by expert, into out (NULL: only count them). */
static int64_t part_blocks(const fuse_run *f, int64_t t, fuse_block *out) {
  const int64_t lo = part_begin(f, t), hi = part_begin(f, t + 1);
  int64_t n = 0;
  for (int64_t e = 0; e < f->E; e++) {
    const int64_t a = f->seg[e] > lo ? f->seg[e] : lo, b = f->seg[e + 1] < hi ? f->seg[e + 1] : hi;
    if (a >= b) continue;
    const int64_t blk = block_rows(f, b - a);
    for (int64_t r0 = a; r0 < b; r0 += blk, n++)
      if (out) out[n] = (fuse_block){e, r0, r0 + blk < b ? r0 + blk : b, r0 == a, f->seg[e] >= lo};
  }
  return n;
}

/* The expert part t's rows start inside (its first block is not the expert's own), or -1. */
static int64_t shared_expert(const fuse_run *f, int64_t t) {
  const int64_t b = f->first_block[t];
  return b < f->first_block[t + 1] && !f->blocks[b].own ? f->blocks[b].e : -1;
}

/* One [m, n] buffer per weight-gradient stage, into out[0 .. nw). */
static void grad_buffers(const fuse_run *f, void **out) {
  for (int s = 0, w = 0; s < f->ns; s++)
    if (f->st[s].wgrad && !(out[w++] = malloc(f->st[s].elt * (size_t)(f->st[s].m * f->st[s].n)))) abort();
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

/* Runs every stage on block b of part t, with the caches of the thread's own part `self`; a
 * block taken from another part writes its weight-gradient terms to terms (nw buffers). */
static void run_block(const fuse_run *f, int64_t self, int64_t t, const fuse_block *b, void **terms, mk_fuse_map *map) {
  mk_fuse_cache *cache = &f->cache[self * f->ns];
  _Alignas(64) unsigned char copy[FUSE_MAX_JOB];
  int w = 0;
  map->r0 = b->r0;
  for (int s = 0; s < f->ns; s++) {
    const mk_fuse_stage *st = &f->st[s];
    void *job = st->job;
    if (f->nloc) { /* check_locals passed: relocating cannot fail */
      memcpy(copy, st->job, st->job_size);
      (void)st->relocate(copy, map);
      job = copy;
    }
    if (st->range) {
      st->range(job, b->r0, b->r1, 0);
    } else if (!st->wgrad) {
      st->gemm(job, b->e, b->r0, b->r1, NULL, 0, -1, &cache[s]);
    } else {
      if (terms)
        st->gemm(job, b->e, b->r0, b->r1, terms[w], st->n, 0, &cache[s]);
      else if (b->own)
        st->gemm(job, b->e, b->r0, b->r1, NULL, 0, b->first ? -1 : 1, &cache[s]);
      else
        st->gemm(job, b->e, b->r0, b->r1, f->partial[t * f->ns + w], st->n, !b->first, &cache[s]);
      w++;
    }
  }
}

static uint64_t queue_of(uint64_t front, uint64_t back) { return front | back << 32; }

/* Takes the front block of part t's queue (owner: unless only f->leave are left) or its last
 * one (thief) into *b. */
static int take_block(const fuse_run *f, int64_t t, int from_back, int64_t *b) {
  uint64_t q = atomic_load(&f->queue[t]);
  for (;;) {
    const uint64_t front = q & 0xFFFFFFFFu, back = q >> 32;
    if (front + (from_back ? 0 : (uint64_t)f->leave) >= back) return 0;
    const uint64_t next = from_back ? queue_of(front, back - 1) : queue_of(front + 1, back);
    if (atomic_compare_exchange_weak(&f->queue[t], &q, next)) {
      *b = (int64_t)(from_back ? back - 1 : front);
      return 1;
    }
  }
}

/* The started part (not self, unless owners leave blocks) with the most blocks left, or -1. */
static int64_t fullest_part(const fuse_run *f, int64_t self) {
  int64_t best = -1;
  uint64_t most = 0;
  for (int64_t t = 0; t < f->threads; t++) {
    if ((t == self && !f->leave) || !atomic_load(&f->started[t])) continue;
    const uint64_t q = atomic_load(&f->queue[t]), left = (q >> 32) - (q & 0xFFFFFFFFu); /* back >= front */
    if (left > most) most = left, best = t;
  }
  return best;
}

static void fuse_part(void *ctx, int64_t t, int tid) {
  (void)tid;
  const fuse_run *f = (const fuse_run *)ctx;
  char *buf[FUSE_MAX_LOCALS];
  local_buffers(f, buf);
  mk_fuse_map map = {f->loc, f->nloc, buf, 0};
  atomic_store(&f->started[t], 1);
  int64_t b;
  while (take_block(f, t, 0, &b)) run_block(f, t, t, &f->blocks[b], NULL, &map);
  for (int64_t v; f->steal && (v = fullest_part(f, t)) >= 0;) {
    if (!take_block(f, v, 1, &b)) continue;
    void **terms = f->nw ? &f->terms[b * f->nw] : NULL;
    if (terms) grad_buffers(f, terms);
    run_block(f, t, v, &f->blocks[b], terms, &map);
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

/* After the run, in part order: the terms of the blocks taken from part t (in block order, where
 * its owner would have added them), then t's partial into its shared expert. So the sums do not
 * depend on timing. Task `slice` of n does rows [m·slice/n, m·(slice+1)/n) of every sum. */
static void reduce_slice(void *ctx, int64_t slice, int tid) {
  (void)tid;
  const fuse_run *f = (const fuse_run *)ctx;
  const int64_t n = f->threads;
  for (int64_t t = 0; t < f->threads; t++) {
    const int64_t left = (int64_t)(atomic_load(&f->queue[t]) >> 32);
    for (int64_t b = left; b < f->first_block[t + 1]; b++) {
      const fuse_block *bk = &f->blocks[b];
      for (int s = 0, w = 0; s < f->ns; s++) {
        const mk_fuse_stage *st = &f->st[s];
        if (!st->wgrad) continue;
        st->reduce(st->job, bk->e, f->terms[b * f->nw + w], bk->own ? NULL : f->partial[t * f->ns + w], bk->first,
                   st->m * slice / n, st->m * (slice + 1) / n);
        w++;
      }
    }
    const int64_t shared = shared_expert(f, t);
    if (shared < 0) continue;
    for (int s = 0, w = 0; s < f->ns; s++) {
      const mk_fuse_stage *st = &f->st[s];
      if (st->wgrad)
        st->reduce(st->job, shared, f->partial[t * f->ns + w++], NULL, 0, st->m * slice / n, st->m * (slice + 1) / n);
    }
  }
}

/* Development knob MOEKIT_FUSE_STEAL: "0" turns taking blocks off (A/B measurements); N > 0
 * makes each owner leave its part's last N blocks to be taken from the back, by any thread, itself
 * included (tests: the results must not change, bit for bit). Returns whether to take blocks. */
static int steal_knob(int64_t *leave) {
  const char *v = getenv("MOEKIT_FUSE_STEAL");
  *leave = v && *v ? strtol(v, NULL, 10) : 0;
  if (*leave < 0) *leave = 0;
  return !(v && v[0] == '0' && v[1] == 0);
}

const char *mk_fuse_run(void) {
  const mk_fuse_stage *owner = seg_stage();
  if (!owner) {
    const int any = tl_fuse.n > 0;
    drop_stages();
    return any ? "a fusion needs at least one grouped GEMM (it gives the segments)" : 0;
  }
  int nw = 0, min_kc = INT32_MAX;
  for (int s = 0; s < tl_fuse.n; s++)
    if (tl_fuse.st[s].wgrad) {
      nw++;
      if (tl_fuse.st[s].kc < min_kc) min_kc = tl_fuse.st[s].kc;
    }
  fuse_run f = {.st = tl_fuse.st,
                .ns = tl_fuse.n,
                .nw = nw,
                .threads = mk_get_num_threads(),
                .seg = owner->seg,
                .E = owner->E,
                .S = owner->seg[owner->E],
                .mr = owner->mr,
                .block = nw ? FUSE_WGRAD_BLOCK_ROWS : FUSE_BLOCK_ROWS,
                .loc = tl_fuse.loc,
                .nloc = tl_fuse.nloc};
  /* a taken block's terms equal the owner's only if the block is one pass over K */
  f.steal = f.block + f.mr - 1 <= min_kc && steal_knob(&f.leave);
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
  const size_t T = (size_t)f.threads;
  f.partial = (void **)calloc(T * (size_t)f.ns, sizeof(void *));
  f.cache = (mk_fuse_cache *)malloc(sizeof(mk_fuse_cache) * T * (size_t)f.ns);
  f.first_block = (int64_t *)malloc(sizeof(int64_t) * (T + 1));
  f.queue = (_Atomic uint64_t *)malloc(sizeof(*f.queue) * T);
  f.started = (_Atomic int *)malloc(sizeof(*f.started) * T);
  if (!f.partial || !f.cache || !f.first_block || !f.queue || !f.started) abort();
  f.first_block[0] = 0;
  for (int t = 0; t < f.threads; t++) f.first_block[t + 1] = f.first_block[t] + part_blocks(&f, t, NULL);
  const int64_t nb = f.first_block[f.threads];
  f.blocks = (fuse_block *)malloc(sizeof(fuse_block) * (size_t)(nb > 0 ? nb : 1));
  f.terms = (void **)calloc((size_t)(nb > 0 ? nb : 1) * (size_t)(nw > 0 ? nw : 1), sizeof(void *));
  if (!f.blocks || !f.terms) abort();
  for (int i = 0; i < f.threads * f.ns; i++) f.cache[i] = (mk_fuse_cache){-1, NULL, 0};
  for (int t = 0; t < f.threads; t++) {
    (void)part_blocks(&f, t, f.blocks + f.first_block[t]);
    atomic_init(&f.queue[t], queue_of((uint64_t)f.first_block[t], (uint64_t)f.first_block[t + 1]));
    atomic_init(&f.started[t], 0);
    if (shared_expert(&f, t) >= 0) grad_buffers(&f, &f.partial[t * f.ns]);
  }
  if (f.S > 0) mk_parallel_for(f.threads, fuse_part, &f);
  if (nw) mk_parallel_for(f.threads, reduce_slice, &f);
  for (int64_t i = 0; i < f.first_block[f.threads] * nw; i++) free(f.terms[i]);
  for (int64_t i = 0; i < f.threads * f.ns; i++) free(f.partial[i]);
  for (int i = 0; i < f.threads * f.ns; i++) free(f.cache[i].buf);
  free(f.terms);
  free(f.blocks);
  free(f.started);
  free(f.queue);
  free(f.first_block);
  free(f.cache);
  free(f.partial);
  drop_stages();
  return 0;
}
