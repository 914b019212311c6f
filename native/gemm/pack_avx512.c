/* AVX-512 f32 packs (pack_avx512.h), shared by the plain GEMM (gemm_impl.inc) and the fused
 * MoE kernels (moe_impl.inc). Compiled with target attributes; empty off x86-64. */
#include "pack_avx512.h"

#include "cpu.h"

int mk_pack_avx512_fits(const mk_kernel_f32 *kr) {
#if defined(__x86_64__)
  return mk_cpu_isa() == MK_ISA_AVX512 && kr->mr <= 16 && kr->nr == 32;
#else
  (void)kr;
  return 0;
#endif
}

#if defined(__x86_64__)
#include <immintrin.h>
#define MK_A512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))

/* r[i] = row i (16 lanes) -> r[q] = column q (lane i = old r[i][q]) */
static MK_A512 inline void tr16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 4; i++) {
    t[4 * i] = _mm512_unpacklo_ps(r[4 * i], r[4 * i + 1]);
    t[4 * i + 1] = _mm512_unpackhi_ps(r[4 * i], r[4 * i + 1]);
    t[4 * i + 2] = _mm512_unpacklo_ps(r[4 * i + 2], r[4 * i + 3]);
    t[4 * i + 3] = _mm512_unpackhi_ps(r[4 * i + 2], r[4 * i + 3]);
  }
  for (int i = 0; i < 4; i++) {
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[4 * i]), _mm512_castps_pd(t[4 * i + 2])));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[4 * i]), _mm512_castps_pd(t[4 * i + 2])));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[4 * i + 1]), _mm512_castps_pd(t[4 * i + 3])));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[4 * i + 1]), _mm512_castps_pd(t[4 * i + 3])));
  }
  /* r[4i + c], 128-bit lane L: column 4L + c of rows 4i..4i+3 */
  for (int c = 0; c < 4; c++) {
    __m512 u0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88), u1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);
    __m512 u2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88), u3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
    t[c] = _mm512_shuffle_f32x4(u0, u2, 0x88);
    t[8 + c] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
    t[4 + c] = _mm512_shuffle_f32x4(u1, u3, 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
  }
  for (int q = 0; q < 16; q++) r[q] = t[q];
}

/* src[i] (i < h <= 16) rows of kc contiguous floats, times sc[i]; rows >= h are zero.
 * Writes dst[p*ld + i] for i < width (<= 16), p < kc. */
static MK_A512 void pack_tr_f32(const float *const *src, const float *sc, int h, int64_t kc, int width, int64_t ld,
                                float *restrict dst) {
  const __mmask16 wm = (__mmask16)((1u << width) - 1);
  for (int64_t p0 = 0; p0 < kc; p0 += 16) {
    const int64_t left = kc - p0;
    const __mmask16 lm = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
    __m512 r[16];
    for (int i = 0; i < 16; i++) {
      if (i < h) {
        r[i] = _mm512_maskz_loadu_ps(lm, src[i] + p0);
        if (sc) r[i] = _mm512_mul_ps(r[i], _mm512_set1_ps(sc[i]));
      } else {
        r[i] = _mm512_setzero_ps();
      }
    }
    tr16(r);
    const int qn = left >= 16 ? 16 : (int)left;
    for (int q = 0; q < qn; q++) _mm512_mask_storeu_ps(dst + (p0 + q) * ld, wm, r[q]);
  }
}

/* pack_tr_f32 as a pure move (no scale): 32-bit patterns of any kind, e.g. bf16 pairs (bf16_pack.c) */
MK_A512 void mk_pack_tr32_avx512(const void *const *src, int h, int64_t n, int width, int64_t ld, void *dst) {
  pack_tr_f32((const float *const *)src, NULL, h, n, width, ld, (float *)dst);
}

/* rows-mode A panel pack: MR-row panels of rows a[row(r)], r = rbase + i (i < mc). */
MK_A512 void mk_pack_a_rows_f32_avx512(const float *a, const int32_t *idx, const float *scale, int64_t lda,
                                       int64_t rbase, int64_t mc, int64_t pc, int64_t kc, int mr, float *restrict dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int h = (int)(mc - i0 < mr ? mc - i0 : mr);
    const float *src[16];
    float sc[16];
    for (int i = 0; i < h; i++) {
      int64_t r = rbase + i0 + i;
      src[i] = a + (idx ? idx[r] : r) * lda + pc;
      sc[i] = scale ? scale[r] : 1.0f;
    }
    pack_tr_f32(src, scale ? sc : NULL, h, kc, mr, mr, dst + i0 * kc);
  }
}

/* rows-mode transposed-B pack (B_e stored [n, k]): b points at row n0, column pc. */
MK_A512 void mk_pack_bt_f32_avx512(const float *b, int64_t ldb, int64_t nc, int64_t kc, int nr, float *restrict dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += nr) {
    const int64_t w = nc - j0 < nr ? nc - j0 : nr;
    for (int half = 0; half < nr; half += 16) {
      const float *src[16];
      int h = (int)(w - half < 16 ? w - half : 16);
      if (h < 0) h = 0;
      for (int i = 0; i < h; i++) src[i] = b + (j0 + half + i) * ldb;
      pack_tr_f32(src, NULL, h, kc, 16, nr, dst + j0 * kc + half);
    }
  }
}
/* Row-copy packs (no transpose needed): source row p holds the panel row contiguously.
 * B: dst panel j0 (NR = 32 columns) gets src(p)[j0 .. j0+32) at dst + j0*kc + p*32, columns past
 * nc zero. src(p) = b + (idx ? idx[base + p] : base + p) * ldb. Used for op(B) = B_e (rows mode,
 * not transposed: base = row p of B_e, idx NULL) and for the gathered rows of wgrad mode. */
MK_A512 void mk_pack_b_rows_f32_avx512(const float *b, const int32_t *idx, int64_t base, int64_t ldb, int64_t nc,
                                       int64_t kc, float *restrict dst) {
  /* MK_PACK_ROWS source rows a pass (docs/performance.md: native/gemm/pack_avx2.c:
   * mk_pack_b_rows_f32_avx2) */
  const float *row[MK_PACK_ROWS], *next[MK_PACK_ROWS];
  int nb = mk_pack_row_block(b, idx, base, ldb, 0, kc, next);
  const int64_t w = nc % 32;
  const __mmask16 m0 = w >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << w) - 1);
  const __mmask16 m1 = w <= 16 ? 0 : (__mmask16)((1u << (w - 16)) - 1);
  for (int64_t p0 = 0; p0 < kc; p0 += MK_PACK_ROWS) {
    const int rb = nb;
    for (int r = 0; r < rb; r++) row[r] = next[r];
    nb = mk_pack_row_block(b, idx, base, ldb, p0 + rb, kc, next);
    float *d = dst + p0 * 32;
    int64_t j0 = 0;
    for (; j0 + 32 <= nc; j0 += 32, d += 32 * kc)
      for (int r = 0; r < rb; r++) {
        if (r < nb) { /* the same columns of the next block's rows (often a page apart) */
          _mm_prefetch((const char *)(next[r] + j0), _MM_HINT_T0);
          _mm_prefetch((const char *)(next[r] + j0 + 31), _MM_HINT_T0);
        }
        _mm512_storeu_ps(d + r * 32, _mm512_loadu_ps(row[r] + j0));
        _mm512_storeu_ps(d + r * 32 + 16, _mm512_loadu_ps(row[r] + j0 + 16));
      }
    if (j0 < nc)
      for (int r = 0; r < rb; r++) {
        _mm512_storeu_ps(d + r * 32, _mm512_maskz_loadu_ps(m0, row[r] + j0));
        _mm512_storeu_ps(d + r * 32 + 16, _mm512_maskz_loadu_ps(m1, row[r] + j0 + 16));
      }
  }
}

/* wgrad-mode A pack: op(A)[i, p] = sc[r] * a[row(r)*lda + m0 + i], r = base + p: for each p,
 * MR-row panel i0 gets h <= MR contiguous values (zeros up to MR). */
MK_A512 void mk_pack_a_wgrad_f32_avx512(const float *a, const int32_t *idx, const float *scale, int64_t lda,
                                        int64_t base, int64_t m0, int64_t mc, int64_t kc, int mr, float *restrict dst) {
  const __mmask16 wm = (__mmask16)((1u << mr) - 1);
  for (int64_t p = 0; p < kc; p++) {
    const int64_t r = base + p;
    const float *s = a + (idx ? idx[r] : r) * lda + m0;
    const __m512 sc = _mm512_set1_ps(scale ? scale[r] : 1.0f);
    if (p + 4 < kc) { /* each source row is a new page or two: warm row p+4 (no prefetcher does) */
      const char *pf = (const char *)(a + (idx ? idx[r + 4] : r + 4) * lda + m0);
      for (int64_t off = 0; off < mc * (int64_t)sizeof(float); off += 64) _mm_prefetch(pf + off, _MM_HINT_T0);
    }
    for (int64_t i0 = 0; i0 < mc; i0 += mr) {
      const int64_t h = mc - i0 < mr ? mc - i0 : mr;
      const __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << h) - 1), s + i0);
      _mm512_mask_storeu_ps(dst + i0 * kc + p * mr, wm, scale ? _mm512_mul_ps(v, sc) : v);
    }
  }
}

#endif
