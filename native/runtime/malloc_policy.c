/*
 * Keep freed big arrays in the malloc heap.
 * Node allocates ArrayBuffer memory with calloc; glibc serves anything above its mmap
 * threshold (<= 32 MiB) with a fresh mmap and unmaps it on free. Every training step then
 * page-faults its new weight gradients in, 4 KiB at a time, and the weight-gradient GEMMs run
 * much slower on fresh arrays than on reused ones, at the same peak RSS
 * (docs/performance.md: native/runtime/malloc_policy.c: mk_retain_memory).
 * So, at load: serve big blocks from the heap and never trim it (what PyTorch's / jemalloc-
 * style caching allocators do); calloc then re-zeroes a reused block with a memset instead
 * of faulting pages in. Process-wide; MOEKIT_RETAIN_MEMORY=0, or setting glibc's own
 * MALLOC_MMAP_MAX_ / MALLOC_TRIM_THRESHOLD_ / GLIBC_TUNABLES, leaves malloc alone. */
#include "malloc_policy.h"

#include <stdlib.h> /* before the test: glibc's <features.h> defines __GLIBC__ */

#if defined(__GLIBC__)
#include <limits.h>
#include <malloc.h>
void mk_retain_memory(void) {
  const char *e = getenv("MOEKIT_RETAIN_MEMORY");
  if (e && e[0] == '0') return;
  if (getenv("MALLOC_MMAP_MAX_") || getenv("MALLOC_TRIM_THRESHOLD_") || getenv("GLIBC_TUNABLES")) return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}
#else
void mk_retain_memory(void) {}
#endif
