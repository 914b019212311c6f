#define _GNU_SOURCE
#include "cpu.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

static atomic_int g_isa = -1;

mk_isa mk_cpu_detect_isa(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  /* libgcc also checks that the OS saves the wider registers (XCR0). */
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("fma"))
    return MK_ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MK_ISA_AVX2;
#elif defined(__aarch64__)
  return MK_ISA_NEON;
#endif
  return MK_ISA_SCALAR;
}

/* 1 where a CPU whose best ISA is `best` runs `isa`: scalar always, NEON only on aarch64,
 * an x86 ISA up to the best one. */
static int isa_runs(int isa, int best) {
  if (isa == MK_ISA_SCALAR) return 1;
  if (isa == MK_ISA_NEON || best == MK_ISA_NEON) return isa == best;
  return isa >= 0 && isa <= best;
}

int mk_isa_parse(const char *name) {
  if (!name) return -1;
  if (strcmp(name, "avx512") == 0) return MK_ISA_AVX512;
  if (strcmp(name, "avx2") == 0) return MK_ISA_AVX2;
  if (strcmp(name, "neon") == 0) return MK_ISA_NEON;
  if (strcmp(name, "scalar") == 0) return MK_ISA_SCALAR;
  return -1;
}

const char *mk_isa_name(mk_isa isa) {
  switch (isa) {
    case MK_ISA_AVX512:
      return "avx512";
    case MK_ISA_AVX2:
      return "avx2";
    case MK_ISA_NEON:
      return "neon";
    default:
      return "scalar";
  }
}

mk_isa mk_cpu_isa(void) {
  int isa = atomic_load_explicit(&g_isa, memory_order_relaxed);
  if (isa >= 0) return (mk_isa)isa;
  isa = mk_cpu_detect_isa();
  int want = mk_isa_parse(getenv("MOEKIT_ISA"));
  if (want >= 0 && isa_runs(want, isa)) isa = want;
  atomic_store(&g_isa, isa);
  return (mk_isa)isa;
}

mk_isa mk_cpu_set_isa(mk_isa isa) {
  mk_isa best = mk_cpu_detect_isa();
  if (!isa_runs((int)isa, (int)best)) isa = best;
  atomic_store(&g_isa, (int)isa);
  return isa;
}

int mk_cpu_avx512_full_width(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
  /* vendor string "AuthenticAMD" in ebx, edx, ecx */
  if (b != 0x68747541u || d != 0x69746e65u || c != 0x444d4163u) return 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  unsigned family = (a >> 8) & 0xF;
  if (family == 0xF) family += (a >> 20) & 0xFF;
  return family >= 0x1A;
#else
  return 0;
#endif
}

int mk_cpu_l2_kib(void) {
#if defined(_SC_LEVEL2_CACHE_SIZE)
  long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (v > 0) return (int)(v / 1024);
#endif
  return 0;
}
