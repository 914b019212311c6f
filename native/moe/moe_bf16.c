/*
 * The grouped GEMMs' bf16 operands (moe_bf16.h): the packs that read bf16 or f32 operands into
 * f32 panels or bf16 pair panels, and the AVX512_BF16 pair micro-kernel.
 */
#include <string.h>

#include "cpu.h"
#include "moe_bf16.h"

static inline float bf16_widen(uint16_t h) {
  const uint32_t b = (uint32_t)h << 16;
  float f;
  memcpy(&f, &b, 4);
  return f;
}

/* round to nearest even, NaN -> 0xffff (PyTorch's CPU cast, src/io/half.ts) */
static inline uint32_t bf16_round(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return 0xffffu;
  return (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
}

static inline int64_t src_row(const mk_moe_src *s, int64_t r) { return s->idx ? s->idx[r] : r; }

/* element `col` of the operand's row `row`, as f32 */
static inline float src_at(const mk_moe_src *s, int64_t row, int64_t col) {
  const int64_t at = row * s->ld + col;
  return s->half ? bf16_widen(((const uint16_t *)s->p)[at]) : ((const float *)s->p)[at];
}

/* n consecutive elements of a row, times sc, into out[q * stride] (f32) */
static void row_f32(const mk_moe_src *s, int64_t row, int64_t col, int64_t n, float sc, int scaled, float *out,
                    int64_t stride) {
  const int64_t at = row * s->ld + col;
  if (s->half) {
    const uint16_t *h = (const uint16_t *)s->p + at;
    for (int64_t q = 0; q < n; q++) out[q * stride] = scaled ? sc * bf16_widen(h[q]) : bf16_widen(h[q]);
  } else {
    const float *f = (const float *)s->p + at;
    for (int64_t q = 0; q < n; q++) out[q * stride] = scaled ? sc * f[q] : f[q];
  }
}

/* n elements of a row as ceil(n/2) bf16 pairs (times sc, rounded), into out[q * stride] */
static void row_pairs(const mk_moe_src *s, int64_t row, int64_t col, int64_t n, float sc, int scaled, uint32_t *out,
                      int64_t stride) {
  const int64_t at = row * s->ld + col, whole = n / 2;
  if (s->half && !scaled) { /* the pairs as they are stored */
    const uint16_t *h = (const uint16_t *)s->p + at;
    for (int64_t q = 0; q < whole; q++) out[q * stride] = (uint32_t)h[2 * q] | ((uint32_t)h[2 * q + 1] << 16);
  } else {
    for (int64_t q = 0; q < whole; q++) {
      float v0 = src_at(s, row, col + 2 * q), v1 = src_at(s, row, col + 2 * q + 1);
      if (scaled) v0 *= sc, v1 *= sc;
      out[q * stride] = bf16_round(v0) | (bf16_round(v1) << 16);
    }
  }
  if (n & 1) {
    const float v = src_at(s, row, col + n - 1);
    out[whole * stride] = bf16_round(scaled ? sc * v : v);
  }
}

void mk_moe_pack_a_mixed(int wgrad, const mk_moe_src *a, int64_t s0, int64_t m0, int64_t mc, int64_t pc, int64_t kc,
                         int mr, int pairs, float *dst) {
  const int64_t steps = pairs ? (kc + 1) / 2 : kc;
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int64_t h = mc - i0 < mr ? mc - i0 : mr;
    float *d = dst + i0 * steps;
    if (!wgrad) { /* one gathered row per panel row: K runs along it */
      for (int64_t i = 0; i < h; i++) {
        const int64_t r = s0 + m0 + i0 + i;
        const float sc = a->scale ? a->scale[r] : 1.0f;
        if (pairs)
          row_pairs(a, src_row(a, r), pc, kc, sc, a->scale != NULL, (uint32_t *)d + i, mr);
        else
          row_f32(a, src_row(a, r), pc, kc, sc, a->scale != NULL, d + i, mr);
      }
    } else if (pairs && a->half && !a->scale) { /* two stored rows interleaved into pairs */
      const uint16_t *base = (const uint16_t *)a->p + m0 + i0;
      for (int64_t q = 0; q < kc / 2; q++) {
        const uint16_t *lo = base + src_row(a, s0 + pc + 2 * q) * a->ld,
                       *hi = base + src_row(a, s0 + pc + 2 * q + 1) * a->ld;
        uint32_t *o = (uint32_t *)d + q * mr;
        for (int64_t i = 0; i < h; i++) o[i] = (uint32_t)lo[i] | ((uint32_t)hi[i] << 16);
      }
      if (kc & 1) {
        const uint16_t *lo = base + src_row(a, s0 + pc + kc - 1) * a->ld;
        uint32_t *o = (uint32_t *)d + (kc / 2) * mr;
        for (int64_t i = 0; i < h; i++) o[i] = lo[i];
      }
    } else { /* K runs over the sorted rows: panel row i is column m0 + i of each */
      for (int64_t p = 0; p < kc; p++) {
        const int64_t r = s0 + pc + p;
        const float sc = a->scale ? a->scale[r] : 1.0f;
        const int64_t row = src_row(a, r);
        if (!pairs) {
          row_f32(a, row, m0 + i0, h, sc, a->scale != NULL, d + p * mr, 1);
          continue;
        }
        uint16_t *u = (uint16_t *)((uint32_t *)d + (p / 2) * mr) + (p & 1); /* this row's half of each pair */
        for (int64_t i = 0; i < h; i++) {
          const float v = src_at(a, row, m0 + i0 + i);
          u[2 * i] = (uint16_t)bf16_round(a->scale ? sc * v : v);
        }
      }
      if (pairs && (kc & 1)) /* the last pair's high half */
        for (int64_t i = 0; i < h; i++) ((uint16_t *)((uint32_t *)d + (kc / 2) * mr))[2 * i + 1] = 0;
    }
    for (int64_t p = 0; p < steps; p++) /* rows past mc */
      for (int64_t i = h; i < mr; i++) d[p * mr + i] = 0;
  }
}

void mk_moe_pack_b_mixed(int wgrad, int trans, const mk_moe_src *b, int64_t off, int64_t s0, int64_t n0, int64_t nc,
                         int64_t pc, int64_t kc, int nr, int pairs, float *dst) {
  const int64_t steps = pairs ? (kc + 1) / 2 : kc;
  const mk_moe_src s = {
      .p = b->half ? (const void *)((const uint16_t *)b->p + off) : (const void *)((const float *)b->p + off),
      .half = b->half,
      .idx = b->idx,
      .scale = NULL,
      .ld = b->ld};
  for (int64_t j0 = 0; j0 < nc; j0 += nr) {
    const int64_t w = nc - j0 < nr ? nc - j0 : nr;
    float *d = dst + j0 * steps;
    if (!wgrad && trans) { /* B_e stored [N, K]: panel column jj is a row of it */
      for (int64_t jj = 0; jj < w; jj++) {
        if (pairs)
          row_pairs(&s, n0 + j0 + jj, pc, kc, 1.0f, 0, (uint32_t *)d + jj, nr);
        else
          row_f32(&s, n0 + j0 + jj, pc, kc, 1.0f, 0, d + jj, nr);
      }
    } else if (pairs && s.half) { /* two of B's rows interleaved into pairs */
      const uint16_t *base = (const uint16_t *)s.p + n0 + j0;
#define B_ROW(p) (base + (wgrad ? src_row(&s, s0 + pc + (p)) : pc + (p)) * s.ld)
      for (int64_t q = 0; q < kc / 2; q++) {
        const uint16_t *lo = B_ROW(2 * q), *hi = B_ROW(2 * q + 1);
        uint32_t *o = (uint32_t *)d + q * nr;
        for (int64_t jj = 0; jj < w; jj++) o[jj] = (uint32_t)lo[jj] | ((uint32_t)hi[jj] << 16);
      }
      if (kc & 1) {
        const uint16_t *lo = B_ROW(kc - 1);
        uint32_t *o = (uint32_t *)d + (kc / 2) * nr;
        for (int64_t jj = 0; jj < w; jj++) o[jj] = lo[jj];
      }
#undef B_ROW
    } else { /* K runs over B's rows (expert rows, or gathered sorted rows) */
      for (int64_t p = 0; p < kc; p++) {
        const int64_t row = wgrad ? src_row(&s, s0 + pc + p) : pc + p;
        if (!pairs) {
          row_f32(&s, row, n0 + j0, w, 1.0f, 0, d + p * nr, 1);
          continue;
        }
        uint16_t *u = (uint16_t *)((uint32_t *)d + (p / 2) * nr) + (p & 1);
        for (int64_t jj = 0; jj < w; jj++) u[2 * jj] = (uint16_t)bf16_round(src_at(&s, row, n0 + j0 + jj));
      }
      if (pairs && (kc & 1))
        for (int64_t jj = 0; jj < w; jj++) ((uint16_t *)((uint32_t *)d + (kc / 2) * nr))[2 * jj + 1] = 0;
    }
    for (int64_t p = 0; p < steps; p++) /* columns past nc */
      for (int64_t jj = w; jj < nr; jj++) d[p * nr + jj] = 0;
  }
}

/* ---- the AVX512_BF16 pair micro-kernel ---- */

#if defined(__x86_64__)
#include <immintrin.h>

#define PAIR_MR 14
#define PAIR_NR 32

/* C[14 x 32] (+)= A·B over kc elements (kc/2 pair steps, gemm_kernels.h's ukr contract). */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void ukr_bf16_pairs_14x32(int64_t kc, const float *a,
                                                                                        const float *b, float *c,
                                                                                        int64_t ldc, int load_c) {
  __m512 acc[PAIR_MR][2];
  for (int r = 0; r < PAIR_MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const uint32_t *ap = (const uint32_t *)a, *bp = (const uint32_t *)b;
  const int64_t steps = (kc + 1) / 2;
  for (int64_t q = 0; q < steps; q++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(bp + q * PAIR_NR));
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(bp + q * PAIR_NR + 16));
    for (int r = 0; r < PAIR_MR; r++) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[q * PAIR_MR + r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  for (int r = 0; r < PAIR_MR; r++) {
    float *cr = c + r * ldc;
    if (load_c) {
      acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_loadu_ps(cr));
      acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_loadu_ps(cr + 16));
    }
    _mm512_storeu_ps(cr, acc[r][0]);
    _mm512_storeu_ps(cr + 16, acc[r][1]);
  }
}

/* kc 768 elements = 384 pair steps: the f32 14x32 kernel's panel bytes (gemm_kernels.c) */
static const mk_kernel_f32 k_bf16_pairs = {PAIR_MR, PAIR_NR, 168, 768, 4096, ukr_bf16_pairs_14x32, "avx512bf16 14x32",
                                           {{0, 0}}};
#endif

const mk_kernel_f32 *mk_moe_bf16_pair_kernel(void) {
#if defined(__x86_64__)
  if (mk_cpu_bf16_dot()) return &k_bf16_pairs;
#endif
  return NULL;
}
