/*
 * Index kernels along the middle axis of [outer, n, inner]; JS exports:
 *   indexSelect(x, outer, n, inner, idx, out)          out [outer, m, inner]
 *   indexAddInPlace(target, outer, n, inner, idx, src)  src [outer, m, inner]
 *   gather(x, outer, n, inner, idx, m, out)             idx/out [outer, m, inner]
 *   scatterAddInPlace(target, outer, n, inner, idx, src, m)
 * idx is an Int32Array; values / targets are Float32Array, Float64Array or
 * Int32Array (int32 adds wrap, as ToInt32 of the exact sum does). Every index
 * is checked before anything is written: an index outside [0, n) throws
 * RangeError "<op>: index <v> is out of range for an axis of size <n>" for
 * the first bad one in the reference's loop order.
 * Adds are parallel only over disjoint target slices (o, column chunk).
 */
#include <stdio.h>
#include <string.h>

#include "addon.h"
#include "kernel_util.h"

#define ICH 512 /* inner columns per work item of the scatter kernels */

typedef struct {
  const char *x; /* source values (x or src) */
  char *out;     /* destination (out or target) */
  const int32_t *idx;
  int64_t n, m, inner, nchunks;
  size_t width;
  napi_typedarray_type type;
} mk_idx_ctx;

static int check_indices(napi_env env, const int32_t *idx, int64_t count, int64_t n, const char *op) {
  for (int64_t i = 0; i < count; i++)
    if (idx[i] < 0 || idx[i] >= n) {
      mk_throw_range(env, "%s: index %d is out of range for an axis of size %lld", op, idx[i], (long long)n);
      return 0;
    }
  return 1;
}

static inline void add_elems(napi_typedarray_type t, char *dst, const char *src, int64_t k) {
  if (t == napi_float32_array) {
    float *restrict d = (float *)dst;
    const float *restrict s = (const float *)src;
    for (int64_t i = 0; i < k; i++) d[i] += s[i];
  } else if (t == napi_float64_array) {
    double *restrict d = (double *)dst;
    const double *restrict s = (const double *)src;
    for (int64_t i = 0; i < k; i++) d[i] += s[i];
  } else {
    uint32_t *restrict d = (uint32_t *)dst;
    const uint32_t *restrict s = (const uint32_t *)src;
    for (int64_t i = 0; i < k; i++) d[i] += s[i];
  }
}

/* item = (o, j): copy one row of inner elements. */
static void select_chunk(void *p, int64_t b, int64_t e, int64_t task) {
  const mk_idx_ctx *c = (const mk_idx_ctx *)p;
  const size_t row = (size_t)c->inner * c->width;
  for (int64_t it = b; it < e; it++) {
    int64_t o = it / c->m, j = it % c->m;
    memcpy(c->out + (size_t)it * row, c->x + (size_t)(o * c->n + c->idx[j]) * row, row);
  }
}

/* item = (o, column chunk): all m source rows into their target rows. */
static void index_add_chunk(void *p, int64_t b, int64_t e, int64_t task) {
  const mk_idx_ctx *c = (const mk_idx_ctx *)p;
  const size_t w = c->width;
  for (int64_t it = b; it < e; it++) {
    int64_t o = it / c->nchunks, i0 = (it % c->nchunks) * ICH;
    int64_t k = c->inner - i0 < ICH ? c->inner - i0 : ICH;
    for (int64_t j = 0; j < c->m; j++)
      add_elems(c->type, c->out + (size_t)((o * c->n + c->idx[j]) * c->inner + i0) * w,
                c->x + (size_t)((o * c->m + j) * c->inner + i0) * w, k);
  }
}

#define GATHER_LOOP(U)                                                         \
  do {                                                                         \
    const U *restrict xs = (const U *)c->x + o * c->n * c->inner + i0;         \
    U *restrict os = (U *)c->out + (o * c->m + j) * c->inner + i0;             \
    const int32_t *restrict ix = c->idx + (o * c->m + j) * c->inner + i0;      \
    for (int64_t i = 0; i < k; i++) os[i] = xs[(int64_t)ix[i] * c->inner + i]; \
  } while (0)

/* item = (o, column chunk), all j. */
static void gather_chunk(void *p, int64_t b, int64_t e, int64_t task) {
  const mk_idx_ctx *c = (const mk_idx_ctx *)p;
  for (int64_t it = b; it < e; it++) {
    int64_t o = it / c->nchunks, i0 = (it % c->nchunks) * ICH;
    int64_t k = c->inner - i0 < ICH ? c->inner - i0 : ICH;
    for (int64_t j = 0; j < c->m; j++) {
      if (c->width == 8)
        GATHER_LOOP(uint64_t);
      else
        GATHER_LOOP(uint32_t);
    }
  }
}

#define SCATTER_LOOP(U)                                                         \
  do {                                                                          \
    U *ts = (U *)c->out + o * c->n * c->inner + i0;                             \
    const U *ss = (const U *)c->x + (o * c->m + j) * c->inner + i0;             \
    const int32_t *ix = c->idx + (o * c->m + j) * c->inner + i0;                \
    for (int64_t i = 0; i < k; i++) ts[(int64_t)ix[i] * c->inner + i] += ss[i]; \
  } while (0)

/* item = (o, column chunk): the columns own disjoint target elements. */
static void scatter_chunk(void *p, int64_t b, int64_t e, int64_t task) {
  const mk_idx_ctx *c = (const mk_idx_ctx *)p;
  for (int64_t it = b; it < e; it++) {
    int64_t o = it / c->nchunks, i0 = (it % c->nchunks) * ICH;
    int64_t k = c->inner - i0 < ICH ? c->inner - i0 : ICH;
    for (int64_t j = 0; j < c->m; j++) {
      if (c->type == napi_float32_array)
        SCATTER_LOOP(float);
      else if (c->type == napi_float64_array)
        SCATTER_LOOP(double);
      else
        SCATTER_LOOP(uint32_t);
    }
  }
}

static int read_axis(napi_env env, napi_value *argv, const char *fn, const char *xname, mk_typed *x, int64_t *outer,
                     int64_t *n, int64_t *inner) {
  char w[4][64];
  snprintf(w[0], sizeof w[0], "%s: %s", fn, xname);
  snprintf(w[1], sizeof w[1], "%s: outer", fn);
  snprintf(w[2], sizeof w[2], "%s: n", fn);
  snprintf(w[3], sizeof w[3], "%s: inner", fn);
  return mk_arg_storage(env, argv[0], w[0], x) && mk_arg_dim(env, argv[1], w[1], outer) &&
         mk_arg_dim(env, argv[2], w[2], n) && mk_arg_dim(env, argv[3], w[3], inner) &&
         mk_arg_len(env, x, mk_mul3(*outer, *n, *inner), w[0]);
}

static napi_value js_index_select(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  mk_typed x, idx, out;
  int64_t outer, n, inner;
  if (!mk_napi_args(env, info, 6, argv, "indexSelect") ||
      !read_axis(env, argv, "indexSelect", "x", &x, &outer, &n, &inner) ||
      !mk_arg_i32(env, argv[4], "indexSelect: idx", &idx) || !mk_arg_storage(env, argv[5], "indexSelect: out", &out) ||
      !mk_arg_same_type(env, &out, &x, "indexSelect: out", "x"))
    return NULL;
  const int64_t m = (int64_t)idx.length;
  if (!mk_arg_len(env, &out, mk_mul3(outer, m, inner), "indexSelect: out")) return NULL;
  if (outer == 0) return mk_napi_undefined(env);
  if (!check_indices(env, (const int32_t *)idx.data, m, n, "indexSelect")) return NULL;
  mk_idx_ctx c = {
      (const char *)x.data, (char *)out.data, (const int32_t *)idx.data, n, m, inner, 0, mk_elem_size(&x), x.type};
  if (inner > 0) mk_par_range(outer * m, inner, select_chunk, &c);
  return mk_napi_undefined(env);
}

static napi_value js_index_add(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  mk_typed target, idx, src;
  int64_t outer, n, inner;
  if (!mk_napi_args(env, info, 6, argv, "indexAddInPlace") ||
      !read_axis(env, argv, "indexAddInPlace", "target", &target, &outer, &n, &inner) ||
      !mk_arg_i32(env, argv[4], "indexAddInPlace: idx", &idx) ||
      !mk_arg_storage(env, argv[5], "indexAddInPlace: src", &src) ||
      !mk_arg_same_type(env, &src, &target, "indexAddInPlace: src", "target"))
    return NULL;
  const int64_t m = (int64_t)idx.length;
  if (!mk_arg_len(env, &src, mk_mul3(outer, m, inner), "indexAddInPlace: src")) return NULL;
  if (outer == 0) return mk_napi_undefined(env);
  if (!check_indices(env, (const int32_t *)idx.data, m, n, "indexAdd")) return NULL;
  if (inner == 0 || m == 0) return mk_napi_undefined(env);
  mk_idx_ctx c = {
      (const char *)src.data, (char *)target.data, (const int32_t *)idx.data, n, m, inner, (inner + ICH - 1) / ICH,
      mk_elem_size(&target),  target.type};
  mk_par_range(outer * c.nchunks, m * (inner < ICH ? inner : ICH), index_add_chunk, &c);
  return mk_napi_undefined(env);
}

static napi_value js_gather(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  mk_typed x, idx, out;
  int64_t outer, n, inner, m;
  if (!mk_napi_args(env, info, 7, argv, "gather") || !read_axis(env, argv, "gather", "x", &x, &outer, &n, &inner) ||
      !mk_arg_i32(env, argv[4], "gather: idx", &idx) || !mk_arg_dim(env, argv[5], "gather: m", &m) ||
      !mk_arg_storage(env, argv[6], "gather: out", &out) || !mk_arg_same_type(env, &out, &x, "gather: out", "x"))
    return NULL;
  const int64_t count = mk_mul3(outer, m, inner);
  if (!mk_arg_len(env, &idx, count, "gather: idx") || !mk_arg_len(env, &out, count, "gather: out")) return NULL;
  if (count == 0) return mk_napi_undefined(env);
  if (!check_indices(env, (const int32_t *)idx.data, count, n, "gather")) return NULL;
  mk_idx_ctx c = {(const char *)x.data,
                  (char *)out.data,
                  (const int32_t *)idx.data,
                  n,
                  m,
                  inner,
                  (inner + ICH - 1) / ICH,
                  mk_elem_size(&x),
                  x.type};
  mk_par_range(outer * c.nchunks, m * (inner < ICH ? inner : ICH), gather_chunk, &c);
  return mk_napi_undefined(env);
}

static napi_value js_scatter_add(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  mk_typed target, idx, src;
  int64_t outer, n, inner, m;
  if (!mk_napi_args(env, info, 7, argv, "scatterAddInPlace") ||
      !read_axis(env, argv, "scatterAddInPlace", "target", &target, &outer, &n, &inner) ||
      !mk_arg_i32(env, argv[4], "scatterAddInPlace: idx", &idx) ||
      !mk_arg_storage(env, argv[5], "scatterAddInPlace: src", &src) ||
      !mk_arg_dim(env, argv[6], "scatterAddInPlace: m", &m) ||
      !mk_arg_same_type(env, &src, &target, "scatterAddInPlace: src", "target"))
    return NULL;
  const int64_t count = mk_mul3(outer, m, inner);
  if (!mk_arg_len(env, &idx, count, "scatterAddInPlace: idx") ||
      !mk_arg_len(env, &src, count, "scatterAddInPlace: src"))
    return NULL;
  if (count == 0) return mk_napi_undefined(env);
  if (!check_indices(env, (const int32_t *)idx.data, count, n, "scatterAdd")) return NULL;
  mk_idx_ctx c = {
      (const char *)src.data, (char *)target.data, (const int32_t *)idx.data, n, m, inner, (inner + ICH - 1) / ICH,
      mk_elem_size(&target),  target.type};
  mk_par_range(outer * c.nchunks, m * (inner < ICH ? inner : ICH), scatter_chunk, &c);
  return mk_napi_undefined(env);
}

napi_status mk_register_indexing(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "indexSelect", js_index_select)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "indexAddInPlace", js_index_add)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "gather", js_gather)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "scatterAddInPlace", js_scatter_add);
}
