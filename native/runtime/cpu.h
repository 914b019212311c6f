/*
 * Run-time ISA detection. The build never assumes more than baseline x86-64
 * (or the target's baseline elsewhere); kernels compiled for AVX2/AVX-512 via
 * target attributes are picked here, once, at run time. On aarch64 ASIMD (NEON)
 * is baseline: the NEON kernels are always available there.
 */
#ifndef MOEKIT_CPU_H
#define MOEKIT_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

/* The x86 ISAs are ordered (each includes the one below); NEON stands beside them:
 * scalar and NEON are the only ISAs of an aarch64 CPU. */
typedef enum { MK_ISA_SCALAR = 0, MK_ISA_AVX2 = 1, MK_ISA_AVX512 = 2, MK_ISA_NEON = 3 } mk_isa;

/* Best ISA this CPU (and OS) supports. */
mk_isa mk_cpu_detect_isa(void);

/* ISA kernels use: the detected one, lowered by env MOEKIT_ISA (avx2|scalar on
 * x86-64, scalar on aarch64; a name this CPU cannot run is ignored) or
 * by mk_cpu_set_isa (tests use this to cover every kernel on one machine). */
mk_isa mk_cpu_isa(void);

/* Request an ISA; it is clamped to what the CPU supports. Returns the ISA now
 * in use. */
mk_isa mk_cpu_set_isa(mk_isa isa);

/* "avx512" | "avx2" | "neon" | "scalar" */
const char *mk_isa_name(mk_isa isa);

/* Parse a name as above; returns -1 if unknown. */
int mk_isa_parse(const char *name);

/* 1 where a core issues two 512-bit FMAs per cycle, as far as known: AMD family
 * 0x1A (Zen 5) and later. Zen 4 splits a 512-bit FMA over its 256-bit units;
 * other CPUs report 0 (not measured). Kernels use it to pick cache blocking. */
int mk_cpu_avx512_full_width(void);

/* 1 where the bf16 dot-product kernels (VDPBF16PS) run: the CPU has AVX512_BF16 and the ISA in
 * use (mk_cpu_isa, MOEKIT_ISA) is avx512. */
int mk_cpu_bf16_dot(void);

/* Per-core L2 size in KiB, or 0 if unknown. */
int mk_cpu_l2_kib(void);

/* The data caches of one core (L3: the whole cache it shares), in KiB: from cpuid's cache
 * leaves (x86-64), else Linux's sysfs, else typical sizes (32 / 512 / 8192, source
 * "default"). Kernels derive their cache blocking from these (gemm_kernels.c). */
typedef struct {
  int l1d_kib, l2_kib, l3_kib;
  const char *source; /* "cpuid" | "sysfs" | "default" */
} mk_cpu_cache_sizes;
const mk_cpu_cache_sizes *mk_cpu_caches(void);

#ifdef __cplusplus
}
#endif

#endif
