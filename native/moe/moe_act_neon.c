/*
 * NEON SwiGLU for f32 (moe_act_vec.h): 4 lanes, two vectors a step; a row's tail goes through a
 * zero-padded copy so every element takes the vector arithmetic. ASIMD is baseline on aarch64.
 */
#include "moe_act_vec.h"
#include "vec_exp.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

/* sigmoid(x) = 1 / (1 + e^-x), e^y by vec_exp.h's mk_vexp4; the reciprocal estimate (8 bits) is
 * refined by two Newton steps (~23 bits) */
static inline float32x4_t sigmoid4(float32x4_t x) {
  float32x4_t y = vnegq_f32(x);
  y = vmaxq_f32(vminq_f32(y, vdupq_n_f32(88.0f)), vdupq_n_f32(-88.0f));
  const float32x4_t d = vaddq_f32(vdupq_n_f32(1.0f), mk_vexp4(y));
  float32x4_t q = vrecpeq_f32(d);
  q = vmulq_f32(q, vrecpsq_f32(d, q));
  return vmulq_f32(q, vrecpsq_f32(d, q));
}

static inline float32x4_t swiglu4(float32x4_t g, float32x4_t u) { return vmulq_f32(vmulq_f32(g, sigmoid4(g)), u); }

void mk_swiglu_fwd_row_f32_neon(const float *g, const float *u, float *h, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    vst1q_f32(h + i, swiglu4(vld1q_f32(g + i), vld1q_f32(u + i)));
    vst1q_f32(h + i + 4, swiglu4(vld1q_f32(g + i + 4), vld1q_f32(u + i + 4)));
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(h + i, swiglu4(vld1q_f32(g + i), vld1q_f32(u + i)));
  if (i == n) return;
  float gt[4] = {0}, ut[4] = {0}, ht[4];
  memcpy(gt, g + i, sizeof(float) * (size_t)(n - i));
  memcpy(ut, u + i, sizeof(float) * (size_t)(n - i));
  vst1q_f32(ht, swiglu4(vld1q_f32(gt), vld1q_f32(ut)));
  memcpy(h + i, ht, sizeof(float) * (size_t)(n - i));
}

/* the backward of 4 lanes (moe_act.c's swiglu_bwd_row_f32); returns dy * h for the dot */
static inline float32x4_t swiglu_bwd4(float32x4_t gv, float32x4_t uv, float32x4_t dyv, float32x4_t w, float32x4_t *dg,
                                      float32x4_t *du, float32x4_t *hv) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  const float32x4_t sg = sigmoid4(gv), s = vmulq_f32(gv, sg);
  *hv = vmulq_f32(s, uv);
  const float32x4_t dh = vmulq_f32(w, dyv);
  const float32x4_t ds = vmulq_f32(sg, vfmaq_f32(one, gv, vsubq_f32(one, sg))); /* silu'(g) */
  *dg = vmulq_f32(vmulq_f32(dh, uv), ds);
  *du = vmulq_f32(dh, s);
  return vmulq_f32(dyv, *hv);
}

double mk_swiglu_bwd_row_f32_neon(const float *g, const float *u, const float *dy, float wr, float *dg, float *du,
                                  float *ho, int64_t n, int64_t pf) {
  (void)pf; /* not measured here: the AVX-512 rows prefetch */
  const float32x4_t w = vdupq_n_f32(wr);
  float32x4_t dot = vdupq_n_f32(0.0f), dgv, duv, hv;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    dot = vaddq_f32(dot, swiglu_bwd4(vld1q_f32(g + i), vld1q_f32(u + i), vld1q_f32(dy + i), w, &dgv, &duv, &hv));
    vst1q_f32(dg + i, dgv);
    vst1q_f32(du + i, duv);
    if (ho) vst1q_f32(ho + i, hv);
  }
  if (i < n) {
    const size_t tail = sizeof(float) * (size_t)(n - i);
    float gt[4] = {0}, ut[4] = {0}, dyt[4] = {0}, dgt[4], dut[4], ht[4];
    memcpy(gt, g + i, tail);
    memcpy(ut, u + i, tail);
    memcpy(dyt, dy + i, tail);
    dot = vaddq_f32(dot, swiglu_bwd4(vld1q_f32(gt), vld1q_f32(ut), vld1q_f32(dyt), w, &dgv, &duv, &hv));
    vst1q_f32(dgt, dgv);
    vst1q_f32(dut, duv);
    vst1q_f32(ht, hv);
    memcpy(dg + i, dgt, tail);
    memcpy(du + i, dut, tail);
    if (ho) memcpy(ho + i, ht, tail);
  }
  float lanes[4];
  vst1q_f32(lanes, dot);
  return (double)lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

#endif
