/* The f32 vector kernels (vec_f32.h) for NEON: 4 lanes; a tail goes through a padded copy.
 * ASIMD is baseline on aarch64. */
#include <math.h>
#include <string.h>

#include "kernel_util.h"
#include "vec_exp.h"
#include "vec_f32.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#define VSFX neon
#define VATTR
#define VF float32x4_t
#define VN 4

static inline float32x4_t ldn_neon(const float *p, int64_t k, float fill) {
  float b[4] = {fill, fill, fill, fill};
  memcpy(b, p, sizeof(float) * (size_t)k);
  return vld1q_f32(b);
}
static inline void stn_neon(float *p, int64_t k, float32x4_t v) {
  float b[4];
  vst1q_f32(b, v);
  memcpy(p, b, sizeof(float) * (size_t)k);
}
static inline float32x4_t keep_neon(float32x4_t v, int64_t k) {
  static const uint32_t lanes[4] = {0, 1, 2, 3};
  const uint32x4_t keep = vcltq_u32(vld1q_u32(lanes), vdupq_n_u32((uint32_t)k));
  return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), keep));
}

#define VDUP vdupq_n_f32
#define VLD vld1q_f32
#define VST vst1q_f32
#define VLDN ldn_neon
#define VSTN stn_neon
#define VKEEP keep_neon
#define VADD vaddq_f32
#define VSUB vsubq_f32
#define VMUL vmulq_f32
#define VDIV vdivq_f32
#define VFMA(a, b, c) vfmaq_f32(c, a, b)
#define VMAX vmaxq_f32
#define VMIN vminq_f32
#define VABS vabsq_f32
#define VEXP mk_vexp4
#define VNEGSEL(x, a, b) vbslq_f32(vcltq_f32(x, vdupq_n_f32(0.0f)), a, b)
#define VHMAX vmaxvq_f32

typedef struct {
  float64x2_t lo, hi;
} vd_neon;
static inline vd_neon vd_acc_neon(vd_neon a, float32x4_t v) {
  a.lo = vaddq_f64(a.lo, vcvt_f64_f32(vget_low_f32(v)));
  a.hi = vaddq_f64(a.hi, vcvt_high_f64_f32(v));
  return a;
}
static inline double vd_sum_neon(vd_neon a) { return vaddvq_f64(vaddq_f64(a.lo, a.hi)); }
#define VD vd_neon
#define VD_ZERO ((vd_neon){vdupq_n_f64(0.0), vdupq_n_f64(0.0)})
#define VD_ACC vd_acc_neon
#define VD_SUM vd_sum_neon

#include "vec_f32_impl.inc"

#endif
