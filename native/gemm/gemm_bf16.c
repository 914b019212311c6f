/*
 * GEMM over bf16 operands with f32 accumulation and a bf16 result:
 *
 *   C[M,N] = round_bf16( op(A)[M,K] . op(B)[K,N] )      (A, B, C: bf16 bit patterns)
 *
 * with the layouts of gemm.h (transA / transB, batch strides, 0 broadcasts). The result
 * is rounded once, to nearest even, NaN -> 0xffff (PyTorch's CPU cast; src/io/half.ts).
 *
 * On CPUs with AVX512_BF16 (Zen 4, Sapphire Rapids and later) A and B are packed as bf16
 * pairs along K and an 8x32 micro-kernel runs VDPBF16PS (two bf16 products summed into
 * each f32 lane per instruction; the instruction flushes denormal inputs and outputs and
 * rounds to nearest even). Elsewhere (AVX2, scalar, MOEKIT_ISA below avx512) the operands
 * are widened to f32 and the f32 GEMM (gemm.c) runs. Either way the sum is accumulated in
 * f32 and its order depends on the shape only, not the thread count.
 *
 * JS export: matmulBf16(a, b, out, batch, m, k, n, transA, transB, aBatchStride, bBatchStride)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"
#include "bf16_pack.h"
#include "cpu.h"
#include "gemm.h"
#include "threadpool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define MK_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
#endif

#define MR 8
#define NR 32
#define ROW_GROUPS_PER_TASK 4

typedef struct {
  int ta, tb;
  int64_t M, N, K, KP;
  const uint16_t *A, *B;
  int64_t lda, ldb;
  uint16_t *C;
  uint32_t *apack; /* [ceil(M/MR)][KP][MR] pairs (k even in the low half) */
  uint32_t *bpack; /* [ceil(N/NR)][KP][NR] pairs */
  int64_t groups, panels;
} bctx;

/* Row group g of op(A) as pair panel steps (rows past M zero): rows holding K (A [M, K]) or
 * two rows of A [K, M] per step. */
static void pack_a_task(void *ctx, int64_t g, int tid) {
  const bctx *c = (const bctx *)ctx;
  uint32_t *dst = c->apack + g * c->KP * MR;
  const int64_t i0 = g * MR, h = c->M - i0 < MR ? c->M - i0 : MR;
  if (!c->ta) {
    const uint16_t *rows[MR];
    for (int64_t i = 0; i < h; i++) rows[i] = c->A + (i0 + i) * c->lda;
    mk_bf16_pairs_from_rows(rows, (int)h, c->K, MR, dst);
  } else {
    for (int64_t kp = 0; kp < c->KP; kp++) {
      const uint16_t *lo = c->A + 2 * kp * c->lda + i0, *hi = 2 * kp + 1 < c->K ? lo + c->lda : NULL;
      mk_bf16_pairs_interleave(lo, hi, h, MR, dst + kp * MR);
    }
  }
}

/* Column panel of op(B) as pair panel steps (columns past N zero), the same two ways. */
static void pack_b_task(void *ctx, int64_t panel, int tid) {
  const bctx *c = (const bctx *)ctx;
  uint32_t *dst = c->bpack + panel * c->KP * NR;
  const int64_t j0 = panel * NR, w = c->N - j0 < NR ? c->N - j0 : NR;
  if (c->tb) {
    const uint16_t *rows[NR];
    for (int64_t j = 0; j < w; j++) rows[j] = c->B + (j0 + j) * c->ldb;
    mk_bf16_pairs_from_rows(rows, (int)w, c->K, NR, dst);
  } else {
    for (int64_t kp = 0; kp < c->KP; kp++) {
      const uint16_t *lo = c->B + 2 * kp * c->ldb + j0, *hi = 2 * kp + 1 < c->K ? lo + c->ldb : NULL;
      mk_bf16_pairs_interleave(lo, hi, w, NR, dst + kp * NR);
    }
  }
}

#if defined(__x86_64__)
/* An MR x NR tile of C from packed A (one row group) and packed B (one panel). */
MK_BF16 static void kernel_8x32(int64_t KP, const uint32_t *ap, const uint32_t *bp, float *tile) {
  __m512 acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t kp = 0; kp < KP; kp++) {
    __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(bp + kp * NR));
    __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(bp + kp * NR + 16));
    const uint32_t *a = ap + kp * MR;
    for (int r = 0; r < MR; r++) {
      __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  for (int r = 0; r < MR; r++) {
    _mm512_storeu_ps(tile + r * NR, acc[r][0]);
    _mm512_storeu_ps(tile + r * NR + 16, acc[r][1]);
  }
}

/* Task: one panel of NR columns over ROW_GROUPS_PER_TASK row groups. */
static void compute_task(void *ctx, int64_t task, int tid) {
  const bctx *c = (const bctx *)ctx;
  int64_t chunks = (c->groups + ROW_GROUPS_PER_TASK - 1) / ROW_GROUPS_PER_TASK;
  int64_t panel = task / chunks, g0 = (task % chunks) * ROW_GROUPS_PER_TASK;
  int64_t g1 = g0 + ROW_GROUPS_PER_TASK < c->groups ? g0 + ROW_GROUPS_PER_TASK : c->groups;
  float tile[MR * NR];
  for (int64_t g = g0; g < g1; g++) {
    kernel_8x32(c->KP, c->apack + g * c->KP * MR, c->bpack + panel * c->KP * NR, tile);
    for (int r = 0; r < MR; r++) {
      int64_t i = g * MR + r;
      if (i >= c->M) break;
      for (int col = 0; col < NR; col++) {
        int64_t j = panel * NR + col;
        if (j >= c->N) break;
        c->C[i * c->N + j] = mk_bf16_from_f32(tile[r * NR + col]);
      }
    }
  }
}

/* 0 when it ran; -1 when the packs cannot be allocated. */
static int bgemm_avx512(bctx *c) {
  c->KP = (c->K + 1) / 2;
  c->groups = (c->M + MR - 1) / MR;
  c->panels = (c->N + NR - 1) / NR;
  c->apack = (uint32_t *)malloc((size_t)(c->groups * c->KP * MR) * 4 + 64);
  c->bpack = (uint32_t *)malloc((size_t)(c->panels * c->KP * NR) * 4 + 64);
  if (!c->apack || !c->bpack) {
    free(c->apack);
    free(c->bpack);
    return -1;
  }
  mk_parallel_for(c->groups, pack_a_task, c);
  mk_parallel_for(c->panels, pack_b_task, c);
  mk_parallel_for(c->panels * ((c->groups + ROW_GROUPS_PER_TASK - 1) / ROW_GROUPS_PER_TASK), compute_task, c);
  free(c->apack);
  free(c->bpack);
  return 0;
}
#endif

/* The f32 path: operands widened (exactly), mk_sgemm, the result rounded once. */
static int bgemm_widened(const bctx *c) {
  int64_t na = c->M * c->K, nb = c->K * c->N, nc = c->M * c->N;
  float *a = (float *)malloc((size_t)(na > 0 ? na : 1) * 4), *b = (float *)malloc((size_t)(nb > 0 ? nb : 1) * 4);
  float *out = (float *)malloc((size_t)(nc > 0 ? nc : 1) * 4);
  if (!a || !b || !out) {
    free(a);
    free(b);
    free(out);
    return -1;
  }
  /* widened into their stored layouts, so mk_sgemm sees the same transposes and leading dims */
  int64_t arows = c->ta ? c->K : c->M, acols = c->ta ? c->M : c->K;
  int64_t brows = c->tb ? c->N : c->K, bcols = c->tb ? c->K : c->N;
  for (int64_t r = 0; r < arows; r++) mk_bf16_widen(c->A + r * c->lda, acols, a + r * acols);
  for (int64_t r = 0; r < brows; r++) mk_bf16_widen(c->B + r * c->ldb, bcols, b + r * bcols);
  mk_sgemm(c->ta, c->tb, c->M, c->N, c->K, a, acols, b, bcols, out, c->N, 0);
  mk_bf16_narrow(out, nc, c->C);
  free(a);
  free(b);
  free(out);
  return 0;
}

/* 0, or -1 when out of memory. */
static int mk_bgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *B,
                    int64_t ldb, uint16_t *C) {
  bctx c = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .A = A, .B = B, .lda = lda, .ldb = ldb, .C = C};
  if (M == 0 || N == 0) return 0;
  if (K == 0) {
    memset(C, 0, (size_t)(M * N) * 2);
    return 0;
  }
#if defined(__x86_64__)
  if (mk_cpu_bf16_dot()) return bgemm_avx512(&c);
#endif
  return bgemm_widened(&c);
}

static napi_value matmul_bf16(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  mk_typed a, b, out;
  int64_t batch, m, k, n, sa, sb;
  int ta, tb;
  if (!mk_napi_args(env, info, 11, argv, "matmulBf16") || !mk_napi_typed(env, argv[0], "matmulBf16: a", &a) ||
      !mk_napi_typed(env, argv[1], "matmulBf16: b", &b) || !mk_napi_typed(env, argv[2], "matmulBf16: out", &out))
    return NULL;
  if (a.type != napi_uint16_array || b.type != napi_uint16_array || out.type != napi_uint16_array)
    return mk_throw_type(env, "matmulBf16: a, b and out must be Uint16Arrays of bf16 bit patterns");
  if (!mk_napi_i64(env, argv[3], "matmulBf16: batch", 0, (int64_t)1 << 40, &batch) ||
      !mk_napi_i64(env, argv[4], "matmulBf16: m", 0, (int64_t)1 << 31, &m) ||
      !mk_napi_i64(env, argv[5], "matmulBf16: k", 0, (int64_t)1 << 31, &k) ||
      !mk_napi_i64(env, argv[6], "matmulBf16: n", 0, (int64_t)1 << 31, &n) ||
      !mk_napi_bool(env, argv[7], "matmulBf16: transA", &ta) ||
      !mk_napi_bool(env, argv[8], "matmulBf16: transB", &tb) ||
      !mk_napi_i64(env, argv[9], "matmulBf16: aBatchStride", 0, (int64_t)1 << 48, &sa) ||
      !mk_napi_i64(env, argv[10], "matmulBf16: bBatchStride", 0, (int64_t)1 << 48, &sb))
    return NULL;
  if (batch == 0 || m == 0 || n == 0) return mk_napi_undefined(env);
  /* elements each operand spans */
  int64_t mk, kn, mn, oa, ob, need_a, need_b, need_out;
  int overflow = __builtin_mul_overflow(m, k, &mk) || __builtin_mul_overflow(k, n, &kn) ||
                 __builtin_mul_overflow(m, n, &mn) || __builtin_mul_overflow(batch - 1, sa, &oa) ||
                 __builtin_mul_overflow(batch - 1, sb, &ob) || __builtin_add_overflow(oa, mk, &need_a) ||
                 __builtin_add_overflow(ob, kn, &need_b) || __builtin_mul_overflow(batch, mn, &need_out);
  if (overflow || (int64_t)a.length < need_a || (int64_t)b.length < need_b || (int64_t)out.length < need_out)
    return mk_throw_range(env, "matmulBf16: a, b or out is too short for batch=%lld m=%lld k=%lld n=%lld",
                          (long long)batch, (long long)m, (long long)k, (long long)n);
  const uint16_t *A = (const uint16_t *)a.data, *B = (const uint16_t *)b.data;
  uint16_t *C = (uint16_t *)out.data;
  for (int64_t bt = 0; bt < batch; bt++) {
    if (mk_bgemm(ta, tb, m, n, k, A + bt * sa, ta ? m : k, B + bt * sb, tb ? k : n, C + bt * m * n) != 0)
      return mk_throw_error(env, "matmulBf16: out of memory for the packed operands (m=%lld k=%lld n=%lld)",
                            (long long)m, (long long)k, (long long)n);
  }
  return mk_napi_undefined(env);
}

napi_status mk_register_gemm_bf16(napi_env env, napi_value exports) {
  return mk_napi_export_fn(env, exports, "matmulBf16", matmul_bf16);
}
