/* The f32 vector kernels (vec_f32.h) for AVX2: 8 lanes; a tail goes through a padded copy. */
#include <math.h>
#include <string.h>

#include "kernel_util.h"
#include "vec_exp.h"
#include "vec_f32.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define VSFX avx2
#define VATTR __attribute__((target("avx2,fma")))
#define VF __m256
#define VN 8

static VATTR inline __m256 ldn_avx2(const float *p, int64_t k, float fill) {
  float b[8] = {fill, fill, fill, fill, fill, fill, fill, fill};
  memcpy(b, p, sizeof(float) * (size_t)k);
  return _mm256_loadu_ps(b);
}
static VATTR inline void stn_avx2(float *p, int64_t k, __m256 v) {
  float b[8];
  _mm256_storeu_ps(b, v);
  memcpy(p, b, sizeof(float) * (size_t)k);
}
static VATTR inline __m256 keep_avx2(__m256 v, int64_t k) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), lane)));
}
static VATTR inline float hmax_avx2(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

#define VDUP(c) _mm256_set1_ps(c)
#define VLD(p) _mm256_loadu_ps(p)
#define VST(p, v) _mm256_storeu_ps(p, v)
#define VLDN ldn_avx2
#define VSTN stn_avx2
#define VKEEP keep_avx2
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VDIV _mm256_div_ps
#define VFMA _mm256_fmadd_ps
#define VMAX _mm256_max_ps
#define VMIN _mm256_min_ps
#define VABS(x) _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)))
#define VEXP mk_vexp8
#define VNEGSEL(x, a, b) _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ))
#define VHMAX hmax_avx2

typedef struct {
  __m256d lo, hi;
} vd_avx2;
static VATTR inline vd_avx2 vd_acc_avx2(vd_avx2 a, __m256 v) {
  a.lo = _mm256_add_pd(a.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  a.hi = _mm256_add_pd(a.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  return a;
}
static VATTR inline double vd_sum_avx2(vd_avx2 a) {
  double l[4];
  _mm256_storeu_pd(l, _mm256_add_pd(a.lo, a.hi));
  return (l[0] + l[1]) + (l[2] + l[3]);
}
#define VD vd_avx2
#define VD_ZERO ((vd_avx2){_mm256_setzero_pd(), _mm256_setzero_pd()})
#define VD_ACC vd_acc_avx2
#define VD_SUM vd_sum_avx2

#include "vec_f32_impl.inc"

#endif
