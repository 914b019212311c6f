/*
 * aarch64 NEON (ASIMD) GEMM micro-kernels, the MK_ISA_NEON entries of gemm_kernels.h's tables.
 * Defined in gemm_neon.c on aarch64 only (ASIMD is baseline there: no target attributes).
 */
#ifndef MOEKIT_GEMM_NEON_H
#define MOEKIT_GEMM_NEON_H

#include "gemm_kernels.h"

#if defined(__aarch64__)
extern const mk_kernel_f32 mk_gemm_neon_f32;
extern const mk_kernel_f64 mk_gemm_neon_f64;

/* The direct family for n columns (gemm_kernels.h: mk_gemm_direct_f32). */
const mk_direct_f32 *mk_gemm_neon_direct_f32(int64_t n);
const mk_direct_f64 *mk_gemm_neon_direct_f64(int64_t n);
#endif

#endif
