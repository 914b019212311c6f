/*
 * SwiGLU row passes and tile epilogue for f32 with contiguous gate / up columns, vectorised for
 * AVX2 (moe_act_avx2.c) and NEON (moe_act_neon.c), beside moe_act.c's AVX-512 ones: the same
 * sigmoid (Cephes expf's range reduction and polynomial, a divide or a refined reciprocal, ~1e-7),
 * so every ISA's SwiGLU agrees with the scalar double form to float rounding. moe_act.c picks
 * them by mk_cpu_isa().
 */
#ifndef MOEKIT_MOE_ACT_VEC_H
#define MOEKIT_MOE_ACT_VEC_H

#include <stdint.h>

#if defined(__x86_64__)
void mk_swiglu_fwd_rows_f32_avx2(void *p, int64_t b, int64_t e, int64_t task);
void mk_swiglu_bwd_rows_f32_avx2(void *p, int64_t b, int64_t e, int64_t task);
void mk_swiglu_fwd_tile_f32_avx2(const float *g, const float *u, int64_t ld, float *h, int64_t ldh, int64_t rows,
                                 int64_t n);
#endif

#if defined(__aarch64__)
void mk_swiglu_fwd_rows_f32_neon(void *p, int64_t b, int64_t e, int64_t task);
void mk_swiglu_bwd_rows_f32_neon(void *p, int64_t b, int64_t e, int64_t task);
void mk_swiglu_fwd_tile_f32_neon(const float *g, const float *u, int64_t ld, float *h, int64_t ldh, int64_t rows,
                                 int64_t n);
#endif

#endif
