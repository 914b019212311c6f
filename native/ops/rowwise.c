/*
 * Row-wise fused kernels over [rows, n]; JS exports (outputs preallocated):
 *   softmax(x, rows, n, log, out)          softmaxBackward(y, dy, rows, n, log, dx)
 *   layerNorm(x, w|null, b|null, rows, n, eps, y, mean, rstd)
 *   layerNormBackward(dy, x, w|null, mean, rstd, rows, n, dx, dw|null, db|null)
 *   rmsNorm(x, w|null, rows, n, eps, y, rstd)
 *   rmsNormBackward(dy, x, w|null, rstd, rows, n, dx, dw|null)
 *   logSoftmaxPick(x, t, rows, n, out, lse)  logSoftmaxPickBackward(x, lse, t, g, rows, n, dx)
 *     (cross-entropy: log_softmax(x)[r, t[r]] and its gradient; t Int32Array [rows])
 * All arrays Float32Array or all Float64Array. Semantics follow
 * src/backend/reference/rowwise.ts (biased variance; rstd = 1/sqrt(var+eps)).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "addon.h"
#include "kernel_util.h"
#include "vec_f32.h"

typedef struct {
  const void *x, *dy, *w, *b;
  void *y, *mean, *rstd;
  int64_t n;
  int log, want_dw, want_db;
  double eps;
  double *partial;    /* per task: [2][n] doubles (dw, db) */
  void *scratch;      /* per task: [2][n] T */
  const int32_t *idx; /* logSoftmaxPick: each row's target */
} mk_row_ctx;

#define T float
#define SFX f32
#define MK_EXP expf
#define RW_VEC 1
#include "rowwise_impl.inc"
#undef RW_VEC
#undef T
#undef SFX
#undef MK_EXP
#define T double
#define SFX f64
#define MK_EXP exp
#define RW_VEC 0
#include "rowwise_impl.inc"
#undef RW_VEC
#undef T
#undef SFX
#undef MK_EXP

#define IS64(t) ((t).type == napi_float64_array)

/* Checks a float array argument: same type as x, at least `need` elements. */
static int arg_like(napi_env env, napi_value v, const char *what, const mk_typed *x, int64_t need, mk_typed *out) {
  return mk_napi_float_array(env, v, what, out) && mk_arg_same_type(env, out, x, what, "x") &&
         mk_arg_len(env, out, need, what);
}
static int opt_like(napi_env env, napi_value v, const char *what, const mk_typed *x, int64_t need, mk_typed *out) {
  if (!mk_arg_float_or_null(env, v, what, out)) return 0;
  if (!out->data) return 1;
  return mk_arg_same_type(env, out, x, what, "x") && mk_arg_len(env, out, need, what);
}

static napi_value js_softmax(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  mk_typed x, out;
  int64_t rows, n;
  int lg;
  if (!mk_napi_args(env, info, 5, argv, "softmax") || !mk_napi_float_array(env, argv[0], "softmax: x", &x) ||
      !mk_arg_dim(env, argv[1], "softmax: rows", &rows) || !mk_arg_dim(env, argv[2], "softmax: n", &n) ||
      !mk_napi_bool(env, argv[3], "softmax: log", &lg) || !mk_arg_len(env, &x, mk_mul3(rows, n, 1), "softmax: x") ||
      !arg_like(env, argv[4], "softmax: out", &x, rows * n, &out))
    return NULL;
  mk_row_ctx c = {.x = x.data, .y = out.data, .n = n, .log = lg};
  if (n > 0) mk_par_range(rows, n * 8, IS64(x) ? softmax_chunk_f64 : softmax_chunk_f32, &c);
  return mk_napi_undefined(env);
}

static napi_value js_softmax_backward(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  mk_typed y, dy, dx;
  int64_t rows, n;
  int lg;
  if (!mk_napi_args(env, info, 6, argv, "softmaxBackward") ||
      !mk_napi_float_array(env, argv[0], "softmaxBackward: y", &y) ||
      !mk_arg_dim(env, argv[2], "softmaxBackward: rows", &rows) ||
      !mk_arg_dim(env, argv[3], "softmaxBackward: n", &n) || !mk_napi_bool(env, argv[4], "softmaxBackward: log", &lg) ||
      !mk_arg_len(env, &y, mk_mul3(rows, n, 1), "softmaxBackward: y") ||
      !arg_like(env, argv[1], "softmaxBackward: dy", &y, rows * n, &dy) ||
      !arg_like(env, argv[5], "softmaxBackward: dx", &y, rows * n, &dx))
    return NULL;
  mk_row_ctx c = {.x = y.data, .dy = dy.data, .y = dx.data, .n = n, .log = lg};
  if (n > 0)
    mk_par_range(rows, n * (lg ? 8 : 2), IS64(y) ? softmax_backward_chunk_f64 : softmax_backward_chunk_f32, &c);
  return mk_napi_undefined(env);
}

/* Checks t: an Int32Array of `rows` targets, each in [0, n). */
static int targets_arg(napi_env env, napi_value v, const char *what, int64_t rows, int64_t n, mk_typed *t) {
  if (!mk_arg_i32(env, v, what, t) || !mk_arg_len(env, t, rows, what)) return 0;
  const int32_t *ti = (const int32_t *)t->data;
  for (int64_t r = 0; r < rows; r++)
    if (ti[r] < 0 || ti[r] >= n) {
      mk_throw_range(env, "%s[%lld] = %d is outside [0, %lld)", what, (long long)r, ti[r], (long long)n);
      return 0;
    }
  return 1;
}

static napi_value js_log_softmax_pick(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  mk_typed x, t, out, lse;
  int64_t rows, n;
  if (!mk_napi_args(env, info, 6, argv, "logSoftmaxPick") ||
      !mk_napi_float_array(env, argv[0], "logSoftmaxPick: x", &x) ||
      !mk_arg_dim(env, argv[2], "logSoftmaxPick: rows", &rows) || !mk_arg_dim(env, argv[3], "logSoftmaxPick: n", &n) ||
      !mk_arg_len(env, &x, mk_mul3(rows, n, 1), "logSoftmaxPick: x") ||
      !targets_arg(env, argv[1], "logSoftmaxPick: targets", rows, n, &t) ||
      !arg_like(env, argv[4], "logSoftmaxPick: out", &x, rows, &out) ||
      !arg_like(env, argv[5], "logSoftmaxPick: lse", &x, rows, &lse))
    return NULL;
  mk_row_ctx c = {.x = x.data, .y = out.data, .rstd = lse.data, .n = n, .idx = (const int32_t *)t.data};
  if (n > 0) mk_par_range(rows, n * 8, IS64(x) ? log_softmax_pick_chunk_f64 : log_softmax_pick_chunk_f32, &c);
  return mk_napi_undefined(env);
}

static napi_value js_log_softmax_pick_backward(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  mk_typed x, lse, t, g, dx;
  int64_t rows, n;
  if (!mk_napi_args(env, info, 7, argv, "logSoftmaxPickBackward") ||
      !mk_napi_float_array(env, argv[0], "logSoftmaxPickBackward: x", &x) ||
      !mk_arg_dim(env, argv[4], "logSoftmaxPickBackward: rows", &rows) ||
      !mk_arg_dim(env, argv[5], "logSoftmaxPickBackward: n", &n) ||
      !mk_arg_len(env, &x, mk_mul3(rows, n, 1), "logSoftmaxPickBackward: x") ||
      !arg_like(env, argv[1], "logSoftmaxPickBackward: lse", &x, rows, &lse) ||
      !targets_arg(env, argv[2], "logSoftmaxPickBackward: targets", rows, n, &t) ||
      !arg_like(env, argv[3], "logSoftmaxPickBackward: g", &x, rows, &g) ||
      !arg_like(env, argv[6], "logSoftmaxPickBackward: dx", &x, rows * n, &dx))
    return NULL;
  mk_row_ctx c = {.x = x.data, .dy = g.data, .y = dx.data, .rstd = lse.data, .n = n, .idx = (const int32_t *)t.data};
  if (n > 0)
    mk_par_range(rows, n * 8, IS64(x) ? log_softmax_pick_backward_chunk_f64 : log_softmax_pick_backward_chunk_f32, &c);
  return mk_napi_undefined(env);
}

static napi_value js_layer_norm(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  mk_typed x, w, b, y, mean, rstd;
  int64_t rows, n;
  double eps;
  if (!mk_napi_args(env, info, 9, argv, "layerNorm") || !mk_napi_float_array(env, argv[0], "layerNorm: x", &x) ||
      !mk_arg_dim(env, argv[3], "layerNorm: rows", &rows) || !mk_arg_dim(env, argv[4], "layerNorm: n", &n) ||
      !mk_napi_f64(env, argv[5], "layerNorm: eps", &eps) || !mk_arg_len(env, &x, mk_mul3(rows, n, 1), "layerNorm: x") ||
      !opt_like(env, argv[1], "layerNorm: weight", &x, n, &w) ||
      !opt_like(env, argv[2], "layerNorm: bias", &x, n, &b) ||
      !arg_like(env, argv[6], "layerNorm: y", &x, rows * n, &y) ||
      !arg_like(env, argv[7], "layerNorm: mean", &x, rows, &mean) ||
      !arg_like(env, argv[8], "layerNorm: rstd", &x, rows, &rstd))
    return NULL;
  mk_row_ctx c = {
      .x = x.data, .w = w.data, .b = b.data, .y = y.data, .mean = mean.data, .rstd = rstd.data, .n = n, .eps = eps};
  mk_par_range(rows, n > 0 ? n * 3 : 1, IS64(x) ? layer_norm_chunk_f64 : layer_norm_chunk_f32, &c);
  return mk_napi_undefined(env);
}

/* Runs a norm backward with per-task [2][n] double partials for dw / db. */
static napi_value run_norm_backward(napi_env env, mk_row_ctx *c, int64_t rows, int f64, mk_range_fn fn, void *dw,
                                    void *db, const char *name) {
  const int64_t n = c->n;
  const int64_t tasks = mk_par_tasks(rows, n > 0 ? n * 4 : 1);
  const size_t esz = f64 ? 8 : 4;
  c->partial = NULL;
  c->scratch = NULL;
  if ((dw || db) && n > 0 && rows > 0) {
    c->partial = (double *)calloc((size_t)(tasks * 2 * n), sizeof(double));
    if (!c->partial) return mk_throw_error(env, "%s: out of memory", name);
  }
  if (n > 0 && rows > 0) {
    c->scratch = malloc((size_t)(tasks * 2 * n) * esz);
    if (!c->scratch) {
      free(c->partial);
      return mk_throw_error(env, "%s: out of memory", name);
    }
  }
  c->want_dw = dw != NULL && c->partial != NULL;
  c->want_db = db != NULL && c->partial != NULL;
  if (rows > 0 && n > 0) {
    int64_t used = mk_par_range(rows, n * 4, fn, c);
    (void)used; /* == tasks: the chunking depends on (rows, cost, threads) only */
  }
  /* rows == 0 leaves dw / db at zero, as the reference does */
  if (c->partial) {
    if (f64) {
      if (dw) combine_partials_f64(c->partial, tasks, n, 0, (double *)dw);
      if (db) combine_partials_f64(c->partial, tasks, n, 1, (double *)db);
    } else {
      if (dw) combine_partials_f32(c->partial, tasks, n, 0, (float *)dw);
      if (db) combine_partials_f32(c->partial, tasks, n, 1, (float *)db);
    }
  }
  free(c->partial);
  free(c->scratch);
  return mk_napi_undefined(env);
}

static napi_value js_layer_norm_backward(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  mk_typed dy, x, w, mean, rstd, dx, dw, db;
  int64_t rows, n;
  if (!mk_napi_args(env, info, 10, argv, "layerNormBackward") ||
      !mk_napi_float_array(env, argv[1], "layerNormBackward: x", &x) ||
      !mk_arg_dim(env, argv[5], "layerNormBackward: rows", &rows) ||
      !mk_arg_dim(env, argv[6], "layerNormBackward: n", &n) ||
      !mk_arg_len(env, &x, mk_mul3(rows, n, 1), "layerNormBackward: x") ||
      !arg_like(env, argv[0], "layerNormBackward: dy", &x, rows * n, &dy) ||
      !opt_like(env, argv[2], "layerNormBackward: weight", &x, n, &w) ||
      !arg_like(env, argv[3], "layerNormBackward: mean", &x, rows, &mean) ||
      !arg_like(env, argv[4], "layerNormBackward: rstd", &x, rows, &rstd) ||
      !arg_like(env, argv[7], "layerNormBackward: dx", &x, rows * n, &dx) ||
      !opt_like(env, argv[8], "layerNormBackward: dw", &x, n, &dw) ||
      !opt_like(env, argv[9], "layerNormBackward: db", &x, n, &db))
    return NULL;
  mk_row_ctx c = {.x = x.data, .dy = dy.data, .w = w.data, .y = dx.data, .mean = mean.data, .rstd = rstd.data, .n = n};
  return run_norm_backward(env, &c, rows, IS64(x),
                           IS64(x) ? layer_norm_backward_chunk_f64 : layer_norm_backward_chunk_f32, dw.data, db.data,
                           "layerNormBackward");
}

static napi_value js_rms_norm(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  mk_typed x, w, y, rstd;
  int64_t rows, n;
  double eps;
  if (!mk_napi_args(env, info, 7, argv, "rmsNorm") || !mk_napi_float_array(env, argv[0], "rmsNorm: x", &x) ||
      !mk_arg_dim(env, argv[2], "rmsNorm: rows", &rows) || !mk_arg_dim(env, argv[3], "rmsNorm: n", &n) ||
      !mk_napi_f64(env, argv[4], "rmsNorm: eps", &eps) || !mk_arg_len(env, &x, mk_mul3(rows, n, 1), "rmsNorm: x") ||
      !opt_like(env, argv[1], "rmsNorm: weight", &x, n, &w) ||
      !arg_like(env, argv[5], "rmsNorm: y", &x, rows * n, &y) ||
      !arg_like(env, argv[6], "rmsNorm: rstd", &x, rows, &rstd))
    return NULL;
  mk_row_ctx c = {.x = x.data, .w = w.data, .y = y.data, .rstd = rstd.data, .n = n, .eps = eps};
  mk_par_range(rows, n > 0 ? n * 2 : 1, IS64(x) ? rms_norm_chunk_f64 : rms_norm_chunk_f32, &c);
  return mk_napi_undefined(env);
}

static napi_value js_rms_norm_backward(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  mk_typed dy, x, w, rstd, dx, dw;
  int64_t rows, n;
  if (!mk_napi_args(env, info, 8, argv, "rmsNormBackward") ||
      !mk_napi_float_array(env, argv[1], "rmsNormBackward: x", &x) ||
      !mk_arg_dim(env, argv[4], "rmsNormBackward: rows", &rows) ||
      !mk_arg_dim(env, argv[5], "rmsNormBackward: n", &n) ||
      !mk_arg_len(env, &x, mk_mul3(rows, n, 1), "rmsNormBackward: x") ||
      !arg_like(env, argv[0], "rmsNormBackward: dy", &x, rows * n, &dy) ||
      !opt_like(env, argv[2], "rmsNormBackward: weight", &x, n, &w) ||
      !arg_like(env, argv[3], "rmsNormBackward: rstd", &x, rows, &rstd) ||
      !arg_like(env, argv[6], "rmsNormBackward: dx", &x, rows * n, &dx) ||
      !opt_like(env, argv[7], "rmsNormBackward: dw", &x, n, &dw))
    return NULL;
  mk_row_ctx c = {.x = x.data, .dy = dy.data, .w = w.data, .y = dx.data, .rstd = rstd.data, .n = n};
  return run_norm_backward(env, &c, rows, IS64(x), IS64(x) ? rms_norm_backward_chunk_f64 : rms_norm_backward_chunk_f32,
                           dw.data, NULL, "rmsNormBackward");
}

napi_status mk_register_rowwise(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "softmax", js_softmax)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "softmaxBackward", js_softmax_backward)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "logSoftmaxPick", js_log_softmax_pick)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "logSoftmaxPickBackward", js_log_softmax_pick_backward)) != napi_ok)
    return st;
  if ((st = mk_napi_export_fn(env, exports, "layerNorm", js_layer_norm)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "layerNormBackward", js_layer_norm_backward)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "rmsNorm", js_rms_norm)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "rmsNormBackward", js_rms_norm_backward);
}
