/*
 * e^x for f32 vectors, one per ISA (AVX-512: 16 lanes, AVX2: 8, NEON: 4), the one vector exp of
 * the addon: the MoE SwiGLU's sigmoids (native/moe/moe_act*.c) and the f32 row and activation
 * kernels (native/ops/vec_f32_impl.inc) call it.
 *
 * Cephes expf: n = round(x·log2 e), r = x - n·ln 2 (ln 2 in two parts), e^r by a degree-7
 * polynomial (1 + r + r²·P5(r)), times 2^n; ~1 ulp against the correctly rounded value. Every
 * input is handled: x is first clamped to [-104, 89] in an order that keeps NaN (NaN in, NaN
 * out); below -103.97 e^x rounds to 0, above 88.72 to +inf; results in the subnormal range are
 * rounded once. AVX-512 scales with vscalefps; AVX2 and NEON build 2^n in the exponent bits in
 * two halves (n = n1 + n2, each 2^ni a normal float), so n from -150 to 128 needs no branch.
 */
#ifndef MOEKIT_VEC_EXP_H
#define MOEKIT_VEC_EXP_H

#define MK_VEXP_LO (-104.0f)
#define MK_VEXP_HI 89.0f
#define MK_VEXP_LOG2E 1.44269504088896341f
#define MK_VEXP_LN2_HI 0.693359375f
#define MK_VEXP_LN2_LO (-2.12194440e-4f)
#define MK_VEXP_P0 1.9875691500E-4f
#define MK_VEXP_P1 1.3981999507E-3f
#define MK_VEXP_P2 8.3334519073E-3f
#define MK_VEXP_P3 4.1665795894E-2f
#define MK_VEXP_P4 1.6666665459E-1f
#define MK_VEXP_P5 5.0000001201E-1f

#if defined(__x86_64__)
#include <immintrin.h>

static inline __attribute__((target("avx512f,fma"))) __m512 mk_vexp16(__m512 x) {
  /* max(lo, x) then min(hi, .): the second operand is returned for NaN, so NaN stays */
  x = _mm512_min_ps(_mm512_set1_ps(MK_VEXP_HI), _mm512_max_ps(_mm512_set1_ps(MK_VEXP_LO), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(MK_VEXP_LOG2E)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(MK_VEXP_LN2_HI), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(MK_VEXP_LN2_LO), r);
  __m512 p = _mm512_set1_ps(MK_VEXP_P0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MK_VEXP_P1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MK_VEXP_P2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MK_VEXP_P3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MK_VEXP_P4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MK_VEXP_P5));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

static inline __attribute__((target("avx2,fma"))) __m256 mk_vexp8(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(MK_VEXP_HI), _mm256_max_ps(_mm256_set1_ps(MK_VEXP_LO), x));
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(MK_VEXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(MK_VEXP_LN2_HI), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(MK_VEXP_LN2_LO), r);
  __m256 p = _mm256_set1_ps(MK_VEXP_P0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(MK_VEXP_P1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(MK_VEXP_P2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(MK_VEXP_P3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(MK_VEXP_P4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(MK_VEXP_P5));
  p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}
#endif

#if defined(__aarch64__)
#include <arm_neon.h>

static inline float32x4_t mk_vexp4(float32x4_t x) {
  /* FMAX / FMIN return NaN when either operand is NaN */
  x = vminq_f32(vdupq_n_f32(MK_VEXP_HI), vmaxq_f32(vdupq_n_f32(MK_VEXP_LO), x));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(MK_VEXP_LOG2E)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(MK_VEXP_LN2_HI));
  r = vfmsq_f32(r, n, vdupq_n_f32(MK_VEXP_LN2_LO));
  float32x4_t p = vdupq_n_f32(MK_VEXP_P0);
  p = vfmaq_f32(vdupq_n_f32(MK_VEXP_P1), p, r);
  p = vfmaq_f32(vdupq_n_f32(MK_VEXP_P2), p, r);
  p = vfmaq_f32(vdupq_n_f32(MK_VEXP_P3), p, r);
  p = vfmaq_f32(vdupq_n_f32(MK_VEXP_P4), p, r);
  p = vfmaq_f32(vdupq_n_f32(MK_VEXP_P5), p, r);
  p = vaddq_f32(vfmaq_f32(r, p, vmulq_f32(r, r)), vdupq_n_f32(1.0f));
  const int32x4_t ni = vcvtnq_s32_f32(n), n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
  const int32x4_t bias = vdupq_n_s32(127);
  const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
  const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
  return vmulq_f32(vmulq_f32(p, s1), s2);
}
#endif

#endif
