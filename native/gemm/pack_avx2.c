/* AVX2 f32 packs (pack_avx2.h), shared by the plain GEMM (gemm_impl.inc) and the fused MoE
 * kernels (moe_impl.inc). Compiled with target attributes; empty off x86-64. */
#include "pack_avx2.h"

#include "cpu.h"
#include "pack_avx512.h"

int mk_pack_avx2_fits(const mk_kernel_f32 *kr) {
#if defined(__x86_64__)
  return mk_cpu_isa() == MK_ISA_AVX2 && kr->mr <= 8 && kr->nr % 8 == 0;
#else
  (void)kr;
  return 0;
#endif
}

int mk_packs_x86_for(const mk_kernel_f32 *kr) {
  return mk_pack_avx512_fits(kr) ? MK_PACKS_AVX512 : mk_pack_avx2_fits(kr) ? MK_PACKS_AVX2 : MK_PACKS_SCALAR;
}

#if defined(__x86_64__)
#include <immintrin.h>
#define MK_A256 __attribute__((target("avx2,fma")))

/* r[i] = row i (8 lanes) -> r[q] = column q (lane i = old r[i][q]) */
static MK_A256 inline void tr8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) { /* rows 4i..4i+3: u[4i + c] holds columns c and c + 4 */
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; c++) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

/* The first n (<= 8) lanes of v to d (no masked store: slow on AMD cores). */
static MK_A256 inline void store_lanes(float *d, __m256 v, int n) {
  if (n == 8) {
    _mm256_storeu_ps(d, v);
    return;
  }
  __m128 x = _mm256_castps256_ps128(v);
  if (n >= 4) {
    _mm_storeu_ps(d, x);
    x = _mm256_extractf128_ps(v, 1);
    d += 4, n -= 4;
  }
  if (n >= 2) {
    _mm_storel_pi((__m64 *)d, x);
    x = _mm_movehl_ps(x, x);
    d += 2, n -= 2;
  }
  if (n) _mm_store_ss(d, x);
}

/* all ones in lanes < n */
static MK_A256 inline __m256i lane_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* s[0..n) (n <= 8), zeros after; reads nothing past s + n */
static MK_A256 inline __m256 load_lanes(const float *s, int n) {
  return n >= 8 ? _mm256_loadu_ps(s) : _mm256_maskload_ps(s, lane_mask(n));
}

/* src[i] (i < h <= 8) rows of kc contiguous floats, times sc[i] where sc; rows >= h are zero.
 * Writes dst[p*ld + i] for i < width (<= 8), p < kc. */
static MK_A256 void pack_tr_f32(const float *const *src, const float *sc, int h, int64_t kc, int width, int64_t ld,
                                float *restrict dst) {
  int64_t p0 = 0;
  for (; p0 + 8 <= kc; p0 += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; i++) {
      if (i < h) {
        r[i] = _mm256_loadu_ps(src[i] + p0);
        if (sc) r[i] = _mm256_mul_ps(r[i], _mm256_set1_ps(sc[i]));
      } else {
        r[i] = _mm256_setzero_ps();
      }
    }
    tr8(r);
    for (int q = 0; q < 8; q++) store_lanes(dst + (p0 + q) * ld, r[q], width);
  }
  for (; p0 < kc; p0++)
    for (int i = 0; i < width; i++) dst[p0 * ld + i] = i >= h ? 0.0f : sc ? sc[i] * src[i][p0] : src[i][p0];
}

MK_A256 void mk_pack_a_rows_f32_avx2(const float *a, const int32_t *idx, const float *scale, int64_t lda, int64_t rbase,
                                     int64_t mc, int64_t pc, int64_t kc, int mr, float *restrict dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int h = (int)(mc - i0 < mr ? mc - i0 : mr);
    const float *src[8];
    float sc[8];
    for (int i = 0; i < h; i++) {
      const int64_t r = rbase + i0 + i;
      src[i] = a + (idx ? (int64_t)idx[r] : r) * lda + pc;
      sc[i] = scale ? scale[r] : 1.0f;
    }
    pack_tr_f32(src, scale ? sc : NULL, h, kc, mr, mr, dst + i0 * kc);
  }
}

MK_A256 void mk_pack_bt_f32_avx2(const float *b, int64_t ldb, int64_t nc, int64_t kc, int nr, float *restrict dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += nr)
    for (int g = 0; g < nr; g += 8) {
      const float *src[8];
      const int64_t left = nc - j0 - g;
      const int h = left <= 0 ? 0 : left < 8 ? (int)left : 8;
      for (int i = 0; i < h; i++) src[i] = b + (j0 + g + i) * ldb;
      pack_tr_f32(src, NULL, h, kc, 8, nr, dst + j0 * kc + g);
    }
}

MK_A256 void mk_pack_b_rows_f32_avx2(const float *b, const int32_t *idx, int64_t base, int64_t ldb, int64_t nc,
                                     int64_t kc, int nr, float *restrict dst) {
  /* MK_PACK_ROWS source rows a pass, so that each panel gets that many rows (contiguous in it) at
   * a time (docs/performance.md: native/gemm/pack_avx2.c: mk_pack_b_rows_f32_avx2) */
  const float *row[MK_PACK_ROWS], *next[MK_PACK_ROWS];
  int nb = mk_pack_row_block(b, idx, base, ldb, 0, kc, next);
  for (int64_t p0 = 0; p0 < kc; p0 += MK_PACK_ROWS) {
    const int rb = nb;
    for (int r = 0; r < rb; r++) row[r] = next[r];
    nb = mk_pack_row_block(b, idx, base, ldb, p0 + rb, kc, next);
    for (int64_t j0 = 0; j0 < nc; j0 += nr) {
      float *d = dst + j0 * kc + p0 * nr;
      const int64_t w = nc - j0;
      for (int r = 0; r < rb; r++) {
        if (r < nb) { /* the same columns of the next block's rows (often a page apart) */
          _mm_prefetch((const char *)(next[r] + j0), _MM_HINT_T0);
          _mm_prefetch((const char *)(next[r] + j0 + nr - 1), _MM_HINT_T0);
        }
        for (int v = 0; v < nr; v += 8) {
          const int64_t left = w - v;
          _mm256_storeu_ps(d + r * nr + v, left >= 8   ? _mm256_loadu_ps(row[r] + j0 + v)
                                           : left <= 0 ? _mm256_setzero_ps()
                                                       : load_lanes(row[r] + j0 + v, (int)left));
        }
      }
    }
  }
}

MK_A256 void mk_pack_a_wgrad_f32_avx2(const float *a, const int32_t *idx, const float *scale, int64_t lda, int64_t base,
                                      int64_t m0, int64_t mc, int64_t kc, int mr, float *restrict dst) {
  for (int64_t p = 0; p < kc; p++) {
    const int64_t r = base + p;
    const float *s = a + (idx ? (int64_t)idx[r] : r) * lda + m0;
    const __m256 sc = _mm256_set1_ps(scale ? scale[r] : 1.0f);
    if (p + 4 < kc) { /* each source row is a new page or two: warm row p+4 (no prefetcher does) */
      const char *pf = (const char *)(a + (idx ? (int64_t)idx[r + 4] : r + 4) * lda + m0);
      for (int64_t off = 0; off < mc * (int64_t)sizeof(float); off += 64) _mm_prefetch(pf + off, _MM_HINT_T0);
    }
    for (int64_t i0 = 0; i0 < mc; i0 += mr) {
      const int h = (int)(mc - i0 < mr ? mc - i0 : mr);
      __m256 v = load_lanes(s + i0, h);
      if (scale) { /* lanes past h stay +0 whatever the scale (as the scalar pack writes them) */
        v = _mm256_mul_ps(v, sc);
        if (h < 8) v = _mm256_and_ps(v, _mm256_castsi256_ps(lane_mask(h)));
      }
      store_lanes(dst + i0 * kc + p * mr, v, mr);
    }
  }
}

#endif
