/*
 * Vectorised f32 kernels for the row-wise and activation ops: softmax's and cross-entropy's
 * exp rows (native/ops/rowwise.c) and GELU, erf and tanh forms, with their gradients
 * (native/ops/elementwise.c, native/moe/moe_act.c). Written once over a small vector layer
 * (vec_f32_impl.inc), built per ISA: vec_f32_avx512.c, vec_f32_avx2.c, vec_f32_neon.c.
 * Accuracy (test/vec-f32-kernels.test.ts, against double): exp ~1 ulp (vec_exp.h); GELU a few
 * ulp of x·Φ(x) (erfc of |x|/√2 as t·P(t)·e^(-x²/2), t = 2/(2 + |x|/√2), e^(-x²/2) from the
 * exact split of x²), its gradient a few ulp of |Φ(x)| + |x·φ(x)|; the tanh form as
 * x·σ(2u). The f64 kernels stay scalar (libm).
 */
#ifndef MOEKIT_VEC_F32_H
#define MOEKIT_VEC_F32_H

#include <stdint.h>

typedef struct {
  /* max of x[0..n) (n >= 1); NaN need not win: it reaches the result through the sums below */
  float (*max)(const float *x, int64_t n);
  /* sum of e^(x[j] - m), accumulated in double */
  double (*sum_exp)(const float *x, int64_t n, float m);
  /* y[j] = e^(x[j] - m); returns their sum, accumulated in double */
  double (*exp_store)(const float *x, int64_t n, float m, float *y);
  /* dx[j] = (dy ? dy[j] : 0) - e^(x[j] - c) * g (dx may be dy) */
  void (*sub_exp_mul)(const float *dy, const float *x, int64_t n, float c, float g, float *dx);
  /* y = gelu(x): the erf form, or the tanh form where tanh_form (y may be x) */
  void (*gelu)(const float *x, float *y, int64_t n, int tanh_form);
  /* dx = (w * dy) * gelu'(x); h, if not NULL, = gelu(x); returns <dy, gelu(x)> in double.
   * dx may be x and h may be dy. */
  double (*gelu_backward)(const float *x, const float *dy, float w, float *dx, float *h, int64_t n, int tanh_form);
} mk_vec_f32_kernels;

/* The kernels of the ISA in use (mk_cpu_isa()), or NULL where there are none (scalar). */
const mk_vec_f32_kernels *mk_vec_f32(void);

#if defined(__x86_64__)
extern const mk_vec_f32_kernels mk_vec_f32_avx512, mk_vec_f32_avx2;
#endif
#if defined(__aarch64__)
extern const mk_vec_f32_kernels mk_vec_f32_neon;
#endif

#endif
