/* The driver (kernels_check.h): for each ISA this CPU runs, the GEMM checks here, then the MoE
 * and router checks. Usage: kernels_check [isa ...] (default: every ISA the CPU runs). */
#include "kernels_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "gemm.h"
#include "gemm_kernels.h"
#include "threadpool.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static int g_failures;

double kc_rand(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (double)(g_rng >> 11) / (double)(1ull << 52) - 1.0;
}
void kc_fill_f32(float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = (float)kc_rand();
}
void kc_fill_f64(double *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = kc_rand();
}

void kc_fail(const char *fmt, ...) {
  if (g_failures++ < 20) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL [%s] ", mk_isa_name(mk_cpu_isa()));
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
  }
}

int kc_close(const char *what, int64_t at, double got, double want, double tol) {
  if (fabs(got - want) <= tol * (1 + fabs(want))) return 1; /* NaN fails */
  kc_fail("%s at %lld: got %.9g, want %.9g", what, (long long)at, got, want);
  return 0;
}

/* ---- GEMM: mk_sgemm / mk_dgemm with padded leading dimensions, every transpose, written and
 * accumulated, against a double loop; the padding of C must stay untouched ---- */

#define GEMM_CHECK(T, GEMM, FILL, TOL)                                                                                \
  static void gemm_check_##T(int64_t m, int64_t n, int64_t k, int ta, int tb, int acc) {                              \
    const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5;                                        \
    const int64_t ra = ta ? k : m, rb = tb ? n : k;                                                                   \
    T *a = malloc(sizeof(T) * (size_t)(ra * lda)), *b = malloc(sizeof(T) * (size_t)(rb * ldb));                       \
    T *c = malloc(sizeof(T) * (size_t)(m * ldc));                                                                     \
    double *want = malloc(sizeof(double) * (size_t)(m * n));                                                          \
    FILL(a, ra *lda);                                                                                                 \
    FILL(b, rb *ldb);                                                                                                 \
    FILL(c, m *ldc);                                                                                                  \
    for (int64_t i = 0; i < m; i++)                                                                                   \
      for (int64_t j = 0; j < n; j++) {                                                                               \
        double s = acc ? (double)c[i * ldc + j] : 0;                                                                  \
        for (int64_t p = 0; p < k; p++)                                                                               \
          s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (double)(tb ? b[j * ldb + p] : b[p * ldb + j]);       \
        want[i * n + j] = s;                                                                                          \
      }                                                                                                               \
    for (int64_t i = 0; i < m; i++)                                                                                   \
      for (int64_t j = n; j < ldc; j++) c[i * ldc + j] = (T)1234.5;                                                   \
    GEMM(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, acc);                                                               \
    char what[96];                                                                                                    \
    snprintf(what, sizeof what, #GEMM " %lldx%lldx%lld ta=%d tb=%d acc=%d", (long long)m, (long long)n, (long long)k, \
             ta, tb, acc);                                                                                            \
    int bad = 0;                                                                                                      \
    for (int64_t i = 0; i < m && bad < 3; i++) {                                                                      \
      for (int64_t j = 0; j < n; j++)                                                                                 \
        if (!kc_close(what, i * n + j, (double)c[i * ldc + j], want[i * n + j], TOL * sqrt((double)k + 1))) bad++;    \
      for (int64_t j = n; j < ldc; j++)                                                                               \
        if (c[i * ldc + j] != (T)1234.5) {                                                                            \
          kc_fail("%s: wrote C's padding at row %lld, column %lld", what, (long long)i, (long long)j);                \
          bad++;                                                                                                      \
        }                                                                                                             \
    }                                                                                                                 \
    free(a);                                                                                                          \
    free(b);                                                                                                          \
    free(c);                                                                                                          \
    free(want);                                                                                                       \
  }
GEMM_CHECK(float, mk_sgemm, kc_fill_f32, 2e-6)
GEMM_CHECK(double, mk_dgemm, kc_fill_f64, 1e-14)

/* M x N x K: the small-product loop, the direct path (M or N <= 32, every row variant and
 * partial panels), the packed path with full tiles, partial row / column tiles and the row-edge
 * kernels, several K blocks (K > kc), and a grid of several pool tasks. */
static const int64_t SHAPES[][3] = {
    {3, 5, 7},     {1, 40, 33},   {7, 64, 50},   {31, 3, 70},   {32, 100, 9},
    {24, 24, 24},  {36, 48, 64},  {45, 37, 29},  {100, 33, 5},  {128, 96, 130},
    {77, 61, 700}, {33, 300, 41}, {256, 40, 96}, {9, 40, 1100}, {131, 97, 300},
};

static void check_gemm(void) {
  for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        const int acc = (int)((s + (size_t)ta + (size_t)tb) % 2);
        gemm_check_float(SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], ta, tb, acc);
        gemm_check_double(SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], ta, tb, !acc);
      }
}

int main(int argc, char **argv) {
  const int best = mk_cpu_detect_isa();
  int isas[4], n = 0;
  if (argc > 1) {
    for (int i = 1; i < argc && n < 4; i++) {
      const int isa = mk_isa_parse(argv[i]);
      if (isa < 0) {
        fprintf(stderr, "kernels_check: unknown ISA '%s' (avx512, avx2, neon, scalar)\n", argv[i]);
        return 2;
      }
      isas[n++] = isa;
    }
  } else {
    isas[n++] = best;
    if (best == MK_ISA_AVX512) isas[n++] = MK_ISA_AVX2;
    if (best != MK_ISA_SCALAR) isas[n++] = MK_ISA_SCALAR;
  }
  mk_set_num_threads(3); /* several pool tasks, as the addon runs them */
  kc_check_pool();
  for (int i = 0; i < n; i++) {
    if ((int)mk_cpu_set_isa((mk_isa)isas[i]) != isas[i]) {
      fprintf(stderr, "kernels_check: this CPU does not run %s (best: %s)\n", mk_isa_name((mk_isa)isas[i]),
              mk_isa_name((mk_isa)best));
      return 2;
    }
    const int before = g_failures;
    check_gemm();
    kc_check_moe();
    kc_check_router();
    kc_check_act();
    kc_check_packs();
    kc_check_bf16();
    kc_check_moe_bf16();
    kc_check_vec();
    printf("%s: gemm f32 kernel %s, f64 kernel %s: %s\n", mk_isa_name(mk_cpu_isa()),
           mk_gemm_kernel_f32(mk_cpu_isa())->name, mk_gemm_kernel_f64(mk_cpu_isa())->name,
           g_failures == before ? "ok" : "FAILED");
  }
  if (g_failures) printf("%d checks failed\n", g_failures);
  return g_failures ? 1 : 0;
}
