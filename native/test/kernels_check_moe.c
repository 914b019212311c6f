/* The grouped MoE GEMMs (native/moe/moe.c, included here for its job runner and fast_packs_apply;
 * N-API functions it may hold are dropped at link time) against double loops: rows mode with the row gather and
 * scale, B plain or transposed, accumulated, stacked along K; the weight gradient with both
 * gathers; the gated SwiGLU GEMM with and without kept gate / up outputs. Jobs are built as
 * moe.c's RUN_MOE_JOB builds them, so the kernels and packs are the ones the addon picks. */
#include "moe.c"

#include <math.h>
#include <stdio.h>

#include "kernels_check.h"

enum { E = 4, ROWS = 61, TOKENS = 30, N = 37, K = 45, M_W = 19 };
static const int32_t SEG[E + 1] = {0, 13, 13, 40, ROWS}; /* expert 1 has no rows */

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

/* The gated job's epilogue, h = silu(g) * u per tile (moe_impl.inc: FN(_glu_fn)): the check's
 * own, so it tests the GEMM kernels and packs that feed the epilogue, not an ISA's sigmoid. */
#define GLU_TILE(T)                                                                                          \
  static void glu_tile_##T(const T *g, const T *u, int64_t ld, T *h, int64_t ldh, int64_t rows, int64_t n) { \
    for (int64_t i = 0; i < rows; i++)                                                                       \
      for (int64_t q = 0; q < n; q++) {                                                                      \
        const double x = (double)g[i * ld + q];                                                              \
        h[i * ldh + q] = (T)(x * sigmoid(x) * (double)u[i * ld + q]);                                        \
      }                                                                                                      \
  }
GLU_TILE(float)
GLU_TILE(double)

#define MOE_CHECKS(T, SFX, FILL, TOL, GLU)                                                                            \
  static T *alloc_##SFX(int64_t n) {                                                                                  \
    T *p = malloc(sizeof(T) * (size_t)n);                                                                             \
    FILL(p, n);                                                                                                       \
    return p;                                                                                                         \
  }                                                                                                                   \
  static mk_moe_##SFX##_job job_##SFX(void) {                                                                         \
    mk_moe_##SFX##_job j = {.kr = mk_gemm_kernel_##SFX(mk_cpu_isa())};                                                \
    return j;                                                                                                         \
  }                                                                                                                   \
  /* rows mode: c[r] (+)= scale[r] * a[idx[r]] . op(B_e), op(B_e) stacked with B2_e's rows from ks */                 \
  static void rows_##SFX(int b_trans, int acc, int64_t ks) {                                                          \
    const int64_t lda = K + 3, ldb = b_trans ? K + 2 : N + 1, b_es = (b_trans ? N : K) * ldb, ldc = N + 4;            \
    T *a = alloc_##SFX(TOKENS * lda), *sc = alloc_##SFX(ROWS), *b = alloc_##SFX(E * b_es);                            \
    T *b2 = alloc_##SFX(E * b_es), *c = alloc_##SFX(ROWS * ldc);                                                      \
    int32_t idx[ROWS];                                                                                                \
    for (int r = 0; r < ROWS; r++) idx[r] = (r * 7) % TOKENS;                                                         \
    double *want = malloc(sizeof(double) * ROWS * N);                                                                 \
    for (int e = 0; e < E; e++)                                                                                       \
      for (int r = SEG[e]; r < SEG[e + 1]; r++)                                                                       \
        for (int j = 0; j < N; j++) {                                                                                 \
          double s = 0;                                                                                               \
          for (int p = 0; p < K; p++) {                                                                               \
            const T *bm = ks > 0 && p >= ks ? b2 : b;                                                                 \
            const int64_t q = ks > 0 && p >= ks ? p - ks : p;                                                         \
            s += (double)sc[r] * (double)a[idx[r] * lda + p] *                                                        \
                 (double)bm[e * b_es + (b_trans ? j * ldb + q : q * ldb + j)];                                        \
          }                                                                                                           \
          want[r * N + j] = (acc ? (double)c[r * ldc + j] : 0) + s;                                                   \
        }                                                                                                             \
    mk_moe_##SFX##_job j = job_##SFX();                                                                               \
    j.mode = MK_MOE_ROWS, j.a = a, j.a_idx = idx, j.scale = sc, j.lda = lda, j.b = b, j.ldb = ldb, j.b_es = b_es;     \
    j.b_trans = b_trans, j.c = c, j.ldc = ldc, j.accumulate = acc, j.seg = SEG, j.N = N, j.K = K;                     \
    if (ks > 0) j.b2 = b2, j.k_split = ks;                                                                            \
    j.fast_pack = FAST_PACK(j.kr);                                                                                    \
    if (mk_moe_##SFX##_run(&j, E)) kc_fail("moe rows " #SFX ": the job did not run");                                 \
    char what[64];                                                                                                    \
    snprintf(what, sizeof what, "moe rows " #SFX " bTrans=%d acc=%d kSplit=%lld", b_trans, acc, (long long)ks);       \
    for (int r = 0, bad = 0; r < ROWS && bad < 3; r++)                                                                \
      for (int q = 0; q < N; q++) bad += !kc_close(what, r * N + q, (double)c[r * ldc + q], want[r * N + q], TOL);    \
    free(a), free(sc), free(b), free(b2), free(c), free(want);                                                        \
  }                                                                                                                   \
  /* weight gradient: C_e[i, j] (+)= sum over rows r of e: scale[r] * a[aidx[r]][i] * b[bidx[r]][j] */                \
  static void wgrad_##SFX(int acc) {                                                                                  \
    const int64_t lda = M_W + 2, ldb = N + 3;                                                                         \
    T *a = alloc_##SFX(TOKENS * lda), *sc = alloc_##SFX(ROWS), *b = alloc_##SFX(ROWS * ldb);                          \
    T *c = alloc_##SFX(E * M_W * N);                                                                                  \
    int32_t aidx[ROWS], bidx[ROWS];                                                                                   \
    for (int r = 0; r < ROWS; r++) aidx[r] = (r * 11) % TOKENS, bidx[r] = ROWS - 1 - r;                               \
    double *want = malloc(sizeof(double) * E * M_W * N);                                                              \
    for (int e = 0; e < E; e++)                                                                                       \
      for (int i = 0; i < M_W; i++)                                                                                   \
        for (int q = 0; q < N; q++) {                                                                                 \
          double s = acc ? (double)c[(e * M_W + i) * N + q] : 0;                                                      \
          for (int r = SEG[e]; r < SEG[e + 1]; r++)                                                                   \
            s += (double)sc[r] * (double)a[aidx[r] * lda + i] * (double)b[bidx[r] * ldb + q];                         \
          want[(e * M_W + i) * N + q] = s;                                                                            \
        }                                                                                                             \
    mk_moe_##SFX##_job j = job_##SFX();                                                                               \
    j.mode = MK_MOE_WGRAD, j.a = a, j.a_idx = aidx, j.scale = sc, j.lda = lda, j.b = b, j.b_idx = bidx;               \
    j.ldb = ldb, j.c = c, j.ldc = N, j.c_es = M_W * N, j.accumulate = acc, j.seg = SEG, j.M = M_W, j.N = N;           \
    j.fast_pack = FAST_PACK(j.kr);                                                                                    \
    if (mk_moe_##SFX##_run(&j, E)) kc_fail("moe wgrad " #SFX ": the job did not run");                                \
    for (int q = 0, bad = 0; q < E * M_W * N && bad < 3; q++)                                                         \
      bad += !kc_close(acc ? "moe wgrad " #SFX " acc=1" : "moe wgrad " #SFX " acc=0", q, (double)c[q], want[q], TOL); \
    free(a), free(sc), free(b), free(c), free(want);                                                                  \
  }                                                                                                                   \
  /* gated: gate / up = a[idx[r]] . op(Gate_e) / op(Up_e) into gu (or nowhere), h = silu(gate) * up */                \
  static void gated_##SFX(int keep_gu) {                                                                              \
    const int64_t lda = K + 1, ldb = N + 2, b_es = K * ldb, ldgu = 2 * N + 3;                                         \
    T *a = alloc_##SFX(TOKENS * lda), *bg = alloc_##SFX(E * b_es), *bu = alloc_##SFX(E * b_es);                       \
    T *gu = alloc_##SFX(ROWS * ldgu), *h = alloc_##SFX(ROWS * N);                                                     \
    int32_t idx[ROWS];                                                                                                \
    for (int r = 0; r < ROWS; r++) idx[r] = (r * 5 + 3) % TOKENS;                                                     \
    double *wg = malloc(sizeof(double) * ROWS * N), *wu = malloc(sizeof(double) * ROWS * N);                          \
    for (int e = 0; e < E; e++)                                                                                       \
      for (int r = SEG[e]; r < SEG[e + 1]; r++)                                                                       \
        for (int q = 0; q < N; q++) {                                                                                 \
          double g = 0, u = 0;                                                                                        \
          for (int p = 0; p < K; p++) {                                                                               \
            g += (double)a[idx[r] * lda + p] * (double)bg[e * b_es + p * ldb + q];                                    \
            u += (double)a[idx[r] * lda + p] * (double)bu[e * b_es + p * ldb + q];                                    \
          }                                                                                                           \
          wg[r * N + q] = g, wu[r * N + q] = u;                                                                       \
        }                                                                                                             \
    mk_moe_##SFX##_job j = job_##SFX();                                                                               \
    j.mode = MK_MOE_ROWS, j.a = a, j.a_idx = idx, j.lda = lda, j.b = bg, j.ldb = ldb, j.b_es = b_es;                  \
    j.c = keep_gu ? gu : NULL, j.ldc = ldgu, j.seg = SEG, j.N = N, j.K = K, j.b2 = bu;                                \
    j.c2 = keep_gu ? gu + N + 1 : NULL, j.h = h, j.ldh = N, j.glu = GLU;                                              \
    j.fast_pack = FAST_PACK(j.kr);                                                                                    \
    if (mk_moe_##SFX##_run(&j, E)) kc_fail("moe gated " #SFX ": the job did not run");                                \
    for (int r = 0, bad = 0; r < ROWS && bad < 3; r++)                                                                \
      for (int q = 0; q < N; q++) {                                                                                   \
        const double g = wg[r * N + q], u = wu[r * N + q];                                                            \
        bad += !kc_close("moe gated " #SFX " h", r * N + q, (double)h[r * N + q], g * sigmoid(g) * u, TOL);           \
        if (keep_gu) {                                                                                                \
          bad += !kc_close("moe gated " #SFX " gate", r * N + q, (double)gu[r * ldgu + q], g, TOL);                   \
          bad += !kc_close("moe gated " #SFX " up", r * N + q, (double)gu[r * ldgu + N + 1 + q], u, TOL);             \
        }                                                                                                             \
      }                                                                                                               \
    free(a), free(bg), free(bu), free(gu), free(h), free(wg), free(wu);                                               \
  }

#define FAST_PACK(kr) fast_packs_apply(kr)
MOE_CHECKS(float, f32, kc_fill_f32, 2e-5, glu_tile_float)
#undef FAST_PACK
#define FAST_PACK(kr) 0
MOE_CHECKS(double, f64, kc_fill_f64, 1e-13, glu_tile_double)

void kc_check_moe(void) {
  for (int bt = 0; bt < 2; bt++)
    for (int acc = 0; acc < 2; acc++) {
      rows_f32(bt, acc, 0);
      rows_f64(bt, !acc, 0);
    }
  rows_f32(0, 0, 17);
  rows_f64(1, 1, 17);
  for (int acc = 0; acc < 2; acc++) {
    wgrad_f32(acc);
    wgrad_f64(acc);
  }
  for (int keep = 0; keep < 2; keep++) {
    gated_f32(keep);
    gated_f64(keep);
  }
}
