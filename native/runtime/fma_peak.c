/*
 * fmaPeak(isa, ms): the f32 FMA roofline of this machine for one ISA: every pool thread runs
 * independent chains of vector FMAs (12 accumulators: enough to cover a 4-cycle FMA latency on
 * two pipes, and no loads), and the best of several timed rounds is returned as GFLOP/s for all
 * threads together. Benchmarks divide a measured rate by it, so that a ratio against PyTorch can
 * be read against what the silicon allows (bench/roofline.ts).
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c11 */
#include <time.h>

#include "addon.h"
#include "cpu.h"
#include "threadpool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#define CHAINS 12

/* Each function runs `iters` rounds of CHAINS FMAs on its vector width and returns the FLOPs
 * done; the sum goes to a volatile sink so the chains cannot be dropped. */
static volatile float g_sink;

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static double fma_avx512(int64_t iters) {
  __m512 acc[CHAINS];
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
  for (int64_t i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  __m512 s = acc[0];
  for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
  g_sink = _mm512_reduce_add_ps(s);
  return (double)iters * CHAINS * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double fma_avx2(int64_t iters) {
  __m256 acc[CHAINS];
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
  for (int64_t i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  __m256 s = acc[0];
  for (int c = 1; c < CHAINS; c++) s = _mm256_add_ps(s, acc[c]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  g_sink = lanes[0] + lanes[7];
  return (double)iters * CHAINS * 8 * 2;
}
#elif defined(__aarch64__)
static double fma_neon(int64_t iters) {
  float32x4_t acc[CHAINS];
  const float32x4_t a = vdupq_n_f32(0.999999f), b = vdupq_n_f32(1e-7f);
  for (int c = 0; c < CHAINS; c++) acc[c] = vdupq_n_f32((float)c);
  for (int64_t i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) acc[c] = vfmaq_f32(b, acc[c], a);
  float32x4_t s = acc[0];
  for (int c = 1; c < CHAINS; c++) s = vaddq_f32(s, acc[c]);
  g_sink = vaddvq_f32(s);
  return (double)iters * CHAINS * 4 * 2;
}
#endif

typedef double (*fma_fn)(int64_t iters);

/* The kernel for an ISA this CPU runs, or NULL (scalar has no vector FMA roofline). */
static fma_fn fma_for(mk_isa isa) {
  mk_isa best = mk_cpu_detect_isa();
#if defined(__x86_64__)
  if (isa == MK_ISA_AVX512 && best == MK_ISA_AVX512) return fma_avx512;
  if (isa == MK_ISA_AVX2 && (best == MK_ISA_AVX2 || best == MK_ISA_AVX512)) return fma_avx2;
#elif defined(__aarch64__)
  if (isa == MK_ISA_NEON && best == MK_ISA_NEON) return fma_neon;
#endif
  (void)best;
  return NULL;
}

typedef struct {
  fma_fn fn;
  int64_t iters;
  double flops[256]; /* per thread, written by its task */
} round_ctx;

static void round_task(void *ctx, int64_t task, int thread_id) {
  round_ctx *r = ctx;
  r->flops[task] = r->fn(r->iters);
  (void)thread_id;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* One round: a task per thread, each `iters` long; GFLOP/s of the whole round. A thread that
 * could not run beside the others makes the round longer, so the rate is what the threads
 * really got together. */
static double round_gflops(round_ctx *r, int threads) {
  double t0 = now_s();
  mk_parallel_for(threads, round_task, r);
  double dt = now_s() - t0, flops = 0;
  for (int t = 0; t < threads; t++) flops += r->flops[t];
  return flops / dt * 1e-9;
}

/* fmaPeak(isa: "avx512" | "avx2" | "neon", ms: number): { isa, threads, gflops } | null
 * (null: this CPU cannot run the ISA). Rounds of ~ms / 8 for about ms milliseconds; the best. */
static napi_value fma_peak(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[16] = {0};
  size_t len = 0;
  int64_t ms;
  if (!mk_napi_args(env, info, 2, argv, "fmaPeak")) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok)
    return mk_throw_type(env, "fmaPeak: isa must be a string");
  if (!mk_napi_i64(env, argv[1], "fmaPeak: ms", 1, 60000, &ms)) return NULL;
  int isa = mk_isa_parse(name);
  if (isa < 0) return mk_throw_range(env, "fmaPeak: isa must be \"avx512\", \"avx2\" or \"neon\", got \"%s\"", name);
  fma_fn fn = fma_for((mk_isa)isa);
  napi_value result;
  if (!fn) {
    napi_get_null(env, &result);
    return result;
  }
  int threads = mk_get_num_threads();
  if (threads > 256) threads = 256;
  static round_ctx r; /* 2 KiB of per-thread counts: off the stack, one caller at a time (JS thread) */
  r.fn = fn;
  /* calibrate: double the length until a round takes >= ms / 8 */
  r.iters = 1 << 12;
  for (;;) {
    double t0 = now_s();
    mk_parallel_for(threads, round_task, &r);
    if (now_s() - t0 >= (double)ms / 8000.0 || r.iters >= ((int64_t)1 << 34)) break;
    r.iters *= 2;
  }
  double best = 0;
  for (int i = 0; i < 8; i++) {
    double g = round_gflops(&r, threads);
    if (g > best) best = g;
  }
  if (napi_create_object(env, &result) != napi_ok) return NULL;
  napi_set_named_property(env, result, "isa", mk_napi_make_string(env, mk_isa_name((mk_isa)isa)));
  napi_set_named_property(env, result, "threads", mk_napi_make_i64(env, threads));
  napi_value g;
  napi_create_double(env, best, &g);
  napi_set_named_property(env, result, "gflops", g);
  return result;
}

napi_status mk_register_fma_peak(napi_env env, napi_value exports) {
  return mk_napi_export_fn(env, exports, "fmaPeak", fma_peak);
}
