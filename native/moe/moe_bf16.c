/*
 * The grouped GEMMs' bf16 operands (moe_bf16.h): the packs that read bf16 or f32 operands into
 * f32 panels or bf16 pair panels, and the AVX512_BF16 pair micro-kernel.
 */
#include "bf16_pack.h"
#include "cpu.h"
#include "moe_bf16.h"

/* K (or panel columns) a pack converts at a time into its stack buffers: even, so that chunks
 * start on a pair */
#define CHUNK 256

static inline int64_t src_row(const mk_moe_src *s, int64_t r) { return s->idx ? s->idx[r] : r; }

/* n consecutive elements (at most tmp's) of row `row` from column col as bf16: the stored row itself
 * (bf16, not scaled), or tmp holding them rounded (an f32 operand, or times sc) */
static const uint16_t *row_bf16(const mk_moe_src *s, int64_t row, int64_t col, int64_t n, const float *sc,
                                uint16_t *tmp) {
  const int64_t at = row * s->ld + col;
  const void *p = s->half ? (const void *)((const uint16_t *)s->p + at) : (const void *)((const float *)s->p + at);
  if (s->half && !sc) return (const uint16_t *)p;
  if (sc)
    mk_bf16_narrow_scaled(p, s->half, *sc, n, tmp);
  else
    mk_bf16_narrow((const float *)p, n, tmp);
  return tmp;
}

/* n consecutive elements of a row, times sc, into out[q * stride] (f32) */
static void row_f32(const mk_moe_src *s, int64_t row, int64_t col, int64_t n, const float *sc, float *out,
                    int64_t stride) {
  const int64_t at = row * s->ld + col;
  for (int64_t c0 = 0; c0 < n; c0 += CHUNK) {
    const int64_t m = n - c0 < CHUNK ? n - c0 : CHUNK;
    float wide[CHUNK];
    const float *f = (const float *)s->p + at + c0;
    if (s->half) {
      mk_bf16_widen((const uint16_t *)s->p + at + c0, m, wide);
      f = wide;
    }
    float *o = out + c0 * stride;
    if (sc)
      for (int64_t q = 0; q < m; q++) o[q * stride] = *sc * f[q];
    else
      for (int64_t q = 0; q < m; q++) o[q * stride] = f[q];
  }
}

/* Pair panel steps from h <= width rows that hold K (rows mode A, B stored [N, K]): panel column
 * i is row rows[i] of s from column col, times scale[i] where scale is given. */
static void pairs_from_rows(const mk_moe_src *s, const int64_t *rows, const float *scale, int h, int64_t col,
                            int64_t kc, int width, uint32_t *d) {
  uint16_t tmp[32][CHUNK];
  const uint16_t *ptr[32];
  for (int64_t k0 = 0; k0 < kc; k0 += CHUNK) {
    const int64_t n = kc - k0 < CHUNK ? kc - k0 : CHUNK;
    for (int i = 0; i < h; i++) ptr[i] = row_bf16(s, rows[i], col + k0, n, scale ? scale + i : NULL, tmp[i]);
    mk_bf16_pairs_from_rows(ptr, h, n, width, d + (k0 / 2) * width);
  }
}

/* The source row of K element p in the wgrad modes and for B stored [K, N]: idx[base + p] or base + p. */
typedef struct {
  const int32_t *idx;
  int64_t base;
} k_rows;

static inline int64_t k_row(k_rows k, int64_t p) { return k.idx ? k.idx[k.base + p] : k.base + p; }

/* Pair panels from rows that hold the panels' columns (wgrad modes, B stored [K, N]): K element
 * p is row k_row(p) of s from column col, times scale[p] where scale is given; nc columns in
 * panels of `width`, panel j0 at d + j0 * steps. Each source row is read once for all panels
 * (they are a page apart: one pass, with the rows 4 pair steps ahead prefetched). */
static void pairs_interleaved(const mk_moe_src *s, k_rows k, const float *scale, int64_t col, int64_t nc, int64_t kc,
                              int width, uint32_t *d) {
  const int64_t steps = (kc + 1) / 2, span = (1024 / width) * width; /* columns per pass: whole panels */
  uint16_t lo[1024], hi[1024];
  const int64_t esz = s->half ? 2 : 4;
  for (int64_t c0 = 0; c0 < nc; c0 += span) {
    const int64_t cn = nc - c0 < span ? nc - c0 : span;
    for (int64_t p = 0; p < kc; p += 2) {
      for (int64_t f = p + 8; f < p + 10 && f < kc; f++) {
        const char *row = (const char *)s->p + (k_row(k, f) * s->ld + col + c0) * esz;
        for (int64_t off = 0; off < cn * esz; off += 64) __builtin_prefetch(row + off);
      }
      const uint16_t *l = row_bf16(s, k_row(k, p), col + c0, cn, scale ? scale + p : NULL, lo);
      const uint16_t *u =
          p + 1 < kc ? row_bf16(s, k_row(k, p + 1), col + c0, cn, scale ? scale + p + 1 : NULL, hi) : NULL;
      mk_bf16_pairs_interleave_panels(l, u, cn, width, width * steps, d + c0 * steps + (p / 2) * width);
    }
  }
}

void mk_moe_pack_a_mixed(int wgrad, const mk_moe_src *a, int64_t s0, int64_t m0, int64_t mc, int64_t pc, int64_t kc,
                         int mr, int pairs, float *dst) {
  const int64_t steps = pairs ? (kc + 1) / 2 : kc;
  const k_rows k = {a->idx, s0 + pc}; /* wgrad: K runs over the sorted rows */
  const float *kscale = a->scale ? a->scale + s0 + pc : NULL;
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int64_t h = mc - i0 < mr ? mc - i0 : mr;
    float *d = dst + i0 * steps;
    if (!wgrad && pairs) { /* one gathered row per panel row: K runs along it */
      int64_t rows[32];
      for (int64_t i = 0; i < h; i++) rows[i] = src_row(a, s0 + m0 + i0 + i);
      pairs_from_rows(a, rows, a->scale ? a->scale + s0 + m0 + i0 : NULL, (int)h, pc, kc, mr, (uint32_t *)d);
    } else if (!wgrad) {
      for (int64_t i = 0; i < h; i++) {
        const int64_t r = s0 + m0 + i0 + i;
        row_f32(a, src_row(a, r), pc, kc, a->scale ? a->scale + r : NULL, d + i, mr);
      }
    } else if (pairs) { /* panel row i is column m0 + i of each sorted row: every panel at once */
      pairs_interleaved(a, k, kscale, m0, mc, kc, mr, (uint32_t *)dst);
      return;
    } else {
      for (int64_t p = 0; p < kc; p++) row_f32(a, k_row(k, p), m0 + i0, h, kscale ? kscale + p : NULL, d + p * mr, 1);
    }
    if (!pairs)
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
  /* K runs over B's rows: gathered sorted rows (wgrad), or the expert's rows */
  const k_rows k = wgrad ? (k_rows){s.idx, s0 + pc} : (k_rows){NULL, pc};
  for (int64_t j0 = 0; j0 < nc; j0 += nr) {
    const int64_t w = nc - j0 < nr ? nc - j0 : nr;
    float *d = dst + j0 * steps;
    if (!wgrad && trans && pairs) { /* B_e stored [N, K]: panel column jj is a row of it */
      int64_t rows[32];
      for (int64_t jj = 0; jj < w; jj++) rows[jj] = n0 + j0 + jj;
      pairs_from_rows(&s, rows, NULL, (int)w, pc, kc, nr, (uint32_t *)d);
    } else if (!wgrad && trans) {
      for (int64_t jj = 0; jj < w; jj++) row_f32(&s, n0 + j0 + jj, pc, kc, NULL, d + jj, nr);
    } else if (pairs) { /* every panel at once */
      pairs_interleaved(&s, k, NULL, n0, nc, kc, nr, (uint32_t *)dst);
      return;
    } else {
      for (int64_t p = 0; p < kc; p++) row_f32(&s, k_row(k, p), n0 + j0, w, NULL, d + p * nr, 1);
    }
    if (!pairs)
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
