/*
 * AVX2 SwiGLU for f32 (moe_act_vec.h): 8 lanes; a row's tail goes through a zero-padded copy so
 * every element takes the vector arithmetic.
 */
#include "moe_act_vec.h"
#include "vec_exp.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* sigmoid(x) = 1 / (1 + e^-x), e^y by vec_exp.h's mk_vexp8; the reciprocal is a division: rcp
 * (12 bits) with one Newton step missed 1 by an ulp, which g * (1 - sigmoid(g)) turns into ~6e-6
 * of the gradient at large g */
static AVX2 inline __m256 sigmoid8(__m256 x) {
  __m256 y = _mm256_sub_ps(_mm256_setzero_ps(), x);
  y = _mm256_max_ps(_mm256_min_ps(y, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-88.0f));
  const __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), mk_vexp8(y));
  return _mm256_div_ps(_mm256_set1_ps(1.0f), d);
}

static AVX2 inline __m256 swiglu8(__m256 g, __m256 u) { return _mm256_mul_ps(_mm256_mul_ps(g, sigmoid8(g)), u); }

AVX2 void mk_swiglu_fwd_row_f32_avx2(const float *g, const float *u, float *h, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(h + i, swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
  if (i == n) return;
  float gt[8] = {0}, ut[8] = {0}, ht[8];
  memcpy(gt, g + i, sizeof(float) * (size_t)(n - i));
  memcpy(ut, u + i, sizeof(float) * (size_t)(n - i));
  _mm256_storeu_ps(ht, swiglu8(_mm256_loadu_ps(gt), _mm256_loadu_ps(ut)));
  memcpy(h + i, ht, sizeof(float) * (size_t)(n - i));
}

/* the backward of 8 lanes (moe_act.c's swiglu_bwd_row_f32); returns dy * h for the dot */
static AVX2 inline __m256 swiglu_bwd8(__m256 gv, __m256 uv, __m256 dyv, __m256 w, __m256 *dg, __m256 *du, __m256 *hv) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sg = sigmoid8(gv), s = _mm256_mul_ps(gv, sg);
  *hv = _mm256_mul_ps(s, uv);
  const __m256 dh = _mm256_mul_ps(w, dyv);
  const __m256 ds = _mm256_mul_ps(sg, _mm256_fmadd_ps(gv, _mm256_sub_ps(one, sg), one)); /* silu'(g) */
  *dg = _mm256_mul_ps(_mm256_mul_ps(dh, uv), ds);
  *du = _mm256_mul_ps(dh, s);
  return _mm256_mul_ps(dyv, *hv);
}

AVX2 double mk_swiglu_bwd_row_f32_avx2(const float *g, const float *u, const float *dy, float wr, float *dg, float *du,
                                       float *ho, int64_t n, int64_t pf) {
  (void)pf; /* not measured here: the AVX-512 rows prefetch */
  const __m256 w = _mm256_set1_ps(wr);
  __m256 dot = _mm256_setzero_ps(), dgv, duv, hv;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    dot = _mm256_add_ps(
        dot, swiglu_bwd8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i), _mm256_loadu_ps(dy + i), w, &dgv, &duv, &hv));
    _mm256_storeu_ps(dg + i, dgv);
    _mm256_storeu_ps(du + i, duv);
    if (ho) _mm256_storeu_ps(ho + i, hv);
  }
  if (i < n) {
    const size_t tail = sizeof(float) * (size_t)(n - i);
    float gt[8] = {0}, ut[8] = {0}, dyt[8] = {0}, dgt[8], dut[8], ht[8];
    memcpy(gt, g + i, tail);
    memcpy(ut, u + i, tail);
    memcpy(dyt, dy + i, tail);
    dot = _mm256_add_ps(
        dot, swiglu_bwd8(_mm256_loadu_ps(gt), _mm256_loadu_ps(ut), _mm256_loadu_ps(dyt), w, &dgv, &duv, &hv));
    _mm256_storeu_ps(dgt, dgv);
    _mm256_storeu_ps(dut, duv);
    _mm256_storeu_ps(ht, hv);
    memcpy(dg + i, dgt, tail);
    memcpy(du + i, dut, tail);
    if (ho) memcpy(ho + i, ht, tail);
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, dot);
  double sum = 0;
  for (int l = 0; l < 8; l++) sum += lanes[l];
  return sum;
}

#endif
