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

/* Per-core L2 size in KiB, or 0 if unknown. */
int mk_cpu_l2_kib(void);

#ifdef __cplusplus
}
#endif

#endif
