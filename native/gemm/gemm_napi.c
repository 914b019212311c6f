/*
 * JS export: matmul(a, b, out, batch, m, k, n, transA, transB,
 *                   aBatchStride, bBatchStride, accumulate): void
 *
 * out[b] (m x n, batch stride m*n) = (accumulate ? out[b] : 0) + op(A_b) . op(B_b)
 * A_b = a[b*aBatchStride ...], stored [m,k] or, with transA, [k,m];
 * B_b = b[b*bBatchStride ...], stored [k,n] or, with transB, [n,k];
 * a stride of 0 broadcasts that operand over the batch.
 */
#include "addon.h"
#include "gemm.h"

#define MAX_DIM ((int64_t)1 << 48)

/* Elements an operand spans: (batch-1)*stride + rows*cols; -1 on overflow. */
static int64_t span(int64_t batch, int64_t stride, int64_t rows, int64_t cols) {
  int64_t mat, off, total;
  if (batch == 0 || rows == 0 || cols == 0) return 0;
  if (__builtin_mul_overflow(rows, cols, &mat) || __builtin_mul_overflow(batch - 1, stride, &off) ||
      __builtin_add_overflow(off, mat, &total))
    return -1;
  return total;
}

static int overlaps(const mk_typed *x, const mk_typed *y, size_t elem) {
  const char *x0 = (const char *)x->data, *y0 = (const char *)y->data;
  if (!x->length || !y->length) return 0;
  return x0 < y0 + y->length * elem && y0 < x0 + x->length * elem;
}

static napi_value matmul(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  mk_typed a, b, out;
  int64_t batch, m, k, n, sa, sb;
  int ta, tb, acc;
  if (!mk_napi_args(env, info, 12, argv, "matmul") || !mk_napi_float_array(env, argv[0], "matmul: a", &a) ||
      !mk_napi_float_array(env, argv[1], "matmul: b", &b) || !mk_napi_float_array(env, argv[2], "matmul: out", &out))
    return NULL;
  if (b.type != a.type)
    return mk_throw_type(env, "matmul: b must be a %s like a, got %s", mk_napi_typed_name(a.type),
                         mk_napi_typed_name(b.type));
  if (out.type != a.type)
    return mk_throw_type(env, "matmul: out must be a %s like a, got %s", mk_napi_typed_name(a.type),
                         mk_napi_typed_name(out.type));
  if (!mk_napi_i64(env, argv[3], "matmul: batch", 0, MAX_DIM, &batch) ||
      !mk_napi_i64(env, argv[4], "matmul: m", 0, MAX_DIM, &m) ||
      !mk_napi_i64(env, argv[5], "matmul: k", 0, MAX_DIM, &k) ||
      !mk_napi_i64(env, argv[6], "matmul: n", 0, MAX_DIM, &n) || !mk_napi_bool(env, argv[7], "matmul: transA", &ta) ||
      !mk_napi_bool(env, argv[8], "matmul: transB", &tb) ||
      !mk_napi_i64(env, argv[9], "matmul: aBatchStride", 0, MAX_DIM, &sa) ||
      !mk_napi_i64(env, argv[10], "matmul: bBatchStride", 0, MAX_DIM, &sb) ||
      !mk_napi_bool(env, argv[11], "matmul: accumulate", &acc))
    return NULL;

  int64_t need_a = span(batch, sa, m, k), need_b = span(batch, sb, k, n);
  int64_t need_out = span(batch, m * n, m, n);
  if (need_a < 0 || need_b < 0 || need_out < 0)
    return mk_throw_range(env, "matmul: sizes overflow (batch=%lld m=%lld k=%lld n=%lld)", (long long)batch,
                          (long long)m, (long long)k, (long long)n);
  if ((int64_t)a.length < need_a)
    return mk_throw_range(env,
                          "matmul: a has %zu elements, needs %lld (batch=%lld, m=%lld, k=%lld, "
                          "aBatchStride=%lld)",
                          a.length, (long long)need_a, (long long)batch, (long long)m, (long long)k, (long long)sa);
  if ((int64_t)b.length < need_b)
    return mk_throw_range(env,
                          "matmul: b has %zu elements, needs %lld (batch=%lld, k=%lld, n=%lld, "
                          "bBatchStride=%lld)",
                          b.length, (long long)need_b, (long long)batch, (long long)k, (long long)n, (long long)sb);
  if ((int64_t)out.length < need_out)
    return mk_throw_range(env, "matmul: out has %zu elements, needs %lld (batch=%lld, m=%lld, n=%lld)", out.length,
                          (long long)need_out, (long long)batch, (long long)m, (long long)n);
  size_t elem = a.type == napi_float32_array ? 4 : 8;
  mk_typed a_used = a, b_used = b, out_used = out; /* only the ranges the GEMM touches */
  a_used.length = (size_t)need_a;
  b_used.length = (size_t)need_b;
  out_used.length = (size_t)need_out;
  if (overlaps(&out_used, &a_used, elem) || overlaps(&out_used, &b_used, elem))
    return mk_throw_range(env, "matmul: out must not share memory with a or b");
  if (need_out == 0) return mk_napi_undefined(env);

  const int64_t lda = ta ? m : k, ldb = tb ? k : n;
  if (elem == 4)
    mk_sgemm_batched(ta, tb, batch, m, n, k, (const float *)a.data, lda, sa, (const float *)b.data, ldb, sb,
                     (float *)out.data, n, m * n, acc);
  else
    mk_dgemm_batched(ta, tb, batch, m, n, k, (const double *)a.data, lda, sa, (const double *)b.data, ldb, sb,
                     (double *)out.data, n, m * n, acc);
  return mk_napi_undefined(env);
}

napi_status mk_register_gemm(napi_env env, napi_value exports) {
  return mk_napi_export_fn(env, exports, "matmul", matmul);
}
