#define _GNU_SOURCE
#include "cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
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

int mk_cpu_bf16_dot(void) {
#if defined(__x86_64__)
  static int known = -1;
  if (known < 0) known = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
  return known && mk_cpu_isa() == MK_ISA_AVX512;
#else
  return 0;
#endif
}

/* ---- data cache sizes ---- */

/* cpuid's deterministic cache parameters: Intel's leaf 4, AMD's 0x8000001D (same layout).
 * Sets the sizes it finds; returns 0 where the CPU has no such leaf. */
static int caches_from_cpuid(mk_cpu_cache_sizes *out) {
#if defined(__x86_64__) && defined(__GNUC__)
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
  const unsigned max_basic = a;
  const int intel = b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu; /* "GenuineIntel" */
  unsigned leaf = 0;
  if (intel && max_basic >= 4) leaf = 4;
  if (!intel) {
    /* AMD (and Hygon): leaf 0x8000001D when the topology extensions are there */
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x8000001Du && __get_cpuid(0x80000001u, &a, &b, &c, &d) &&
        (c >> 22 & 1))
      leaf = 0x8000001Du;
  }
  if (!leaf) return 0;
  int found = 0;
  for (unsigned i = 0; i < 16; i++) {
    __cpuid_count(leaf, i, a, b, c, d);
    const unsigned type = a & 31, level = a >> 5 & 7;
    if (type == 0) break;
    if (type == 2) continue; /* instruction cache */
    const long bytes = (long)((b >> 22) + 1) * ((b >> 12 & 0x3ff) + 1) * ((b & 0xfff) + 1) * ((long)c + 1);
    const int kib = (int)(bytes / 1024);
    if (level == 1) out->l1d_kib = kib;
    if (level == 2) out->l2_kib = kib;
    if (level == 3) out->l3_kib = kib;
    found = 1;
  }
  return found && out->l1d_kib > 0 && out->l2_kib > 0;
#else
  (void)out;
  return 0;
#endif
}

/* Linux's sysfs view of cpu0's caches ("32K", "1024K", "32M"). */
static int caches_from_sysfs(mk_cpu_cache_sizes *out) {
  int found = 0;
  for (int i = 0; i < 8; i++) {
    char path[96], buf[32];
    int level = 0, kib = 0;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
    FILE *f = fopen(path, "r");
    if (!f) break;
    const int is_instr = fgets(buf, sizeof buf, f) && strncmp(buf, "Instruction", 11) == 0;
    fclose(f);
    if (is_instr) continue;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
    if ((f = fopen(path, "r"))) {
      if (fscanf(f, "%d", &level) != 1) level = 0;
      fclose(f);
    }
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
    if ((f = fopen(path, "r"))) {
      char unit = 'K';
      if (fscanf(f, "%d%c", &kib, &unit) < 1) kib = 0;
      if (unit == 'M') kib *= 1024;
      fclose(f);
    }
    if (kib <= 0) continue;
    if (level == 1) out->l1d_kib = kib;
    if (level == 2) out->l2_kib = kib;
    if (level == 3) out->l3_kib = kib;
    found = 1;
  }
  return found && out->l1d_kib > 0 && out->l2_kib > 0;
}

static mk_cpu_cache_sizes g_caches;
static pthread_once_t g_caches_once = PTHREAD_ONCE_INIT;

static void caches_init(void) {
  mk_cpu_cache_sizes c = {0, 0, 0, "cpuid"};
  if (!caches_from_cpuid(&c)) {
    c = (mk_cpu_cache_sizes){0, 0, 0, "sysfs"};
    if (!caches_from_sysfs(&c)) c = (mk_cpu_cache_sizes){32, 512, 8192, "default"};
  }
  g_caches = c;
}

const mk_cpu_cache_sizes *mk_cpu_caches(void) {
  pthread_once(&g_caches_once, caches_init);
  return &g_caches;
}

int mk_cpu_l2_kib(void) {
  const mk_cpu_cache_sizes *c = mk_cpu_caches();
  return c->source[0] == 'd' ? 0 : c->l2_kib;
}
