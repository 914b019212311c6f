/* The f32 vector kernels (vec_f32.h) for AVX-512: 16 lanes, tails by lane masks. */
#include <math.h>

#include "kernel_util.h"
#include "vec_exp.h"
#include "vec_f32.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define VSFX avx512
#define VATTR __attribute__((target("avx512f,avx512dq,fma")))
#define VF __m512
#define VN 16
#define VMASK(k) ((__mmask16)((1u << (k)) - 1))
#define VDUP(c) _mm512_set1_ps(c)
#define VLD(p) _mm512_loadu_ps(p)
#define VST(p, v) _mm512_storeu_ps(p, v)
#define VLDN(p, k, fill) _mm512_mask_loadu_ps(_mm512_set1_ps(fill), VMASK(k), p)
#define VSTN(p, k, v) _mm512_mask_storeu_ps(p, VMASK(k), v)
#define VKEEP(v, k) _mm512_maskz_mov_ps(VMASK(k), v)
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMUL _mm512_mul_ps
#define VDIV _mm512_div_ps
#define VFMA _mm512_fmadd_ps
#define VMAX _mm512_max_ps
#define VMIN _mm512_min_ps
#define VABS _mm512_abs_ps
#define VEXP mk_vexp16
#define VNEGSEL(x, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), b, a)
#define VHMAX _mm512_reduce_max_ps

typedef struct {
  __m512d lo, hi;
} vd_avx512;
static VATTR inline vd_avx512 vd_acc_avx512(vd_avx512 a, __m512 v) {
  a.lo = _mm512_add_pd(a.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
  a.hi = _mm512_add_pd(a.hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  return a;
}
static VATTR inline double vd_sum_avx512(vd_avx512 a) { return _mm512_reduce_add_pd(_mm512_add_pd(a.lo, a.hi)); }
#define VD vd_avx512
#define VD_ZERO ((vd_avx512){_mm512_setzero_pd(), _mm512_setzero_pd()})
#define VD_ACC vd_acc_avx512
#define VD_SUM vd_sum_avx512

#include "vec_f32_impl.inc"

#endif
