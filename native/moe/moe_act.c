/*
 * The MoE activations (moe.h): SwiGLU, exact GELU and GPT-OSS's clamped SwiGLU as row passes
 * (forward; backward with the row weight, the recomputed h and <dy, h>), the expert bias pass,
 * and the epilogues the grouped GEMM applies to an output tile while it is in L1 (moe.c). A pass
 * runs on the pool or, inside a row fusion, joins it as a stage (moe_fuse.h).
 */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"
#include "moe.h"
#include "moe_act_vec.h"
#include "moe_fuse.h"
#include "vec_exp.h"
#include "vec_f32.h"

#define MK_INV_SQRT2 0.7071067811865476
#define MK_INV_SQRT_2PI 0.3989422804014327

/* the sigmoid op's form (native/ops/elementwise.c), for GPT-OSS */
static inline double mk_act_sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  const double e = exp(x);
  return e / (1.0 + e);
}

#define T float
#define SFX f32
#include "moe_act_impl.inc"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "moe_act_impl.inc"
#undef T
#undef SFX

/* ---- AVX-512 SwiGLU rows for f32 with contiguous gate / up columns ---------------- */
#if defined(__x86_64__)
#include <immintrin.h>
#define A512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))

/* sigmoid(x) = 1 / (1 + e^-x), e^y by vec_exp.h's mk_vexp16 (|rel err| ~1e-7 in float); the
 * input is clamped to |y| <= 88 so nothing overflows. The reciprocal is rcp14 refined by one
 * Newton step (rel err ~2^-28): Zen 4 issues a 512-bit divide once per ~5 cycles, and it bounded
 * the SwiGLU passes (docs/performance.md: native/moe/moe_act.c: sigmoid16). */
static A512 inline __m512 sigmoid16(__m512 x) {
  __m512 y = _mm512_sub_ps(_mm512_setzero_ps(), x);
  y = _mm512_max_ps(_mm512_min_ps(y, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-88.0f));
  __m512 e = mk_vexp16(y);
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

/* one row of the SwiGLU backward (see moeActBackward); returns <dy, h>. Warms the gate/up
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
 * sigmoid chains (docs/performance.md: native/moe/moe_act.c: swiglu_fwd_tile_f32) */
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

#endif

/* The vectorised f32 SwiGLU rows of the ISA in use, or NULL fns where there are none. */
typedef struct {
  mk_swiglu_fwd_row_fn fwd;
  mk_swiglu_bwd_row_fn bwd;
} swiglu_rows;

static swiglu_rows swiglu_vec_rows(void) {
  switch (mk_cpu_isa()) {
#if defined(__x86_64__)
    case MK_ISA_AVX512:
      return (swiglu_rows){swiglu_fwd_row_f32, swiglu_bwd_row_f32};
    case MK_ISA_AVX2:
      return (swiglu_rows){mk_swiglu_fwd_row_f32_avx2, mk_swiglu_bwd_row_f32_avx2};
#endif
#if defined(__aarch64__)
    case MK_ISA_NEON:
      return (swiglu_rows){mk_swiglu_fwd_row_f32_neon, mk_swiglu_bwd_row_f32_neon};
#endif
    default:
      return (swiglu_rows){NULL, NULL};
  }
}

static void swiglu_fwd_rows_f32_vec(void *p, int64_t b, int64_t e, int64_t task) {
  (void)task;
  const mk_moe_act *a = (const mk_moe_act *)p;
  const mk_swiglu_fwd_row_fn fwd = swiglu_vec_rows().fwd;
  for (int64_t r = b; r < e; r++) {
    const float *gu = (const float *)a->gu + r * a->ld;
    fwd(gu + a->goff, gu + a->uoff, (float *)a->h + r * a->I, a->I);
  }
}

/* how many rows ahead matters little; prefetching at all pays on AVX-512
 * (docs/performance.md: native/moe/moe_act.c: SWIGLU_BWD_PREFETCH_ROWS) */
#define SWIGLU_BWD_PREFETCH_ROWS 4
static void swiglu_bwd_rows_f32_vec(void *p, int64_t b, int64_t e, int64_t task) {
  (void)task;
  const mk_moe_act *a = (const mk_moe_act *)p;
  const mk_swiglu_bwd_row_fn bwd = swiglu_vec_rows().bwd;
  for (int64_t r = b; r < e; r++) {
    const float *gu = (const float *)a->gu + r * a->ld;
    float *dgu = (float *)a->dgu + r * a->ld;
    double d = bwd(gu + a->goff, gu + a->uoff, (const float *)a->dy + r * a->I, a->w ? ((const float *)a->w)[r] : 1.0f,
                   dgu + a->goff, dgu + a->uoff, a->hout ? (float *)a->hout + r * a->I : NULL, a->I,
                   SWIGLU_BWD_PREFETCH_ROWS * a->ld);
    if (a->dw) ((float *)a->dw)[r] = (float)d;
  }
}

/* the AVX2 / NEON tile epilogue: row by row (AVX-512 has its own, swiglu_fwd_tile_f32) */
static void swiglu_fwd_tile_f32_vec(const float *g, const float *u, int64_t ld, float *h, int64_t ldh, int64_t rows,
                                    int64_t n) {
  const mk_swiglu_fwd_row_fn fwd = swiglu_vec_rows().fwd;
  for (int64_t i = 0; i < rows; i++) fwd(g + i * ld, u + i * ld, h + i * ldh, n);
}

/* the f32 SwiGLU row functions to use for this layout */
static mk_range_fn swiglu_f32_fn(int backward, int64_t cs) {
  if (cs == 1 && swiglu_vec_rows().fwd) return backward ? swiglu_bwd_rows_f32_vec : swiglu_fwd_rows_f32_vec;
  return backward ? mk_moe_f32_swiglu_bwd_rows : mk_moe_f32_swiglu_fwd_rows;
}

/* f32 GELU with contiguous columns on vec_f32.h's kernels, the elementwise op's arithmetic, so
 * the kernel chain keeps the composition's bits */
static void gelu_fwd_rows_f32_vec(void *p, int64_t b, int64_t e, int64_t task) {
  (void)task;
  const mk_moe_act *a = (const mk_moe_act *)p;
  const mk_vec_f32_kernels *vk = mk_vec_f32();
  for (int64_t r = b; r < e; r++)
    vk->gelu((const float *)a->gu + r * a->ld + a->goff, (float *)a->h + r * a->I, a->I, 0);
}

static void gelu_bwd_rows_f32_vec(void *p, int64_t b, int64_t e, int64_t task) {
  (void)task;
  const mk_moe_act *a = (const mk_moe_act *)p;
  const mk_vec_f32_kernels *vk = mk_vec_f32();
  for (int64_t r = b; r < e; r++) {
    const double d = vk->gelu_backward((const float *)a->gu + r * a->ld + a->goff, (const float *)a->dy + r * a->I,
                                       a->w ? ((const float *)a->w)[r] : 1.0f, (float *)a->dgu + r * a->ld + a->goff,
                                       a->hout ? (float *)a->hout + r * a->I : NULL, a->I, 0);
    if (a->dw) ((float *)a->dw)[r] = (float)d;
  }
}

static void gelu_tile_f32_vec(const float *g, const float *u, int64_t ld, float *h, int64_t ldh, int64_t rows,
                              int64_t n) {
  (void)u;
  const mk_vec_f32_kernels *vk = mk_vec_f32();
  for (int64_t i = 0; i < rows; i++) vk->gelu(g + i * ld, h + i * ldh, n, 0);
}

mk_moe_tile_f32 mk_moe_epilogue_f32(mk_moe_epilogue e) {
  if (e == MK_EPI_GELU) return mk_vec_f32() ? gelu_tile_f32_vec : mk_moe_f32_gelu_tile;
#if defined(__x86_64__)
  if (mk_cpu_isa() == MK_ISA_AVX512) return swiglu_fwd_tile_f32;
#endif
  return swiglu_vec_rows().fwd ? swiglu_fwd_tile_f32_vec : mk_moe_f32_swiglu_tile;
}

mk_moe_tile_f64 mk_moe_epilogue_f64(mk_moe_epilogue e) {
  return e == MK_EPI_GELU ? mk_moe_f64_gelu_tile : mk_moe_f64_swiglu_tile;
}

/* The row function of a pass, and its work per row (elements touched, for the pool's split). */
static mk_range_fn act_fn(mk_moe_act_kind kind, const mk_moe_act *a, int64_t *cost) {
  const int f64 = a->f64;
  *cost = 8 * a->I;
  switch (kind) {
    case MK_ACT_SWIGLU_FWD:
      return f64 ? mk_moe_f64_swiglu_fwd_rows : swiglu_f32_fn(0, a->cs);
    case MK_ACT_SWIGLU_BWD:
      *cost = 16 * a->I;
      return f64 ? mk_moe_f64_swiglu_bwd_rows : swiglu_f32_fn(1, a->cs);
    case MK_ACT_GELU_FWD:
      if (f64) return mk_moe_f64_gelu_fwd_rows;
      return a->cs == 1 && mk_vec_f32() ? gelu_fwd_rows_f32_vec : mk_moe_f32_gelu_fwd_rows;
    case MK_ACT_GELU_BWD:
      *cost = 16 * a->I;
      if (f64) return mk_moe_f64_gelu_bwd_rows;
      return a->cs == 1 && mk_vec_f32() ? gelu_bwd_rows_f32_vec : mk_moe_f32_gelu_bwd_rows;
    case MK_ACT_OSS_FWD:
      return f64 ? mk_moe_f64_oss_fwd_rows : mk_moe_f32_oss_fwd_rows;
    case MK_ACT_OSS_BWD:
      *cost = 16 * a->I;
      return f64 ? mk_moe_f64_oss_bwd_rows : mk_moe_f32_oss_bwd_rows;
    case MK_ACT_BIAS:
      *cost = a->I;
      return f64 ? mk_moe_f64_bias_rows : mk_moe_f32_bias_rows;
  }
  return NULL;
}

/* A pass's arrays for one block (moe_fuse.h): all by sorted row but the bias. */
static const char *act_relocate(void *job, const mk_fuse_map *m) {
  mk_moe_act *a = (mk_moe_act *)job;
  const char *err = NULL;
  const size_t el = a->f64 ? sizeof(double) : sizeof(float), ld = el * (size_t)a->ld, li = el * (size_t)a->I;
  a->gu = mk_fuse_at(m, a->gu, ld, MK_FUSE_ROWS, &err);
  a->dgu = mk_fuse_at(m, a->dgu, ld, MK_FUSE_ROWS, &err);
  a->h = mk_fuse_at(m, a->h, li, MK_FUSE_ROWS, &err);
  a->dy = mk_fuse_at(m, a->dy, li, MK_FUSE_ROWS, &err);
  a->hout = mk_fuse_at(m, a->hout, li, MK_FUSE_ROWS, &err);
  a->w = mk_fuse_at(m, a->w, el, MK_FUSE_ROWS, &err);
  a->dw = mk_fuse_at(m, a->dw, el, MK_FUSE_ROWS, &err);
  a->bias = mk_fuse_at(m, a->bias, 0, MK_FUSE_WHOLE, &err);
  return err;
}

const char *mk_moe_act_run(mk_moe_act_kind kind, const mk_moe_act *a, int64_t rows) {
  int64_t cost;
  const mk_range_fn fn = act_fn(kind, a, &cost);
  if (!mk_fuse_open()) {
    mk_par_range(rows, cost, fn, (void *)a);
    return 0;
  }
  mk_moe_act *owned = (mk_moe_act *)malloc(sizeof *owned);
  if (!owned) abort();
  *owned = *a;
  const mk_fuse_stage st = {.range = fn,
                            .job = owned,
                            .job_size = sizeof *owned,
                            .relocate = act_relocate,
                            .rows = rows,
                            .elt = a->f64 ? sizeof(double) : sizeof(float)};
  return mk_fuse_add(&st);
}
