/*
 * A stand-alone check of the native kernels, without Node: the GEMM (kernels_check.c), the
 * grouped MoE GEMMs (kernels_check_moe.c), the router pass (kernels_check_router.c), the
 * SwiGLU passes (kernels_check_act.c), the AVX2 packs (kernels_check_packs.c), the bf16
 * conversions and pair packs (kernels_check_bf16.c, the MoE kernels' bf16 operand packs in
 * kernels_check_moe_bf16.c) and the f32 exp rows and GELU (kernels_check_vec.c) of every ISA
 * this CPU runs, against plain C references in double at small sizes (the packs bit for bit
 * against panels built by their formulas), and once the thread pool's hand-over between
 * back-to-back jobs (kernels_check_pool.c). Built for the host and, with Debian's
 * aarch64-linux-gnu-gcc, for aarch64 to run the NEON kernels under qemu-aarch64
 * (test/native-kernels-check.test.ts). Not part of the addon (binding.gyp lists the kernel
 * folders only). Prints one line per failure; exits 1 if any check failed.
 */
#ifndef MOEKIT_KERNELS_CHECK_H
#define MOEKIT_KERNELS_CHECK_H

#include <stdint.h>

/* deterministic uniform values in [-1, 1) */
double kc_rand(void);
void kc_fill_f32(float *x, int64_t n);
void kc_fill_f64(double *x, int64_t n);

/* Records one comparison: |got - want| <= tol * (1 + |want|); prints the first few misses.
 * Returns whether it passed. */
int kc_close(const char *what, int64_t at, double got, double want, double tol);
/* Records a failure that is not a value comparison. */
void kc_fail(const char *fmt, ...);

/* The checks of each file for the ISA in use (mk_cpu_isa()); failures go through kc_fail. */
void kc_check_moe(void);
void kc_check_router(void);
void kc_check_act(void);
void kc_check_packs(void);
void kc_check_bf16(void);
void kc_check_moe_bf16(void);
void kc_check_vec(void);
/* Not per ISA: the thread pool's hand-over between back-to-back jobs (kernels_check_pool.c). */
void kc_check_pool(void);

#endif
