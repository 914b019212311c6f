/*
 * GEMM entry points (gemm.h): scratch buffers, the work split over the pool,
 * and two instantiations of the driver in gemm_impl.inc (float, double).
 * Micro-kernels are in gemm_kernels.c.
 */
#define _GNU_SOURCE
#include "gemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "gemm_kernels.h"
#include "threadpool.h"

#define MK_MAX_MR 16
#define MK_MAX_NR 64
/* Below this M*N*K, packing and threads cost more than they save. */
#define MK_SMALL_MNK (24.0 * 24 * 24)
/* Products with M or N up to this take the direct path (gemm_impl.inc): it
 * is faster there for every transpose, f32 and f64, router logits included.
 * Small K alone (M, N large) stays packed: as fast or faster there
 * (docs/performance.md: native/gemm/gemm.c: MK_DIRECT_MAX). */
#define MK_DIRECT_MAX 32
/* K chunk of a direct-path task (see the task there). */
#define MK_DIRECT_KB 256

/* ---- per-thread packing buffers (grow-only, freed at thread exit) ---- */

typedef struct {
  void *p[2];
  size_t cap[2];
} mk_scratch;

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *v) {
  mk_scratch *s = (mk_scratch *)v;
  free(s->p[0]);
  free(s->p[1]);
  free(s);
}
static void scratch_init(void) { pthread_key_create(&g_scratch_key, scratch_free); }

/* A 64-byte aligned buffer of >= bytes, private to the calling thread. */
static void *mk_gemm_scratch(int which, size_t bytes) {
  pthread_once(&g_scratch_once, scratch_init);
  mk_scratch *s = (mk_scratch *)pthread_getspecific(g_scratch_key);
  if (!s) {
    s = (mk_scratch *)calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_setspecific(g_scratch_key, s);
  }
  if (s->cap[which] < bytes) {
    free(s->p[which]);
    size_t cap = (bytes + 4095) & ~(size_t)4095;
    s->p[which] = aligned_alloc(64, cap);
    s->cap[which] = s->p[which] ? cap : 0;
  }
  return s->p[which];
}

/* ---- work split ---- */

/* C of each batch entry is cut into gm x gn tiles of tm x tn (multiples of
 * MR / NR); one pool task per (batch, tile). */
typedef struct {
  int64_t gm, gn, tm, tn;
} mk_grid;

/* Pick the grid with the lowest estimated time: rounds of tasks over the
 * threads times the cost of one task, where a task costs its FLOPs plus the
 * packing of its A rows and B columns plus a fixed overhead (units: flops;
 * docs/performance.md: native/gemm/gemm.c: mk_plan_grid). Small tiles balance
 * better but repack operands; this picks e.g. 1x2 for 128x512x2048 and 2x1
 * for 1024^3. */
static void mk_plan_grid(int64_t batch, int64_t M, int64_t N, int64_t K, int mr, int nr, int transA, int transB,
                         int threads, mk_grid *out) {
  /* Packing with contiguous reads and writes (A^T, B) is cheaper than the
   * transposing packs (A, B^T), so prefer tiles that repack the cheap one. */
  const double pack_a = transA ? 12.0 : 36.0, pack_b = transB ? 36.0 : 12.0, task_cost = 2e5;
  const int64_t max_gm = (M + mr - 1) / mr, max_gn = (N + nr - 1) / nr;
  const int64_t max_tiles = 4 * (int64_t)threads;
  double best = -1;
  *out = (mk_grid){1, 1, M, N};
  if (threads <= 1 || 2.0 * batch * M * N * K < 4e6) return; /* not worth waking workers */
  for (int64_t gm = 1; gm <= max_gm && gm <= max_tiles; gm++) {
    int64_t tm = ((M + gm - 1) / gm + mr - 1) / mr * mr;
    int64_t rgm = (M + tm - 1) / tm;
    if (rgm != gm) continue;
    for (int64_t gn = 1; gn <= max_gn && gm * gn <= max_tiles; gn++) {
      int64_t tn = ((N + gn - 1) / gn + nr - 1) / nr * nr;
      int64_t rgn = (N + tn - 1) / tn;
      if (rgn != gn) continue;
      int64_t tasks = batch * gm * gn;
      int64_t rounds = (tasks + threads - 1) / threads;
      double per = 2.0 * tm * tn * K + (pack_a * tm + pack_b * tn) * K + task_cost;
      double cost = rounds * per;
      if (best < 0 || cost < best * 0.999) {
        best = cost;
        *out = (mk_grid){gm, gn, tm, tn};
      }
    }
  }
}

/* ---- the driver, instantiated for float and double ---- */

#if defined(__x86_64__)
#include "pack_avx2.h"
#include "pack_avx512.h"
/* Which register packs (AVX-512 or AVX2) fit the kernel, MK_PACKS_SCALAR where none do. They
 * copy values only, so results are the bits of the scalar packs. MOEKIT_GEMM_FAST_PACK=0 keeps
 * the scalar packs (A/B measurements). */
static int mk_fast_packs_apply(const mk_kernel_f32 *kr) {
  static int enabled = -1;
  if (enabled < 0) {
    const char *e = getenv("MOEKIT_GEMM_FAST_PACK");
    enabled = !(e && e[0] == '0');
  }
  return enabled ? mk_packs_x86_for(kr) : MK_PACKS_SCALAR;
}
#define GEMM_FAST_PACKS 1
#elif defined(__aarch64__)
#include "pack_neon.h"
static int mk_fast_packs_apply(const mk_kernel_f32 *kr) { return mk_pack_neon_fits(kr); }
#define GEMM_NEON_PACKS 1
#endif
#define T float
#define SFX s
#define KERNEL_T mk_kernel_f32
#define UKR_T mk_ukr_f32
#define GET_KERNEL mk_gemm_kernel_f32
#define DIRECT_T mk_direct_f32
#define GET_DIRECT mk_gemm_direct_f32
#include "gemm_impl.inc"
#undef T
#undef SFX
#undef KERNEL_T
#undef UKR_T
#undef GET_KERNEL
#undef DIRECT_T
#undef GET_DIRECT
#undef GEMM_FAST_PACKS
#undef GEMM_NEON_PACKS

#define T double
#define SFX d
#define KERNEL_T mk_kernel_f64
#define UKR_T mk_ukr_f64
#define GET_KERNEL mk_gemm_kernel_f64
#define DIRECT_T mk_direct_f64
#define GET_DIRECT mk_gemm_direct_f64
#include "gemm_impl.inc"
#undef T
#undef SFX
#undef KERNEL_T
#undef UKR_T
#undef GET_KERNEL
#undef DIRECT_T
#undef GET_DIRECT
