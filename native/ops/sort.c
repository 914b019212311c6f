/*
 * Per-row selection and sorting over [rows, n]; JS exports:
 *   topk(x, rows, n, k, largest, values, indices: Int32Array)
 *   argsort(x, rows, n, descending, out: Int32Array)
 * x is a Float32Array, Float64Array or Int32Array. Order as in
 * src/backend/reference/sort.ts: by value with NaN counted as +Infinity (and
 * -0 equal to +0), equal values by ascending index. Each value becomes an
 * unsigned key whose integer order is that value order, so comparisons are
 * exact and cheap; (key, index) pairs are all distinct.
 * topk keeps a bounded heap when k is small against n (O(n log k)); otherwise
 * both sort the row with a bottom-up merge sort.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"
#include "kernel_util.h"

typedef struct {
  uint64_t key;
  uint32_t idx;
} mk_item;

static inline int item_less(mk_item a, mk_item b) { return a.key < b.key || (a.key == b.key && a.idx < b.idx); }

static inline uint64_t key_f64(double v) {
  if (v != v) v = INFINITY;
  if (v == 0) v = 0.0; /* -0 sorts with +0 */
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  return (u >> 63) ? ~u : (u | UINT64_C(0x8000000000000000));
}

typedef struct {
  const void *x;
  napi_typedarray_type type;
  int64_t n, k;
  int descending; /* argsort: descending; topk: largest */
  void *values;
  int32_t *indices;
} mk_sort_ctx;

static inline uint64_t key_at(const mk_sort_ctx *c, int64_t i) {
  uint64_t key;
  if (c->type == napi_float32_array)
    key = key_f64((double)((const float *)c->x)[i]);
  else if (c->type == napi_float64_array)
    key = key_f64(((const double *)c->x)[i]);
  else
    key = (uint64_t)((uint32_t)((const int32_t *)c->x)[i] ^ 0x80000000u);
  return c->descending ? ~key : key;
}

/* Sorts a[0..n) with tmp as scratch; returns the buffer holding the result. */
static mk_item *merge_sort(mk_item *a, mk_item *tmp, int64_t n) {
  /* insertion-sort runs of 16, then merge pairs of runs */
  const int64_t RUN = 16;
  for (int64_t s = 0; s < n; s += RUN) {
    int64_t e = s + RUN < n ? s + RUN : n;
    for (int64_t i = s + 1; i < e; i++) {
      mk_item v = a[i];
      int64_t j = i;
      while (j > s && item_less(v, a[j - 1])) {
        a[j] = a[j - 1];
        j--;
      }
      a[j] = v;
    }
  }
  mk_item *src = a, *dst = tmp;
  for (int64_t w = RUN; w < n; w *= 2) {
    for (int64_t s = 0; s < n; s += 2 * w) {
      int64_t mid = s + w < n ? s + w : n, e = s + 2 * w < n ? s + 2 * w : n;
      int64_t i = s, j = mid, o = s;
      while (i < mid && j < e) dst[o++] = item_less(src[j], src[i]) ? src[j++] : src[i++];
      while (i < mid) dst[o++] = src[i++];
      while (j < e) dst[o++] = src[j++];
    }
    mk_item *t = src;
    src = dst;
    dst = t;
  }
  return src;
}

/* Max-heap on item order: the root is the worst of the kept k. */
static void sift_down(mk_item *h, int64_t k, int64_t i) {
  for (;;) {
    int64_t l = 2 * i + 1, r = l + 1, big = i;
    if (l < k && item_less(h[big], h[l])) big = l;
    if (r < k && item_less(h[big], h[r])) big = r;
    if (big == i) return;
    mk_item t = h[i];
    h[i] = h[big];
    h[big] = t;
    i = big;
  }
}

static inline int use_heap(int64_t n, int64_t k) { return k * 8 <= n; }

static void write_topk(const mk_sort_ctx *c, int64_t r, const mk_item *sorted) {
  const int64_t k = c->k;
  for (int64_t j = 0; j < k; j++) {
    int64_t src = r * c->n + sorted[j].idx, dst = r * k + j;
    c->indices[dst] = (int32_t)sorted[j].idx;
    if (c->type == napi_float64_array)
      ((double *)c->values)[dst] = ((const double *)c->x)[src];
    else
      ((uint32_t *)c->values)[dst] = ((const uint32_t *)c->x)[src];
  }
}

static void sort_rows(void *p, int64_t r0, int64_t r1, int64_t task) {
  const mk_sort_ctx *c = (const mk_sort_ctx *)p;
  const int64_t n = c->n;
  mk_item *buf = (mk_item *)malloc(sizeof(mk_item) * (size_t)(2 * n));
  if (!buf) return; /* the wrapper pre-checked an allocation of this size */
  for (int64_t r = r0; r < r1; r++) {
    const int64_t base = r * n;
    if (c->indices && use_heap(n, c->k)) { /* topk with a bounded heap */
      const int64_t k = c->k;
      mk_item *h = buf;
      for (int64_t i = 0; i < k; i++) h[i] = (mk_item){key_at(c, base + i), (uint32_t)i};
      for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down(h, k, i);
      for (int64_t i = k; i < n; i++) {
        mk_item e = {key_at(c, base + i), (uint32_t)i};
        if (item_less(e, h[0])) {
          h[0] = e;
          sift_down(h, k, 0);
        }
      }
      write_topk(c, r, merge_sort(h, buf + n, k));
      continue;
    }
    for (int64_t i = 0; i < n; i++) buf[i] = (mk_item){key_at(c, base + i), (uint32_t)i};
    const mk_item *s = merge_sort(buf, buf + n, n);
    if (c->indices) {
      write_topk(c, r, s);
    } else {
      int32_t *out = (int32_t *)c->values + base;
      for (int64_t i = 0; i < n; i++) out[i] = (int32_t)s[i].idx;
    }
  }
  free(buf);
}

static int read_rows(napi_env env, napi_value *argv, const char *fn, mk_typed *x, int64_t *rows, int64_t *n) {
  char w[3][48];
  snprintf(w[0], sizeof w[0], "%s: x", fn);
  snprintf(w[1], sizeof w[1], "%s: rows", fn);
  snprintf(w[2], sizeof w[2], "%s: n", fn);
  if (!mk_arg_storage(env, argv[0], w[0], x) || !mk_arg_dim(env, argv[1], w[1], rows) ||
      !mk_arg_dim(env, argv[2], w[2], n) || !mk_arg_len(env, x, mk_mul3(*rows, *n, 1), w[0]))
    return 0;
  if (*n > INT32_MAX) {
    mk_throw_range(env, "%s: n = %lld does not fit int32", fn, (long long)*n);
    return 0;
  }
  return 1;
}

/* Fails early (in the caller's thread) if the per-task scratch cannot exist. */
static int probe_alloc(napi_env env, int64_t n, const char *fn) {
  void *p = malloc(sizeof(mk_item) * (size_t)(2 * n + 1));
  if (!p) {
    mk_throw_error(env, "%s: out of memory", fn);
    return 0;
  }
  free(p);
  return 1;
}

static napi_value js_topk(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  mk_typed x, values, indices;
  int64_t rows, n, k;
  int largest;
  if (!mk_napi_args(env, info, 7, argv, "topk") || !read_rows(env, argv, "topk", &x, &rows, &n) ||
      !mk_arg_dim(env, argv[3], "topk: k", &k) || !mk_napi_bool(env, argv[4], "topk: largest", &largest) ||
      !mk_arg_storage(env, argv[5], "topk: values", &values) ||
      !mk_arg_same_type(env, &values, &x, "topk: values", "x") || !mk_arg_i32(env, argv[6], "topk: indices", &indices))
    return NULL;
  if (k > n) return mk_throw_range(env, "topk: k = %lld exceeds n = %lld", (long long)k, (long long)n);
  if (!mk_arg_len(env, &values, rows * k, "topk: values") || !mk_arg_len(env, &indices, rows * k, "topk: indices"))
    return NULL;
  if (rows == 0 || k == 0) return mk_napi_undefined(env);
  if (!probe_alloc(env, n, "topk")) return NULL;
  mk_sort_ctx c = {x.data, x.type, n, k, largest, values.data, (int32_t *)indices.data};
  mk_par_range(rows, use_heap(n, k) ? n : n * 8, sort_rows, &c);
  return mk_napi_undefined(env);
}

static napi_value js_argsort(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  mk_typed x, out;
  int64_t rows, n;
  int desc;
  if (!mk_napi_args(env, info, 5, argv, "argsort") || !read_rows(env, argv, "argsort", &x, &rows, &n) ||
      !mk_napi_bool(env, argv[3], "argsort: descending", &desc) || !mk_arg_i32(env, argv[4], "argsort: out", &out) ||
      !mk_arg_len(env, &out, rows * n, "argsort: out"))
    return NULL;
  if (rows == 0 || n == 0) return mk_napi_undefined(env);
  if (!probe_alloc(env, n, "argsort")) return NULL;
  mk_sort_ctx c = {x.data, x.type, n, 0, desc, out.data, NULL};
  mk_par_range(rows, n * 8, sort_rows, &c);
  return mk_napi_undefined(env);
}

napi_status mk_register_sort(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "topk", js_topk)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "argsort", js_argsort);
}
