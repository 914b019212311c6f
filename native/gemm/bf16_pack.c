/* bf16 conversions and pair packs (bf16_pack.h): AVX-512, AVX2 and NEON by mk_cpu_isa(), scalar
 * elsewhere and for the tails the vector loops leave (or masked loads and stores on AVX-512).
 * The pair packs assume little-endian memory (x86-64, aarch64): a stored pair of bf16 values
 * read as 32 bits has the lower-indexed one in its low half. */
#include "bf16_pack.h"

#include "cpu.h"
#include "pack_avx512.h"

/* The scalar loops: every ISA's reference, and the fallback. */
static void widen_scalar(const uint16_t *src, int64_t n, float *dst) {
  for (int64_t i = 0; i < n; i++) dst[i] = mk_bf16_to_f32(src[i]);
}

/* dst[i] = bf16(x_i), x_i = src[i] (f32, or bf16 widened when src_bf16), times sc when scaled */
static void round_scalar(const void *src, int src_bf16, int scaled, float sc, int64_t n, uint16_t *dst) {
  for (int64_t i = 0; i < n; i++) {
    float v = src_bf16 ? mk_bf16_to_f32(((const uint16_t *)src)[i]) : ((const float *)src)[i];
    if (scaled) v = sc * v;
    dst[i] = mk_bf16_from_f32(v);
  }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define MK_A512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))
#define MK_A256 __attribute__((target("avx2")))

/* ---- AVX-512 ---- */

static MK_A512 inline __m512i widen16_avx512(__m256i h) { return _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16); }

/* 16 f32 bit patterns -> 16 bf16, the scalar rule lane by lane */
static MK_A512 inline __m256i round16_avx512(__m512i b) {
  const __mmask16 nan =
      _mm512_cmpgt_epu32_mask(_mm512_and_si512(b, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)), odd), 16);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0xffff));
  return _mm512_cvtepi32_epi16(r);
}

static MK_A512 void widen_avx512(const uint16_t *src, int64_t n, float *dst) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_epi32(dst + i, m, widen16_avx512(_mm256_maskz_loadu_epi16(m, src + i)));
  }
}

static MK_A512 void round_avx512(const void *src, int src_bf16, int scaled, float sc, int64_t n, uint16_t *dst) {
  const __m512 s = _mm512_set1_ps(sc);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
    __m512i b = src_bf16 ? widen16_avx512(_mm256_maskz_loadu_epi16(m, (const uint16_t *)src + i))
                         : _mm512_maskz_loadu_epi32(m, (const float *)src + i);
    if (scaled) b = _mm512_castps_si512(_mm512_mul_ps(s, _mm512_castsi512_ps(b)));
    _mm256_mask_storeu_epi16(dst + i, m, round16_avx512(b));
  }
}

static MK_A512 void interleave_avx512(const uint16_t *lo, const uint16_t *hi, int64_t w, int width, uint32_t *out) {
  for (int64_t i = 0; i < width; i += 16) {
    const int64_t have = w - i < 0 ? 0 : w - i > 16 ? 16 : w - i, room = width - i > 16 ? 16 : width - i;
    const __mmask16 lm = (__mmask16)((1u << have) - 1), sm = (__mmask16)((1u << room) - 1);
    __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lm, lo + i));
    if (hi) v = _mm512_or_si512(v, widen16_avx512(_mm256_maskz_loadu_epi16(lm, hi + i)));
    _mm512_mask_storeu_epi32(out + i, sm, v);
  }
}

/* ---- AVX2 ---- */

static MK_A256 inline __m256i widen8_avx2(__m128i h) { return _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16); }

/* 8 f32 bit patterns -> 8 bf16 (the NaN test is signed: |b| and the bound are both positive) */
static MK_A256 inline __m128i round8_avx2(__m256i b) {
  const __m256i nan =
      _mm256_cmpgt_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)), odd), 16);
  r = _mm256_or_si256(r, _mm256_srli_epi32(nan, 16)); /* NaN lanes: 0xffff */
  return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}

static MK_A256 void widen_avx2(const uint16_t *src, int64_t n, float *dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_si256((__m256i *)(dst + i), widen8_avx2(_mm_loadu_si128((const __m128i *)(src + i))));
  widen_scalar(src + i, n - i, dst + i);
}

static MK_A256 void round_avx2(const void *src, int src_bf16, int scaled, float sc, int64_t n, uint16_t *dst) {
  const __m256 s = _mm256_set1_ps(sc);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i b = src_bf16 ? widen8_avx2(_mm_loadu_si128((const __m128i *)((const uint16_t *)src + i)))
                         : _mm256_loadu_si256((const __m256i *)((const float *)src + i));
    if (scaled) b = _mm256_castps_si256(_mm256_mul_ps(s, _mm256_castsi256_ps(b)));
    _mm_storeu_si128((__m128i *)(dst + i), round8_avx2(b));
  }
  round_scalar(src_bf16 ? (const void *)((const uint16_t *)src + i) : (const void *)((const float *)src + i), src_bf16,
               scaled, sc, n - i, dst + i);
}
#endif

#if defined(__aarch64__)
#include <arm_neon.h>

static inline uint32x4_t widen4_neon(uint16x4_t h) { return vshll_n_u16(h, 16); }

static inline uint16x4_t round4_neon(uint32x4_t b) {
  const uint32x4_t nan = vcgtq_u32(vandq_u32(b, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
  const uint32x4_t odd = vandq_u32(vshrq_n_u32(b, 16), vdupq_n_u32(1));
  const uint32x4_t r = vshrq_n_u32(vaddq_u32(vaddq_u32(b, vdupq_n_u32(0x7fffu)), odd), 16);
  return vmovn_u32(vorrq_u32(r, vshrq_n_u32(nan, 16)));
}

static void widen_neon(const uint16_t *src, int64_t n, float *dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint16x8_t h = vld1q_u16(src + i);
    vst1q_u32((uint32_t *)(dst + i), widen4_neon(vget_low_u16(h)));
    vst1q_u32((uint32_t *)(dst + i + 4), vshll_high_n_u16(h, 16));
  }
  widen_scalar(src + i, n - i, dst + i);
}

static void round_neon(const void *src, int src_bf16, int scaled, float sc, int64_t n, uint16_t *dst) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    uint32x4_t b = src_bf16 ? widen4_neon(vld1_u16((const uint16_t *)src + i)) : vld1q_u32((const uint32_t *)src + i);
    if (scaled) b = vreinterpretq_u32_f32(vmulq_n_f32(vreinterpretq_f32_u32(b), sc));
    vst1_u16(dst + i, round4_neon(b));
  }
  round_scalar(src_bf16 ? (const void *)((const uint16_t *)src + i) : (const void *)((const float *)src + i), src_bf16,
               scaled, sc, n - i, dst + i);
}
#endif

typedef void (*round_fn)(const void *src, int src_bf16, int scaled, float sc, int64_t n, uint16_t *dst);

/* the rounding loop of mk_cpu_isa() */
static round_fn round_for_isa(void) {
  switch (mk_cpu_isa()) {
#if defined(__x86_64__)
    case MK_ISA_AVX512:
      return round_avx512;
    case MK_ISA_AVX2:
      return round_avx2;
#endif
#if defined(__aarch64__)
    case MK_ISA_NEON:
      return round_neon;
#endif
    default:
      return round_scalar;
  }
}

static void round_any(const void *src, int src_bf16, int scaled, float sc, int64_t n, uint16_t *dst) {
  round_for_isa()(src, src_bf16, scaled, sc, n, dst);
}

void mk_bf16_widen(const uint16_t *src, int64_t n, float *dst) {
  switch (mk_cpu_isa()) {
#if defined(__x86_64__)
    case MK_ISA_AVX512:
      widen_avx512(src, n, dst);
      return;
    case MK_ISA_AVX2:
      widen_avx2(src, n, dst);
      return;
#endif
#if defined(__aarch64__)
    case MK_ISA_NEON:
      widen_neon(src, n, dst);
      return;
#endif
    default:
      widen_scalar(src, n, dst);
  }
}

void mk_bf16_narrow(const float *src, int64_t n, uint16_t *dst) { round_any(src, 0, 0, 1.0f, n, dst); }

void mk_bf16_narrow_rows(const float *src, int64_t lds, int64_t rows, int64_t n, uint16_t *dst, int64_t ldd) {
  const round_fn round = round_for_isa();
  for (int64_t i = 0; i < rows; i++) round(src + i * lds, 0, 0, 1.0f, n, dst + i * ldd);
}

void mk_bf16_narrow_scaled(const void *src, int src_bf16, float sc, int64_t n, uint16_t *dst) {
  round_any(src, src_bf16, 1, sc, n, dst);
}

void mk_bf16_pairs_from_rows(const uint16_t *const *rows, int h, int64_t kc, int width, uint32_t *out) {
  const int64_t whole = kc / 2;
#if defined(__x86_64__)
  if (mk_cpu_isa() == MK_ISA_AVX512) {
    for (int i0 = 0; i0 < width; i0 += 16) { /* 16 panel columns at a time: a 16 x 16 transpose of pairs */
      const int bw = width - i0 < 16 ? width - i0 : 16, left = h - i0, bh = left < 0 ? 0 : left < bw ? left : bw;
      mk_pack_tr32_avx512(bh ? (const void *const *)(rows + i0) : NULL, bh, whole, bw, width, out + i0);
    }
  } else
#endif
  {
    for (int64_t q = 0; q < whole; q++) {
      uint32_t *o = out + q * width;
      for (int i = 0; i < h; i++) memcpy(o + i, rows[i] + 2 * q, 4);
      for (int i = h; i < width; i++) o[i] = 0;
    }
  }
  if (kc & 1) {
    uint32_t *o = out + whole * width;
    for (int i = 0; i < h; i++) o[i] = rows[i][kc - 1];
    for (int i = h; i < width; i++) o[i] = 0;
  }
}

void mk_bf16_pairs_interleave(const uint16_t *lo, const uint16_t *hi, int64_t w, int width, uint32_t *out) {
#if defined(__x86_64__)
  if (mk_cpu_isa() == MK_ISA_AVX512) {
    interleave_avx512(lo, hi, w, width, out);
    return;
  }
#endif
  for (int64_t i = 0; i < w; i++) out[i] = (uint32_t)lo[i] | (hi ? (uint32_t)hi[i] << 16 : 0);
  for (int64_t i = w; i < width; i++) out[i] = 0;
}

void mk_bf16_pairs_interleave_panels(const uint16_t *lo, const uint16_t *hi, int64_t n, int width, int64_t stride,
                                     uint32_t *out) {
#if defined(__x86_64__)
  const int avx512 = mk_cpu_isa() == MK_ISA_AVX512;
#else
  const int avx512 = 0;
#endif
  for (int64_t j0 = 0; j0 < n; j0 += width, out += stride) {
    const int64_t w = n - j0 < width ? n - j0 : width;
    const uint16_t *h = hi ? hi + j0 : NULL;
#if defined(__x86_64__)
    if (avx512) {
      interleave_avx512(lo + j0, h, w, width, out);
      continue;
    }
#endif
    (void)avx512;
    mk_bf16_pairs_interleave(lo + j0, h, w, width, out);
  }
}
