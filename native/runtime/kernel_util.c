/* See kernel_util.h. */
#include "kernel_util.h"

#include <stdio.h>
#include <string.h>

typedef struct {
  mk_range_fn fn;
  void *ctx;
  int64_t n, chunk;
} par_job;

static void par_task(void *p, int64_t task, int thread_id) {
  (void)thread_id;
  const par_job *j = (const par_job *)p;
  int64_t b = task * j->chunk, e = b + j->chunk;
  if (e > j->n) e = j->n;
  if (b < e) j->fn(j->ctx, b, e, task);
}

int64_t mk_par_tasks(int64_t n, int64_t cost) {
  int threads = mk_get_num_threads();
  if (n < 2 || threads < 2 || cost < 1) return 1;
  int64_t work = (cost > INT64_MAX / n) ? INT64_MAX : n * cost;
  if (work < MK_PAR_MIN_WORK) return 1;
  /* a few tasks per thread for load balance, none smaller than ~8k units */
  int64_t tasks = (int64_t)threads * 4;
  int64_t by_work = work / (MK_PAR_MIN_WORK / 4);
  if (tasks > by_work) tasks = by_work;
  if (tasks > n) tasks = n;
  if (tasks < 2) tasks = 2;
  /* equal chunks: recompute the count the chunk size really gives */
  int64_t chunk = (n + tasks - 1) / tasks;
  return (n + chunk - 1) / chunk;
}

int64_t mk_par_range(int64_t n, int64_t cost, mk_range_fn fn, void *ctx) {
  if (n <= 0) return 0;
  int64_t tasks = mk_par_tasks(n, cost);
  if (tasks <= 1) {
    fn(ctx, 0, n, 0);
    return 1;
  }
  par_job j = {fn, ctx, n, (n + tasks - 1) / tasks};
  mk_parallel_for(tasks, par_task, &j);
  return tasks;
}

/* ---- N-API helpers ------------------------------------------------------- */

int mk_arg_storage(napi_env env, napi_value v, const char *what, mk_typed *out) {
  if (!mk_napi_typed(env, v, what, out)) return 0;
  if (out->type == napi_float32_array || out->type == napi_float64_array || out->type == napi_int32_array) return 1;
  mk_throw_type(env, "%s must be a Float32Array, Float64Array or Int32Array, got %s", what,
                mk_napi_typed_name(out->type));
  return 0;
}

int mk_arg_i32(napi_env env, napi_value v, const char *what, mk_typed *out) {
  if (!mk_napi_typed(env, v, what, out)) return 0;
  if (out->type == napi_int32_array) return 1;
  mk_throw_type(env, "%s must be an Int32Array, got %s", what, mk_napi_typed_name(out->type));
  return 0;
}

int mk_arg_float_or_null(napi_env env, napi_value v, const char *what, mk_typed *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined)) {
    out->data = NULL;
    out->length = 0;
    out->type = napi_float64_array;
    return 1;
  }
  return mk_napi_float_array(env, v, what, out);
}

int mk_arg_same_type(napi_env env, const mk_typed *arr, const mk_typed *like, const char *what, const char *like_name) {
  if (arr->type == like->type) return 1;
  mk_throw_type(env, "%s must be a %s like %s, got %s", what, mk_napi_typed_name(like->type), like_name,
                mk_napi_typed_name(arr->type));
  return 0;
}

int mk_arg_len(napi_env env, const mk_typed *arr, int64_t need, const char *what) {
  if (need >= 0 && (int64_t)arr->length >= need) return 1;
  if (need < 0)
    mk_throw_range(env, "%s: sizes overflow", what);
  else
    mk_throw_range(env, "%s has %zu elements, needs %lld", what, arr->length, (long long)need);
  return 0;
}

int mk_arg_dims(napi_env env, napi_value v, const char *what, int64_t min, int64_t max, int64_t *out, int *rank) {
  bool is = false;
  uint32_t len = 0;
  if (napi_is_array(env, v, &is) != napi_ok || !is) {
    mk_throw_type(env, "%s must be an array of integers", what);
    return 0;
  }
  napi_get_array_length(env, v, &len);
  if (len > MK_MAX_RANK) {
    mk_throw_range(env, "%s has %u dims, at most %d are supported", what, len, MK_MAX_RANK);
    return 0;
  }
  for (uint32_t i = 0; i < len; i++) {
    napi_value e;
    char name[96];
    if (napi_get_element(env, v, i, &e) != napi_ok) {
      mk_throw_type(env, "%s: cannot read element %u", what, i);
      return 0;
    }
    snprintf(name, sizeof name, "%s[%u]", what, i);
    if (!mk_napi_i64(env, e, name, min, max, &out[i])) return 0;
  }
  *rank = (int)len;
  return 1;
}

int mk_arg_enum(napi_env env, napi_value v, const char *what, const char *const *names, int count, int *out) {
  char buf[32] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &len) != napi_ok) {
    mk_throw_type(env, "%s must be a string", what);
    return 0;
  }
  for (int i = 0; i < count; i++)
    if (strcmp(buf, names[i]) == 0) {
      *out = i;
      return 1;
    }
  mk_throw_range(env, "%s: unknown op \"%s\"", what, buf);
  return 0;
}

#define MK_DIM_MAX ((int64_t)1 << 48)

int mk_arg_dim(napi_env env, napi_value v, const char *what, int64_t *out) {
  return mk_napi_i64(env, v, what, 0, MK_DIM_MAX, out);
}

int64_t mk_prod(const int64_t *dims, int rank) {
  int64_t p = 1;
  for (int i = 0; i < rank; i++)
    if (__builtin_mul_overflow(p, dims[i], &p) || p > ((int64_t)1 << 53)) return -1;
  return p;
}

int64_t mk_mul3(int64_t a, int64_t b, int64_t c) {
  int64_t p;
  if (__builtin_mul_overflow(a, b, &p) || __builtin_mul_overflow(p, c, &p) || p > ((int64_t)1 << 53)) return -1;
  return p;
}
