/*
 * Fused Mixture-of-Experts kernels (src/moe/fused/ drives them). JS exports:
 *
 *   moeGemmRows(a, aIdx, scale, lda, b, bTrans, bExpertStride, ldb, seg, c, ldc, n, k, accumulate)
 *     For every expert e and row r in [seg[e], seg[e+1]):
 *       c[r*ldc + j] (+)= sum_p scale[r] * a[row(r)*lda + p] * op(B_e)[p, j]   (j < n, p < k)
 *     row(r) = aIdx ? aIdx[r] : r; scale may be null (1); B_e = b + e*bExpertStride, op(B_e)
 *     is B_e [k, n] (ldb) or, with bTrans, B_e stored [n, k] (ldb).
 *   moeGemmRowsStackedK(a, aIdx, scale, lda, b, b2, kSplit, bTrans, bExpertStride, ldb, seg, c, ldc, n, k, accumulate)
 *     moeGemmRows with op(B_e) stacked along K from two matrices of one layout: its rows
 *     p < kSplit are op(B_e)'s, the rest op(B2_e)'s rows p - kSplit (e.g. dX = [dG dU]·[Wg; Wu]
 *     in one pass instead of a second, accumulating one).
 *   moeGemmWgrad(a, aIdx, scale, lda, b, bIdx, ldb, seg, c, m, n, accumulate)
 *     For every expert e (C_e = c + e*m*n, [m, n] row-major):
 *       C_e[i, j] (+)= sum_{r in seg e} scale[r] * a[arow(r)*lda + i] * b[brow(r)*ldb + j]
 *     i.e. the weight gradient X_eᵀ·G_e with the rows gathered on the fly; written directly
 *     (an empty expert gets zeros unless accumulating).
 *   moeSwigluForward(gu, ld, gateOff, upOff, colStride, s, i, h)
 *     h[r, q] = silu(g) * u, g = gu[r*ld + gateOff + q*colStride], u likewise with upOff.
 *   moeSwigluBackward(gu, ld, gateOff, upOff, colStride, s, i, dy, w, dgu, hout, dw)
 *     with dh = w[r] * dy[r, q] (w may be null): dgu gets dg / du in gu's layout (dgu may be
 *     gu), hout (may be dy, or null) the recomputed h, dw (or null) [s] = <dy_r, h_r>.
 *   moeGemmSwiglu(a, aIdx, lda, bGate, bUp, bTrans, bExpertStride, ldb, seg, gu, ldgu, upOff, h, i, k)
 *     The gated first GEMM of a SwiGLU expert: for rows r of expert e (as moeGemmRows, no scale)
 *       gu[r*ldgu + j] = a_r · op(Gate_e)[:, j],  gu[r*ldgu + upOff + j] = a_r · op(Up_e)[:, j],
 *       h[r*i + j] = silu(gate) * up                                         (j < i, p < k)
 *     with Gate_e / Up_e laid out as moeGemmRows's B_e. One pass: A is packed once for both
 *     products and the gate is applied to each output tile while it is in L1. gu may be null
 *     (then ldgu and upOff are ignored): only h is written, each task's gate / up tiles kept
 *     in a buffer of its thread (inference: no [S, 2i] array).
 *   moeCombine(y, ldy, row, w, t, k, h, out)
 *     out[t, :] = sum_k w[t*k + k'] * y[row[t*k + k'] * ldy, :]; row < 0 = dropped slot,
 *     w may be null (1). Threads over tokens, so no two tasks write one row.
 *   moeBatchBegin(), moeBatchRun()
 *     Between the two, moeGemmRows / moeGemmRowsStackedK / moeGemmWgrad / moeGemmSwiglu only
 *     queue their work (their arguments must stay alive and unchanged until moeBatchRun);
 *     moeBatchRun runs all of it in one pass over the thread pool. The queued GEMMs must not
 *     depend on each other's outputs.
 *   moeFuseBegin(), moeFuseRun()
 *     Between the two, the grouped GEMMs and moeSwigluForward / moeSwigluBackward queue as stages
 *     of a row fusion (moe_fuse.h), which moeFuseRun runs block of rows by block of rows: a
 *     stage may read what an earlier one wrote at the same rows only. All GEMM stages share one
 *     seg; moeCombine (not row-local) throws inside a fusion. Arguments must stay alive and
 *     unchanged until moeFuseRun.
 *   moeFuseLocal(a, rowElems)
 *     Inside a fusion: a (rows of rowElems elements) is block-local, an intermediate no stage
 *     reads outside the block of rows that wrote it. Each thread keeps one block's rows of it in
 *     a buffer of its own and a is left unwritten; moeFuseRun throws if a stage reads it other
 *     than by sorted row (through an index, as a weight) or with another row length.
 * Float arguments are all Float32Array or all Float64Array; indices Int32Array.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"
#include "cpu.h"
#include "gemm_kernels.h"
#include "kernel_util.h"
#include "moe_fuse.h"

#define MK_MOE_ROWS 0
#define MK_MOE_WGRAD 1
#define MK_MOE_MAX_MR 16
#define MK_MOE_MAX_NR 64
#define MAX_DIM ((int64_t)1 << 40)

typedef struct {
  int64_t e, m0, m1, n0, n1;
  double cost;
} mk_moe_task;

static int task_cmp(const void *x, const void *y) {
  const mk_moe_task *a = (const mk_moe_task *)x, *b = (const mk_moe_task *)y;
  if (a->cost != b->cost) return a->cost > b->cost ? -1 : 1;
  if (a->e != b->e) return a->e < b->e ? -1 : 1;
  if (a->m0 != b->m0) return a->m0 < b->m0 ? -1 : 1;
  return a->n0 < b->n0 ? -1 : a->n0 > b->n0;
}

/* Block size <= blk, a multiple of unit, splitting n evenly. */
static int64_t even_block(int64_t n, int64_t blk, int64_t unit) {
  if (n <= blk) return n;
  int64_t nb = (n + blk - 1) / blk;
  int64_t b = (n + nb - 1) / nb;
  return (b + unit - 1) / unit * unit;
}

static int64_t count_tasks(int mode, int64_t E, const int32_t *seg, int64_t M, int64_t N, int64_t mb, int64_t nb,
                           int mr, int nr) {
  int64_t total = 0, ncols = (N + even_block(N, nb, nr) - 1) / even_block(N, nb, nr);
  for (int64_t e = 0; e < E; e++) {
    int64_t rows = mode == MK_MOE_ROWS ? seg[e + 1] - seg[e] : M;
    if (rows <= 0) continue;
    int64_t b = even_block(rows, mb, mr);
    total += (rows + b - 1) / b * ncols;
  }
  return total;
}

/* The task list: (expert, row block, column block), unsorted (the runner sorts it, or a
 * batch sorts all its jobs' tasks together). It starts `head` bytes into a malloc'd block, the
 * room for the caller's job (a batch keeps job and list in one block); free the block, not
 * the list, when head > 0. Returns the count (0: no list). */
static int64_t mk_moe_plan(int mode, int64_t E, const int32_t *seg, int64_t M, int64_t N, int64_t K, int mr, int nr,
                           int mc, int threads, size_t head, mk_moe_task **out) {
  *out = NULL;
  if (N <= 0) return 0;
  /* Row blocks start large: every task of an expert packs that expert's B block again, so
   * fewer, taller tasks pack less and run faster than blocks of 2·mc
   * (docs/performance.md: native/moe/moe.c: mk_moe_plan); the loop below splits them when
   * there are too few tasks to balance. */
  int64_t mb = 4 * (int64_t)mc, nb = 512;
  nb = nb / nr * nr;
  if (nb < nr) nb = nr;
  int64_t want = 4 * (int64_t)threads;
  while (threads > 1 && count_tasks(mode, E, seg, M, N, mb, nb, mr, nr) < want) {
    if (nb > 4 * nr && nb >= 128)
      nb = (nb / 2 + nr - 1) / nr * nr;
    else if (mb > 2 * mr)
      mb = (mb / 2 + mr - 1) / mr * mr;
    else
      break;
  }
  int64_t nt = count_tasks(mode, E, seg, M, N, mb, nb, mr, nr);
  if (nt == 0) return 0;
  char *block = (char *)malloc(head + sizeof(mk_moe_task) * (size_t)nt);
  if (!block) return -1;
  mk_moe_task *t = (mk_moe_task *)(block + head);
  const int64_t nbs = even_block(N, nb, nr);
  int64_t k = 0;
  for (int64_t e = 0; e < E; e++) {
    const int64_t seglen = seg[e + 1] - seg[e];
    const int64_t rows = mode == MK_MOE_ROWS ? seglen : M;
    if (rows <= 0) continue;
    const int64_t kk = mode == MK_MOE_ROWS ? K : seglen;
    const int64_t mbs = even_block(rows, mb, mr);
    for (int64_t m0 = 0; m0 < rows; m0 += mbs)
      for (int64_t n0 = 0; n0 < N; n0 += nbs) {
        int64_t m1 = m0 + mbs < rows ? m0 + mbs : rows, n1 = n0 + nbs < N ? n0 + nbs : N;
        t[k++] = (mk_moe_task){e, m0, m1, n0, n1, (double)(m1 - m0) * (n1 - n0) * (kk + 8)};
      }
  }
  *out = t;
  return nt;
}

/* ---- batches: independent grouped GEMMs in one pool run -----------------------------------
 * Between moeBatchBegin() and moeBatchRun() a grouped-GEMM call only plans its job; the run
 * takes the tasks of all of them, biggest first, in one mk_parallel_for: one wait for the
 * slowest thread instead of one per GEMM, and the small tasks of one GEMM fill the other
 * threads' gaps in another's. Per thread (a Node worker may run kernels of its own). */
typedef struct {
  mk_task_fn fn;
  void *job;
  int64_t task;
  double cost;
  int64_t seq; /* queueing order, the tie-break */
} mk_moe_batch_task;

static _Thread_local struct {
  int open;
  mk_moe_batch_task *tasks;
  int64_t n, cap;
} tl_batch;

static int mk_moe_batch_open(void) { return tl_batch.open; }

/* Queues the nt > 0 tasks of `job`, a malloc'd block the batch now owns (freed after the run
 * through its task 0). */
static void mk_moe_batch_add(mk_task_fn fn, void *job, const mk_moe_task *tasks, int64_t nt) {
  if (tl_batch.n + nt > tl_batch.cap) {
    while (tl_batch.n + nt > tl_batch.cap) tl_batch.cap = tl_batch.cap ? 2 * tl_batch.cap : 256;
    tl_batch.tasks = (mk_moe_batch_task *)realloc(tl_batch.tasks, sizeof *tl_batch.tasks * (size_t)tl_batch.cap);
    if (!tl_batch.tasks) abort();
  }
  for (int64_t i = 0; i < nt; i++, tl_batch.n++)
    tl_batch.tasks[tl_batch.n] = (mk_moe_batch_task){fn, job, i, tasks[i].cost, tl_batch.n};
}

static int batch_task_cmp(const void *x, const void *y) {
  const mk_moe_batch_task *a = (const mk_moe_batch_task *)x, *b = (const mk_moe_batch_task *)y;
  if (a->cost != b->cost) return a->cost > b->cost ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void batch_task(void *ctx, int64_t t, int tid) {
  const mk_moe_batch_task *bt = &((const mk_moe_batch_task *)ctx)[t];
  bt->fn(bt->job, bt->task, tid);
}

static void mk_moe_batch_run(void) {
  tl_batch.open = 0;
  qsort(tl_batch.tasks, (size_t)tl_batch.n, sizeof *tl_batch.tasks, batch_task_cmp);
  if (tl_batch.n > 0) mk_parallel_for(tl_batch.n, batch_task, tl_batch.tasks);
  for (int64_t i = 0; i < tl_batch.n; i++)
    if (tl_batch.tasks[i].task == 0) free(tl_batch.tasks[i].job);
  tl_batch.n = 0;
}

/* ---- AVX-512 f32 packs (pack_avx512.h) ------------------------------------------------
 * Used when the job's fast_pack is set (f32, AVX-512 kernels with MR <= 16, NR = 32). */
#if defined(__x86_64__)
#include "pack_avx512.h"

/* development knob: MOEKIT_MOE_FAST_PACK=0 keeps the scalar packs (A/B measurements) */
static int moe_fast_pack_enabled(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("MOEKIT_MOE_FAST_PACK");
    v = !(e && e[0] == '0');
  }
  return v;
}
#define MOE_FAST_PACKS 1
#elif defined(__aarch64__)
#include "pack_neon.h"
#define MOE_NEON_PACKS 1
#endif

#define T float
#define SFX f32
#define KERNEL_T mk_kernel_f32
#define UKR_T mk_ukr_f32
#define GET_KERNEL mk_gemm_kernel_f32
#include "moe_impl.inc"
#undef T
#undef SFX
#undef KERNEL_T
#undef UKR_T
#undef GET_KERNEL
#undef MOE_FAST_PACKS
#undef MOE_NEON_PACKS

/* the AVX-512 packs serve f32 jobs whose kernel they fit (pack_avx512.h) */
static int fast_packs_apply(const mk_kernel_f32 *kr) {
#if defined(__x86_64__)
  return moe_fast_pack_enabled() && mk_pack_avx512_fits(kr);
#elif defined(__aarch64__)
  return mk_pack_neon_fits(kr);
#else
  (void)kr;
  return 0;
#endif
}

#define T double
#define SFX f64
#define KERNEL_T mk_kernel_f64
#define UKR_T mk_ukr_f64
#define GET_KERNEL mk_gemm_kernel_f64
#include "moe_impl.inc"
#undef T
#undef SFX
#undef KERNEL_T
#undef UKR_T
#undef GET_KERNEL

/* ---- AVX-512 SwiGLU rows for f32 with contiguous gate / up columns ---------------- */
#if defined(__x86_64__)
#include <immintrin.h>
#define A512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))

/* sigmoid(x) = 1 / (1 + e^-x), e^y by Cephes expf's range reduction + polynomial (|rel err|
 * ~1e-7 in float); the input is clamped to |y| <= 88 so nothing overflows. The reciprocal is
 * rcp14 refined by one Newton step (rel err ~2^-28): Zen 4 issues a 512-bit divide once per
 * ~5 cycles, and it bounded the SwiGLU passes (docs/performance.md: native/moe/moe.c: sigmoid16). */
static A512 inline __m512 sigmoid16(__m512 x) {
  __m512 y = _mm512_sub_ps(_mm512_setzero_ps(), x);
  y = _mm512_max_ps(_mm512_min_ps(y, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-88.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(y, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), y);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
  __m512 e = _mm512_scalef_ps(p, n);
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
  const __m512 q = _mm512_rcp14_ps(d);
  return _mm512_fmadd_ps(q, _mm512_fnmadd_ps(d, q, _mm512_set1_ps(1.0f)), q);
}

static A512 void swiglu_fwd_row_f32(const float *g, const float *u, float *h, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 gv = _mm512_loadu_ps(g + i);
    _mm512_storeu_ps(h + i, _mm512_mul_ps(_mm512_mul_ps(gv, sigmoid16(gv)), _mm512_loadu_ps(u + i)));
  }
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
    _mm512_mask_storeu_ps(h + i, m, _mm512_mul_ps(_mm512_mul_ps(gv, sigmoid16(gv)), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

/* one row of the SwiGLU backward (see moeSwigluBackward); returns <dy, h>. Warms the gate/up
 * values pf elements ahead (a later row's): in a training step they were written by the forward
 * long before and come from L3 or memory, and a row's ~250 cycles of work are less than the
 * wait (no hardware prefetcher runs that far ahead on two interleaved streams). */
static A512 double swiglu_bwd_row_f32(const float *g, const float *u, const float *dy, float wr, float *dg, float *du,
                                      float *ho, int64_t n, int64_t pf) {
  __m512 dot = _mm512_setzero_ps();
  const __m512 one = _mm512_set1_ps(1.0f), w = _mm512_set1_ps(wr);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
    __m512 dyv = _mm512_maskz_loadu_ps(m, dy + i);
    _mm_prefetch((const char *)(g + i + pf), _MM_HINT_T0); /* never faults, even past the end */
    _mm_prefetch((const char *)(u + i + pf), _MM_HINT_T0);
    __m512 sg = sigmoid16(gv);
    __m512 s = _mm512_mul_ps(gv, sg);
    __m512 hv = _mm512_mul_ps(s, uv);
    dot = _mm512_fmadd_ps(dyv, hv, dot);
    __m512 dh = _mm512_mul_ps(w, dyv);
    /* silu'(g) = sg * (1 + g * (1 - sg)) */
    __m512 ds = _mm512_mul_ps(sg, _mm512_fmadd_ps(gv, _mm512_sub_ps(one, sg), one));
    _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(dh, uv), ds));
    _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(dh, s));
    if (ho) _mm512_mask_storeu_ps(ho + i, m, hv);
  }
  return (double)_mm512_reduce_add_ps(dot);
}

/* the SwiGLU epilogue of a gated GEMM tile: one call per tile, so the core overlaps the rows'
 * sigmoid chains (docs/performance.md: native/moe/moe.c: swiglu_fwd_tile_f32) */
static A512 void swiglu_fwd_tile_f32(const float *g, const float *u, int64_t ld, float *h, int64_t ldh, int64_t rows,
                                     int64_t n) {
  if (n == 32) { /* a whole tile row is two vectors: no masks, one loop the core can overlap */
    for (int64_t i = 0; i < rows; i++)
      for (int v = 0; v < 32; v += 16) {
        const __m512 gv = _mm512_loadu_ps(g + i * ld + v);
        _mm512_storeu_ps(h + i * ldh + v,
                         _mm512_mul_ps(_mm512_mul_ps(gv, sigmoid16(gv)), _mm512_loadu_ps(u + i * ld + v)));
      }
    return;
  }
  for (int64_t i = 0; i < rows; i++) swiglu_fwd_row_f32(g + i * ld, u + i * ld, h + i * ldh, n);
}

static void swiglu_fwd_rows_f32_avx512(void *p, int64_t b, int64_t e, int64_t task) {
  (void)task;
  const mk_moe_f32_act *a = (const mk_moe_f32_act *)p;
  for (int64_t r = b; r < e; r++)
    swiglu_fwd_row_f32(a->gu + r * a->ld + a->goff, a->gu + r * a->ld + a->uoff, a->h + r * a->I, a->I);
}

/* how many rows ahead matters little; prefetching at all pays
 * (docs/performance.md: native/moe/moe.c: SWIGLU_BWD_PREFETCH_ROWS) */
#define SWIGLU_BWD_PREFETCH_ROWS 4
static void swiglu_bwd_rows_f32_avx512(void *p, int64_t b, int64_t e, int64_t task) {
  (void)task;
  const mk_moe_f32_act *a = (const mk_moe_f32_act *)p;
  for (int64_t r = b; r < e; r++) {
    double d = swiglu_bwd_row_f32(a->gu + r * a->ld + a->goff, a->gu + r * a->ld + a->uoff, a->dy + r * a->I,
                                  a->w ? a->w[r] : 1.0f, a->dgu + r * a->ld + a->goff, a->dgu + r * a->ld + a->uoff,
                                  a->hout ? a->hout + r * a->I : NULL, a->I, SWIGLU_BWD_PREFETCH_ROWS * a->ld);
    if (a->dw) a->dw[r] = (float)d;
  }
}
#endif

/* the f32 SwiGLU row functions to use for this layout */
static mk_range_fn swiglu_f32_fn(int backward, int64_t cs) {
#if defined(__x86_64__)
  if (cs == 1 && mk_cpu_isa() == MK_ISA_AVX512)
    return backward ? swiglu_bwd_rows_f32_avx512 : swiglu_fwd_rows_f32_avx512;
#endif
  (void)cs;
  return backward ? mk_moe_f32_swiglu_bwd_rows : mk_moe_f32_swiglu_fwd_rows;
}

/* the f32 SwiGLU epilogue of a gated GEMM tile */
static mk_moe_f32_glu_fn swiglu_f32_tile(void) {
#if defined(__x86_64__)
  if (mk_cpu_isa() == MK_ISA_AVX512) return swiglu_fwd_tile_f32;
#endif
  return mk_moe_f32_swiglu_tile;
}

/* Builds and runs one grouped-GEMM job of a's element type from a designated-initialiser list
 * written once for both types: in it `mk_elt` names the element type and `swiglu_tile` that
 * type's SwiGLU epilogue. f32 jobs take the AVX-512 packs where they apply. */
#define MK_UNUSED __attribute__((unused))
#define RUN_MOE_JOB(a, E, ...)                                                   \
  do {                                                                           \
    const char *err_ = NULL;                                                     \
    if ((a).type == napi_float32_array) {                                        \
      typedef float mk_elt MK_UNUSED;                                            \
      const mk_moe_f32_glu_fn swiglu_tile MK_UNUSED = swiglu_f32_tile();         \
      mk_moe_f32_job j_ = {.kr = mk_gemm_kernel_f32(mk_cpu_isa()), __VA_ARGS__}; \
      j_.fast_pack = fast_packs_apply(j_.kr);                                    \
      err_ = mk_moe_f32_run(&j_, (E));                                           \
    } else {                                                                     \
      typedef double mk_elt MK_UNUSED;                                           \
      const mk_moe_f64_glu_fn swiglu_tile MK_UNUSED = mk_moe_f64_swiglu_tile;    \
      mk_moe_f64_job j_ = {.kr = mk_gemm_kernel_f64(mk_cpu_isa()), __VA_ARGS__}; \
      err_ = mk_moe_f64_run(&j_, (E));                                           \
    }                                                                            \
    if (err_) return mk_throw_error(env, "%s", err_);                            \
  } while (0)

/* ---- N-API ---------------------------------------------------------------- */

static int arg_float_like(napi_env env, napi_value v, const char *what, const mk_typed *like, int nullable,
                          mk_typed *out) {
  if (nullable) {
    if (!mk_arg_float_or_null(env, v, what, out)) return 0;
    if (!out->data) return 1;
  } else if (!mk_napi_float_array(env, v, what, out)) {
    return 0;
  }
  return !like || mk_arg_same_type(env, out, like, what, "the other float arguments");
}

static int arg_i32_or_null(napi_env env, napi_value v, const char *what, mk_typed *out) {
  napi_valuetype vt;
  napi_typeof(env, v, &vt);
  if (vt == napi_null || vt == napi_undefined) {
    out->data = NULL;
    out->length = 0;
    out->type = napi_int32_array;
    return 1;
  }
  return mk_arg_i32(env, v, what, out);
}

/* at least n elements (n <= 0: anything) */
static int need(napi_env env, const mk_typed *t, int64_t n, const char *what) {
  return n <= 0 || mk_arg_len(env, t, n, what);
}

/* seg: E+1 non-decreasing offsets from 0; returns E (or -1 after throwing). */
static int64_t check_seg(napi_env env, const mk_typed *seg, const char *fn) {
  const int32_t *s = (const int32_t *)seg->data;
  if (seg->length < 1 || s[0] != 0) {
    mk_throw_range(env, "%s: seg must start at 0 and hold E+1 offsets", fn);
    return -1;
  }
  for (size_t e = 1; e < seg->length; e++)
    if (s[e] < s[e - 1]) {
      mk_throw_range(env, "%s: seg must be non-decreasing (seg[%zu] = %d < %d)", fn, e, s[e], s[e - 1]);
      return -1;
    }
  return (int64_t)seg->length - 1;
}

/* Max of idx[0..n) (checked >= 0), or n-1 without idx; -2 after throwing. */
static int64_t max_row(napi_env env, const mk_typed *idx, int64_t n, const char *what) {
  if (!idx->data) return n - 1;
  if (!need(env, idx, n, what)) return -2;
  const int32_t *p = (const int32_t *)idx->data;
  int64_t m = -1;
  for (int64_t i = 0; i < n; i++) {
    if (p[i] < 0) {
      mk_throw_range(env, "%s[%lld] = %d is negative", what, (long long)i, p[i]);
      return -2;
    }
    if (p[i] > m) m = p[i];
  }
  return m;
}

/* moeGemmRows, and with `stacked` moeGemmRowsStackedK: b2, kSplit follow b in the arguments */
static napi_value moe_gemm_rows_common(napi_env env, napi_callback_info info, const char *fn, int stacked) {
  napi_value argv[16];
  mk_typed a, aidx, scale, b, b2 = {0}, seg, c;
  int64_t lda, ks = 0, bes, ldb, ldc, n, k;
  int btrans, acc;
  char w[96];
#define AN(what) (snprintf(w, sizeof w, "%s: %s", fn, what), w)
  const int o = stacked ? 2 : 0;
  if (!mk_napi_args(env, info, 14 + o, argv, fn) || !arg_float_like(env, argv[0], AN("a"), NULL, 0, &a) ||
      !arg_i32_or_null(env, argv[1], AN("aIdx"), &aidx) || !arg_float_like(env, argv[2], AN("scale"), &a, 1, &scale) ||
      !mk_napi_i64(env, argv[3], AN("lda"), 0, MAX_DIM, &lda) || !arg_float_like(env, argv[4], AN("b"), &a, 0, &b) ||
      (stacked && (!arg_float_like(env, argv[5], AN("b2"), &a, 0, &b2) ||
                   !mk_napi_i64(env, argv[6], AN("kSplit"), 0, MAX_DIM, &ks))) ||
      !mk_napi_bool(env, argv[5 + o], AN("bTrans"), &btrans) ||
      !mk_napi_i64(env, argv[6 + o], AN("bExpertStride"), 0, MAX_DIM, &bes) ||
      !mk_napi_i64(env, argv[7 + o], AN("ldb"), 0, MAX_DIM, &ldb) || !mk_arg_i32(env, argv[8 + o], AN("seg"), &seg) ||
      !arg_float_like(env, argv[9 + o], AN("c"), &a, 0, &c) ||
      !mk_napi_i64(env, argv[10 + o], AN("ldc"), 0, MAX_DIM, &ldc) ||
      !mk_napi_i64(env, argv[11 + o], AN("n"), 0, MAX_DIM, &n) ||
      !mk_napi_i64(env, argv[12 + o], AN("k"), 0, MAX_DIM, &k) ||
      !mk_napi_bool(env, argv[13 + o], AN("accumulate"), &acc))
    return NULL;
  int64_t E = check_seg(env, &seg, fn);
  if (E < 0) return NULL;
  const int64_t S = ((const int32_t *)seg.data)[E];
  if (stacked && (ks < 1 || ks >= k))
    return mk_throw_range(env, "%s: kSplit is %lld, must be in [1, k) = [1, %lld)", fn, (long long)ks, (long long)k);
  if (S == 0 || n == 0) return mk_napi_undefined(env);
  const int64_t kb = stacked ? (ks > k - ks ? ks : k - ks) : k; /* op(B) rows of the longer part */
  if (ldc < n || lda < k || ldb < (btrans ? kb : n)) return mk_throw_range(env, "%s: leading dimensions too small", fn);
  int64_t mr = max_row(env, &aidx, S, AN("aIdx"));
  if (mr == -2) return NULL;
    /* elements of B_e's layout holding kk rows of op(B_e) */
#define BSPAN(kk) (E > 0 && (kk) ? (E - 1) * bes + (btrans ? (n - 1) * ldb + (kk) : ((kk)-1) * ldb + n) : 0)
  if (!need(env, &a, k ? mr * lda + k : 0, AN("a")) || (scale.data && !need(env, &scale, S, AN("scale"))) ||
      !need(env, &b, BSPAN(stacked ? ks : k), AN("b")) || (stacked && !need(env, &b2, BSPAN(k - ks), AN("b2"))) ||
      !need(env, &c, (S - 1) * ldc + n, AN("c")))
    return NULL;
#undef BSPAN
#undef AN
  RUN_MOE_JOB(a, E, .mode = MK_MOE_ROWS, .a = a.data, .a_idx = aidx.data, .scale = scale.data, .lda = lda, .b = b.data,
              .ldb = ldb, .b_es = bes, .b_trans = btrans, .c = c.data, .ldc = ldc, .accumulate = acc, .seg = seg.data,
              .N = n, .K = k, .b2 = b2.data, .k_split = ks);
  return mk_napi_undefined(env);
}

static napi_value moe_gemm_rows(napi_env env, napi_callback_info info) {
  return moe_gemm_rows_common(env, info, "moeGemmRows", 0);
}

static napi_value moe_gemm_rows_stacked_k(napi_env env, napi_callback_info info) {
  return moe_gemm_rows_common(env, info, "moeGemmRowsStackedK", 1);
}

static napi_value moe_gemm_swiglu(napi_env env, napi_callback_info info) {
  napi_value argv[15];
  mk_typed a, aidx, bg, bu, seg, gu, h;
  int64_t lda, bes, ldb, ldgu, uoff, n, k;
  int btrans;
  if (!mk_napi_args(env, info, 15, argv, "moeGemmSwiglu") ||
      !arg_float_like(env, argv[0], "moeGemmSwiglu: a", NULL, 0, &a) ||
      !arg_i32_or_null(env, argv[1], "moeGemmSwiglu: aIdx", &aidx) ||
      !mk_napi_i64(env, argv[2], "moeGemmSwiglu: lda", 0, MAX_DIM, &lda) ||
      !arg_float_like(env, argv[3], "moeGemmSwiglu: bGate", &a, 0, &bg) ||
      !arg_float_like(env, argv[4], "moeGemmSwiglu: bUp", &a, 0, &bu) ||
      !mk_napi_bool(env, argv[5], "moeGemmSwiglu: bTrans", &btrans) ||
      !mk_napi_i64(env, argv[6], "moeGemmSwiglu: bExpertStride", 0, MAX_DIM, &bes) ||
      !mk_napi_i64(env, argv[7], "moeGemmSwiglu: ldb", 0, MAX_DIM, &ldb) ||
      !mk_arg_i32(env, argv[8], "moeGemmSwiglu: seg", &seg) ||
      !arg_float_like(env, argv[9], "moeGemmSwiglu: gu", &a, 1, &gu) ||
      !mk_napi_i64(env, argv[10], "moeGemmSwiglu: ldgu", 0, MAX_DIM, &ldgu) ||
      !mk_napi_i64(env, argv[11], "moeGemmSwiglu: upOff", 0, MAX_DIM, &uoff) ||
      !arg_float_like(env, argv[12], "moeGemmSwiglu: h", &a, 0, &h) ||
      !mk_napi_i64(env, argv[13], "moeGemmSwiglu: i", 0, MAX_DIM, &n) ||
      !mk_napi_i64(env, argv[14], "moeGemmSwiglu: k", 0, MAX_DIM, &k))
    return NULL;
  int64_t E = check_seg(env, &seg, "moeGemmSwiglu");
  if (E < 0) return NULL;
  const int64_t S = ((const int32_t *)seg.data)[E];
  if (S == 0 || n == 0) return mk_napi_undefined(env);
  if (gu.data && (uoff < n || ldgu < uoff + n))
    return mk_throw_range(env,
                          "moeGemmSwiglu: the up columns [upOff, upOff + i) must follow the gate columns [0, i) within "
                          "ldgu (upOff %lld, i %lld, ldgu %lld)",
                          (long long)uoff, (long long)n, (long long)ldgu);
  if (lda < k || ldb < (btrans ? k : n)) return mk_throw_range(env, "moeGemmSwiglu: leading dimensions too small");
  int64_t mr = max_row(env, &aidx, S, "moeGemmSwiglu: aIdx");
  if (mr == -2) return NULL;
  const int64_t bspan = E > 0 && k ? (E - 1) * bes + (btrans ? (n - 1) * ldb + k : (k - 1) * ldb + n) : 0;
  if (!need(env, &a, k ? mr * lda + k : 0, "moeGemmSwiglu: a") || !need(env, &bg, bspan, "moeGemmSwiglu: bGate") ||
      !need(env, &bu, bspan, "moeGemmSwiglu: bUp") ||
      (gu.data && !need(env, &gu, (S - 1) * ldgu + uoff + n, "moeGemmSwiglu: gu")) ||
      !need(env, &h, S * n, "moeGemmSwiglu: h"))
    return NULL;
  RUN_MOE_JOB(a, E, .mode = MK_MOE_ROWS, .a = a.data, .a_idx = aidx.data, .lda = lda, .b = bg.data, .ldb = ldb,
              .b_es = bes, .b_trans = btrans, .c = gu.data, .ldc = ldgu, .seg = seg.data, .N = n, .K = k, .b2 = bu.data,
              .c2 = gu.data ? (mk_elt *)gu.data + uoff : NULL, .h = h.data, .ldh = n, .glu = swiglu_tile);
  return mk_napi_undefined(env);
}

static napi_value moe_gemm_wgrad(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  mk_typed a, aidx, scale, b, bidx, seg, c;
  int64_t lda, ldb, m, n;
  int acc;
  if (!mk_napi_args(env, info, 12, argv, "moeGemmWgrad") ||
      !arg_float_like(env, argv[0], "moeGemmWgrad: a", NULL, 0, &a) ||
      !arg_i32_or_null(env, argv[1], "moeGemmWgrad: aIdx", &aidx) ||
      !arg_float_like(env, argv[2], "moeGemmWgrad: scale", &a, 1, &scale) ||
      !mk_napi_i64(env, argv[3], "moeGemmWgrad: lda", 0, MAX_DIM, &lda) ||
      !arg_float_like(env, argv[4], "moeGemmWgrad: b", &a, 0, &b) ||
      !arg_i32_or_null(env, argv[5], "moeGemmWgrad: bIdx", &bidx) ||
      !mk_napi_i64(env, argv[6], "moeGemmWgrad: ldb", 0, MAX_DIM, &ldb) ||
      !mk_arg_i32(env, argv[7], "moeGemmWgrad: seg", &seg) ||
      !arg_float_like(env, argv[8], "moeGemmWgrad: c", &a, 0, &c) ||
      !mk_napi_i64(env, argv[9], "moeGemmWgrad: m", 0, MAX_DIM, &m) ||
      !mk_napi_i64(env, argv[10], "moeGemmWgrad: n", 0, MAX_DIM, &n) ||
      !mk_napi_bool(env, argv[11], "moeGemmWgrad: accumulate", &acc))
    return NULL;
  int64_t E = check_seg(env, &seg, "moeGemmWgrad");
  if (E < 0) return NULL;
  const int64_t S = ((const int32_t *)seg.data)[E];
  if (m == 0 || n == 0 || E == 0) return mk_napi_undefined(env);
  if (lda < m || ldb < n) return mk_throw_range(env, "moeGemmWgrad: leading dimensions too small");
  int64_t ma = max_row(env, &aidx, S, "moeGemmWgrad: aIdx");
  if (ma == -2) return NULL;
  int64_t mb = max_row(env, &bidx, S, "moeGemmWgrad: bIdx");
  if (mb == -2) return NULL;
  if ((S > 0 && !need(env, &a, ma * lda + m, "moeGemmWgrad: a")) ||
      (S > 0 && !need(env, &b, mb * ldb + n, "moeGemmWgrad: b")) ||
      (scale.data && !need(env, &scale, S, "moeGemmWgrad: scale")) || !need(env, &c, E * m * n, "moeGemmWgrad: c"))
    return NULL;
  RUN_MOE_JOB(a, E, .mode = MK_MOE_WGRAD, .a = a.data, .a_idx = aidx.data, .scale = scale.data, .lda = lda, .b = b.data,
              .b_idx = bidx.data, .ldb = ldb, .c = c.data, .ldc = n, .c_es = m * n, .accumulate = acc, .seg = seg.data,
              .M = m, .N = n);
  return mk_napi_undefined(env);
}

/* gu layout arguments shared by the SwiGLU exports; checks gu's span. */
static int act_layout(napi_env env, napi_value *argv, const mk_typed *gu, const char *fn, int64_t *ld, int64_t *goff,
                      int64_t *uoff, int64_t *cs, int64_t *s, int64_t *i) {
  char w[64];
#define ARG(ix, name, out) (snprintf(w, sizeof w, "%s: %s", fn, name), mk_napi_i64(env, argv[ix], w, 0, MAX_DIM, out))
  if (!ARG(1, "ld", ld) || !ARG(2, "gateOff", goff) || !ARG(3, "upOff", uoff) || !ARG(4, "colStride", cs) ||
      !ARG(5, "s", s) || !ARG(6, "i", i))
    return 0;
#undef ARG
  if (*s > 0 && *i > 0) {
    int64_t last = (*goff > *uoff ? *goff : *uoff) + (*i - 1) * *cs;
    if (last >= *ld) {
      mk_throw_range(env, "%s: gate/up columns run past ld", fn);
      return 0;
    }
    snprintf(w, sizeof w, "%s: gu", fn);
    return need(env, gu, (*s - 1) * *ld + last + 1, w);
  }
  return 1;
}

static napi_value moe_swiglu_forward(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  mk_typed gu, h;
  int64_t ld, goff, uoff, cs, s, i;
  if (!mk_napi_args(env, info, 8, argv, "moeSwigluForward") ||
      !arg_float_like(env, argv[0], "moeSwigluForward: gu", NULL, 0, &gu) ||
      !act_layout(env, argv, &gu, "moeSwigluForward", &ld, &goff, &uoff, &cs, &s, &i) ||
      !arg_float_like(env, argv[7], "moeSwigluForward: h", &gu, 0, &h) || !need(env, &h, s * i, "moeSwigluForward: h"))
    return NULL;
  const char *err = NULL;
  if (gu.type == napi_float32_array) {
    mk_moe_f32_act a = {gu.data, ld, goff, uoff, cs, i, h.data, NULL, NULL, NULL, NULL, NULL};
    err = mk_moe_f32_run_act(swiglu_f32_fn(0, cs), &a, s, 8 * i);
  } else {
    mk_moe_f64_act a = {gu.data, ld, goff, uoff, cs, i, h.data, NULL, NULL, NULL, NULL, NULL};
    err = mk_moe_f64_run_act(mk_moe_f64_swiglu_fwd_rows, &a, s, 8 * i);
  }
  if (err) return mk_throw_error(env, "%s", err);
  return mk_napi_undefined(env);
}

static napi_value moe_swiglu_backward(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  mk_typed gu, dy, w, dgu, hout, dw;
  int64_t ld, goff, uoff, cs, s, i;
  if (!mk_napi_args(env, info, 12, argv, "moeSwigluBackward") ||
      !arg_float_like(env, argv[0], "moeSwigluBackward: gu", NULL, 0, &gu) ||
      !act_layout(env, argv, &gu, "moeSwigluBackward", &ld, &goff, &uoff, &cs, &s, &i) ||
      !arg_float_like(env, argv[7], "moeSwigluBackward: dy", &gu, 0, &dy) ||
      !arg_float_like(env, argv[8], "moeSwigluBackward: w", &gu, 1, &w) ||
      !arg_float_like(env, argv[9], "moeSwigluBackward: dgu", &gu, 0, &dgu) ||
      !arg_float_like(env, argv[10], "moeSwigluBackward: hout", &gu, 1, &hout) ||
      !arg_float_like(env, argv[11], "moeSwigluBackward: dw", &gu, 1, &dw) ||
      !need(env, &dy, s * i, "moeSwigluBackward: dy") || (w.data && !need(env, &w, s, "moeSwigluBackward: w")) ||
      (s > 0 && i > 0 &&
       !need(env, &dgu, (s - 1) * ld + (goff > uoff ? goff : uoff) + (i - 1) * cs + 1, "moeSwigluBackward: dgu")) ||
      (hout.data && !need(env, &hout, s * i, "moeSwigluBackward: hout")) ||
      (dw.data && !need(env, &dw, s, "moeSwigluBackward: dw")))
    return NULL;
  const char *err = NULL;
  if (gu.type == napi_float32_array) {
    mk_moe_f32_act a = {gu.data, ld, goff, uoff, cs, i, NULL, dy.data, w.data, dgu.data, hout.data, dw.data};
    err = mk_moe_f32_run_act(swiglu_f32_fn(1, cs), &a, s, 16 * i);
  } else {
    mk_moe_f64_act a = {gu.data, ld, goff, uoff, cs, i, NULL, dy.data, w.data, dgu.data, hout.data, dw.data};
    err = mk_moe_f64_run_act(mk_moe_f64_swiglu_bwd_rows, &a, s, 16 * i);
  }
  if (err) return mk_throw_error(env, "%s", err);
  return mk_napi_undefined(env);
}

static napi_value moe_combine(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  mk_typed y, row, w, out;
  int64_t ldy, t, k, h;
  if (!mk_napi_args(env, info, 8, argv, "moeCombine") || !arg_float_like(env, argv[0], "moeCombine: y", NULL, 0, &y) ||
      !mk_napi_i64(env, argv[1], "moeCombine: ldy", 0, MAX_DIM, &ldy) ||
      !mk_arg_i32(env, argv[2], "moeCombine: row", &row) || !arg_float_like(env, argv[3], "moeCombine: w", &y, 1, &w) ||
      !mk_napi_i64(env, argv[4], "moeCombine: t", 0, MAX_DIM, &t) ||
      !mk_napi_i64(env, argv[5], "moeCombine: k", 0, MAX_DIM, &k) ||
      !mk_napi_i64(env, argv[6], "moeCombine: h", 0, MAX_DIM, &h) ||
      !arg_float_like(env, argv[7], "moeCombine: out", &y, 0, &out) || !need(env, &row, t * k, "moeCombine: row") ||
      (w.data && !need(env, &w, t * k, "moeCombine: w")) || !need(env, &out, t * h, "moeCombine: out"))
    return NULL;
  if (mk_fuse_open())
    return mk_throw_error(env, "moeCombine: not row-local, cannot run inside a fusion (moeFuseBegin .. moeFuseRun)");
  if (ldy < h) return mk_throw_range(env, "moeCombine: ldy < h");
  const int32_t *rp = (const int32_t *)row.data;
  int64_t rows = ldy > 0 ? ((int64_t)y.length - h) / ldy + 1 : 0;
  if (y.length < (size_t)h) rows = 0;
  for (int64_t q = 0; q < t * k; q++)
    if (rp[q] >= rows) return mk_throw_range(env, "moeCombine: row[%lld] = %d is past y", (long long)q, rp[q]);
  if (y.type == napi_float32_array) {
    mk_moe_f32_comb c = {y.data, ldy, k, h, rp, w.data, out.data};
    mk_par_range(t, k * h + 1, mk_moe_f32_combine_rows, &c);
  } else {
    mk_moe_f64_comb c = {y.data, ldy, k, h, rp, w.data, out.data};
    mk_par_range(t, k * h + 1, mk_moe_f64_combine_rows, &c);
  }
  return mk_napi_undefined(env);
}

static napi_value moe_batch_begin(napi_env env, napi_callback_info info) {
  (void)info;
  if (tl_batch.open) return mk_throw_error(env, "moeBatchBegin: a batch is already open (moeBatchRun closes it)");
  if (mk_fuse_open()) return mk_throw_error(env, "moeBatchBegin: a fusion is open (moeFuseRun closes it)");
  tl_batch.open = 1;
  return mk_napi_undefined(env);
}

static napi_value moe_batch_run(napi_env env, napi_callback_info info) {
  (void)info;
  if (!tl_batch.open) return mk_throw_error(env, "moeBatchRun: no batch is open (moeBatchBegin opens one)");
  mk_moe_batch_run();
  return mk_napi_undefined(env);
}

static napi_value moe_fuse_begin(napi_env env, napi_callback_info info) {
  (void)info;
  if (tl_batch.open) return mk_throw_error(env, "moeFuseBegin: a batch is open (moeBatchRun closes it)");
  if (mk_fuse_begin() < 0) return mk_throw_error(env, "moeFuseBegin: a fusion is already open (moeFuseRun closes it)");
  return mk_napi_undefined(env);
}

static napi_value moe_fuse_local(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  mk_typed a;
  int64_t row;
  if (!mk_napi_args(env, info, 2, argv, "moeFuseLocal") ||
      !arg_float_like(env, argv[0], "moeFuseLocal: a", NULL, 0, &a) ||
      !mk_napi_i64(env, argv[1], "moeFuseLocal: rowElems", 1, MAX_DIM, &row))
    return NULL;
  if (!mk_fuse_open()) return mk_throw_error(env, "moeFuseLocal: no fusion is open (moeFuseBegin opens one)");
  const size_t elt = a.type == napi_float32_array ? sizeof(float) : sizeof(double);
  const char *err = mk_fuse_local(a.data, a.length * elt, (size_t)row * elt);
  if (err) return mk_throw_error(env, "moeFuseLocal: %s", err);
  return mk_napi_undefined(env);
}

static napi_value moe_fuse_run(napi_env env, napi_callback_info info) {
  (void)info;
  if (!mk_fuse_open()) return mk_throw_error(env, "moeFuseRun: no fusion is open (moeFuseBegin opens one)");
  const char *err = mk_fuse_run();
  if (err) return mk_throw_error(env, "moeFuseRun: %s", err);
  return mk_napi_undefined(env);
}

napi_status mk_register_moe(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "moeGemmRows", moe_gemm_rows)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "moeGemmRowsStackedK", moe_gemm_rows_stacked_k)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "moeGemmWgrad", moe_gemm_wgrad)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "moeGemmSwiglu", moe_gemm_swiglu)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "moeSwigluForward", moe_swiglu_forward)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "moeSwigluBackward", moe_swiglu_backward)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "moeBatchBegin", moe_batch_begin)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "moeBatchRun", moe_batch_run)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "moeFuseBegin", moe_fuse_begin)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "moeFuseRun", moe_fuse_run)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "moeFuseLocal", moe_fuse_local)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "moeCombine", moe_combine);
}
