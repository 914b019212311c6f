/*
 * The grouped GEMMs over expert segments and the combine (moe.h): moe_impl.inc, once per
 * element type, runs a GEMM job as the tasks moe_sched.c plans, in a batch or a row fusion when
 * one is open. moe_napi.c has the JS exports and their exact semantics.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "gemm_kernels.h"
#include "moe.h"
#include "bf16_pack.h"
#include "moe_bf16.h"
#include "moe_fuse.h"

#define MK_MOE_MAX_MR 16
#define MK_MOE_MAX_NR 64

/* ---- x86 f32 register packs (pack_avx512.h, pack_avx2.h) --------------------------------
 * Used when the job's fast_pack says which (f32, kernels whose panels they write). */
#if defined(__x86_64__)
#include "pack_avx2.h"
#include "pack_avx512.h"

/* development knob: MOEKIT_MOE_FAST_PACK=0 keeps the scalar packs (A/B measurements) */
static int moe_fast_pack_enabled(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("MOEKIT_MOE_FAST_PACK");
    v = !(e && e[0] == '0');
  }
  return v;
}
#define MOE_FAST_PACKS 1
#elif defined(__aarch64__)
#include "pack_neon.h"
#define MOE_NEON_PACKS 1
#endif

#define MOE_MIXED_PACKS 1
#define T float
#define SFX f32
#define KERNEL_T mk_kernel_f32
#define UKR_T mk_ukr_f32
#define GET_KERNEL mk_gemm_kernel_f32
#include "moe_impl.inc"
#undef T
#undef SFX
#undef KERNEL_T
#undef UKR_T
#undef GET_KERNEL
#undef MOE_FAST_PACKS
#undef MOE_NEON_PACKS
#undef MOE_MIXED_PACKS

/* the register packs serve f32 jobs whose kernel they fit (pack_avx512.h, pack_avx2.h) */
static int fast_packs_apply(const mk_kernel_f32 *kr) {
#if defined(__x86_64__)
  return moe_fast_pack_enabled() ? mk_packs_x86_for(kr) : MK_PACKS_SCALAR;
#elif defined(__aarch64__)
  return mk_pack_neon_fits(kr);
#else
  (void)kr;
  return 0;
#endif
}

#define T double
#define SFX f64
#define KERNEL_T mk_kernel_f64
#define UKR_T mk_ukr_f64
#define GET_KERNEL mk_gemm_kernel_f64
#include "moe_impl.inc"
#undef T
#undef SFX
#undef KERNEL_T
#undef UKR_T
#undef GET_KERNEL

/* Builds the typed job of a GEMM (the f32 one with the register packs where they apply) and runs it. */
#define GEMM_JOB(SFX, T, kr_)                                                                                        \
  {                                                                                                                  \
    .mode = mode, .kr = (kr_), .a = (const T *)g->a, .a_idx = g->a_idx, .scale = (const T *)g->scale, .lda = g->lda, \
    .b = (const T *)g->b, .b_idx = g->b_idx, .ldb = g->ldb, .b_es = g->b_es, .b_trans = g->b_trans, .c = (T *)g->c,  \
    .ldc = g->ldc, .c_es = g->c_es, .accumulate = g->accumulate, .seg = g->seg, .M = g->M, .N = g->N, .K = g->K,     \
    .b2 = (const T *)g->b2, .k_split = g->k_split, .c2 = (T *)g->c2, .h = (T *)g->h, .ldh = g->ldh,                  \
    .glu = g->h ? mk_moe_epilogue_##SFX(g->epilogue) : NULL                                                          \
  }

const char *mk_moe_gemm_run(int mode, const mk_moe_gemm *g, int64_t E) {
  if (!g->f64 &&
      (g->a_half || g->b_half || g->c_half)) {  /* bf16 operands: the pair kernel, or widened into f32 packs */
    const int half_in = g->a_half || g->b_half; /* a bf16 c alone: f32 products, rounded sums */
    const mk_kernel_f32 *pairs = half_in ? mk_moe_bf16_pair_kernel() : NULL;
    mk_moe_f32_job j = GEMM_JOB(f32, float, pairs ? pairs : mk_gemm_kernel_f32(mk_cpu_isa()));
    j.a_half = g->a_half;
    j.b_half = g->b_half;
    j.c_half = g->c_half;
    j.pairs = pairs != NULL;
    if (!half_in) j.fast_pack = fast_packs_apply(j.kr);
    return mk_moe_f32_run(&j, E);
  }
  if (!g->f64) {
    mk_moe_f32_job j = GEMM_JOB(f32, float, mk_gemm_kernel_f32(mk_cpu_isa()));
    j.fast_pack = fast_packs_apply(j.kr);
    return mk_moe_f32_run(&j, E);
  }
  mk_moe_f64_job j = GEMM_JOB(f64, double, mk_gemm_kernel_f64(mk_cpu_isa()));
  return mk_moe_f64_run(&j, E);
}

void mk_moe_combine(int f64, const void *y, int64_t ldy, const int32_t *row, const void *w, int64_t t, int64_t K,
                    int64_t H, void *out) {
  if (!f64) {
    mk_moe_f32_comb c = {y, ldy, K, H, row, w, out};
    mk_par_range(t, K * H + 1, mk_moe_f32_combine_rows, &c);
  } else {
    mk_moe_f64_comb c = {y, ldy, K, H, row, w, out};
    mk_par_range(t, K * H + 1, mk_moe_f64_combine_rows, &c);
  }
}
