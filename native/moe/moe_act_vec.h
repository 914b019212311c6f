/*
 * SwiGLU rows for f32 with contiguous gate / up columns, vectorised for AVX2 (moe_act_avx2.c)
 * and NEON (moe_act_neon.c), beside moe_act.c's AVX-512 ones, which runs them over rows: the same
 * sigmoid (Cephes expf's range reduction and polynomial, a divide or a refined reciprocal, ~1e-7),
 * so every ISA's SwiGLU agrees with the scalar double form to float rounding. moe_act.c picks
 * them by mk_cpu_isa().
 */
#ifndef MOEKIT_MOE_ACT_VEC_H
#define MOEKIT_MOE_ACT_VEC_H

#include <stdint.h>

/* One row: h = silu(g) * u for n elements; the backward (dg, du; ho, if not NULL, the recomputed
 * h; dg / du may be g / u, ho may be dy) returns <dy, h>. pf: how far ahead of the row the caller
 * would like the gate / up values warmed (a prefetch distance in elements; may be ignored). */
typedef void (*mk_swiglu_fwd_row_fn)(const float *g, const float *u, float *h, int64_t n);
typedef double (*mk_swiglu_bwd_row_fn)(const float *g, const float *u, const float *dy, float wr, float *dg, float *du,
                                       float *ho, int64_t n, int64_t pf);

#if defined(__x86_64__)
void mk_swiglu_fwd_row_f32_avx2(const float *g, const float *u, float *h, int64_t n);
double mk_swiglu_bwd_row_f32_avx2(const float *g, const float *u, const float *dy, float wr, float *dg, float *du,
                                  float *ho, int64_t n, int64_t pf);
#endif

#if defined(__aarch64__)
void mk_swiglu_fwd_row_f32_neon(const float *g, const float *u, float *h, int64_t n);
double mk_swiglu_bwd_row_f32_neon(const float *g, const float *u, const float *dy, float wr, float *dg, float *du,
                                  float *ho, int64_t n, int64_t pf);
#endif

#endif
