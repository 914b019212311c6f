/*
 * Reductions / scans along the middle axis of [outer, n, inner]; JS exports:
 *   reduce(op: "sum"|"max"|"min"|"logsumexp", x, outer, n, inner, out)
 *   argReduce(op: "argmax"|"argmin", x, outer, n, inner, out: Int32Array)
 *   cumsum(x, outer, n, inner, reverse, out)
 * Float32Array / Float64Array only (int32 stays on the reference backend).
 * Semantics follow src/backend/reference/reduce.ts: max/min propagate NaN,
 * arg ops keep the lowest index on ties and never pick a later NaN.
 */
#include <math.h>
#include <stdio.h>

#include "addon.h"
#include "kernel_util.h"

#define RCH 256 /* inner columns per work item */

enum { R_SUM, R_MAX, R_MIN, R_LSE, R_COUNT };
static const char *const k_reduce_names[R_COUNT] = {"sum", "max", "min", "logsumexp"};
enum { A_ARGMAX, A_ARGMIN, A_COUNT };
static const char *const k_arg_names[A_COUNT] = {"argmax", "argmin"};

typedef struct {
  int op;
  const void *x;
  void *out;
  int64_t n, inner, nchunks;
} mk_red_ctx;

#define T float
#define SFX f32
#include "reduce_impl.inc"
#undef T
#undef SFX
#define T double
#define SFX f64
#include "reduce_impl.inc"
#undef T
#undef SFX

/* Parses (x, outer, n, inner) at argv[first..first+3]. */
static int read_axis(napi_env env, napi_value *argv, const char *fn, mk_typed *x, int64_t *outer, int64_t *n,
                     int64_t *inner) {
  char w[4][48];
  snprintf(w[0], sizeof w[0], "%s: x", fn);
  snprintf(w[1], sizeof w[1], "%s: outer", fn);
  snprintf(w[2], sizeof w[2], "%s: n", fn);
  snprintf(w[3], sizeof w[3], "%s: inner", fn);
  return mk_napi_float_array(env, argv[0], w[0], x) && mk_arg_dim(env, argv[1], w[1], outer) &&
         mk_arg_dim(env, argv[2], w[2], n) && mk_arg_dim(env, argv[3], w[3], inner) &&
         mk_arg_len(env, x, mk_mul3(*outer, *n, *inner), w[0]);
}

static void run_items(mk_red_ctx *c, int64_t outer, int64_t n, int64_t inner, mk_range_fn fn) {
  c->nchunks = (inner + RCH - 1) / RCH;
  int64_t items = outer * c->nchunks;
  int64_t w = inner < RCH ? inner : RCH;
  mk_par_range(items, (n > 0 ? n : 1) * w, fn, c);
}

static napi_value js_reduce(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int op;
  mk_typed x, out;
  int64_t outer, n, inner;
  if (!mk_napi_args(env, info, 6, argv, "reduce") ||
      !mk_arg_enum(env, argv[0], "reduce: op", k_reduce_names, R_COUNT, &op) ||
      !read_axis(env, argv + 1, "reduce", &x, &outer, &n, &inner) ||
      !mk_napi_float_array(env, argv[5], "reduce: out", &out) || !mk_arg_same_type(env, &out, &x, "reduce: out", "x") ||
      !mk_arg_len(env, &out, outer * inner, "reduce: out"))
    return NULL;
  if (outer == 0 || inner == 0) return mk_napi_undefined(env);
  mk_red_ctx c = {op, x.data, out.data, n, inner, 0};
  run_items(&c, outer, n, inner, x.type == napi_float64_array ? reduce_chunk_f64 : reduce_chunk_f32);
  return mk_napi_undefined(env);
}

static napi_value js_arg_reduce(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int op;
  mk_typed x, out;
  int64_t outer, n, inner;
  if (!mk_napi_args(env, info, 6, argv, "argReduce") ||
      !mk_arg_enum(env, argv[0], "argReduce: op", k_arg_names, A_COUNT, &op) ||
      !read_axis(env, argv + 1, "argReduce", &x, &outer, &n, &inner) ||
      !mk_arg_i32(env, argv[5], "argReduce: out", &out) || !mk_arg_len(env, &out, outer * inner, "argReduce: out"))
    return NULL;
  if (n > INT32_MAX) return mk_throw_range(env, "argReduce: n = %lld does not fit int32", (long long)n);
  if (outer == 0 || inner == 0) return mk_napi_undefined(env);
  mk_red_ctx c = {op, x.data, out.data, n, inner, 0};
  run_items(&c, outer, n, inner, x.type == napi_float64_array ? arg_chunk_f64 : arg_chunk_f32);
  return mk_napi_undefined(env);
}

static napi_value js_cumsum(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  int reverse;
  mk_typed x, out;
  int64_t outer, n, inner;
  if (!mk_napi_args(env, info, 6, argv, "cumsum") || !read_axis(env, argv, "cumsum", &x, &outer, &n, &inner) ||
      !mk_napi_bool(env, argv[4], "cumsum: reverse", &reverse) ||
      !mk_napi_float_array(env, argv[5], "cumsum: out", &out) || !mk_arg_same_type(env, &out, &x, "cumsum: out", "x") ||
      !mk_arg_len(env, &out, outer * n * inner, "cumsum: out"))
    return NULL;
  if (outer == 0 || inner == 0 || n == 0) return mk_napi_undefined(env);
  mk_red_ctx c = {reverse, x.data, out.data, n, inner, 0};
  run_items(&c, outer, n, inner, x.type == napi_float64_array ? cumsum_chunk_f64 : cumsum_chunk_f32);
  return mk_napi_undefined(env);
}

napi_status mk_register_reduce(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "reduce", js_reduce)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "argReduce", js_arg_reduce)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "cumsum", js_cumsum);
}
