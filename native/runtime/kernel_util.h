/*
 * Shared helpers for the non-GEMM kernel files (elementwise, reduce, rowwise,
 * layout, indexing, sort, attention, optim):
 *   - mk_par_range: split [0, n) into contiguous chunks over the thread pool,
 *     or run serially when the work is small;
 *   - N-API argument helpers on top of napi_util.h (dims arrays, optional
 *     arrays, op names, length checks).
 * Every kernel file also includes its *_impl.inc twice, with T = float /
 * double and SFX = f32 / f64, so each kernel is written once.
 */
#ifndef MOEKIT_KERNEL_UTIL_H
#define MOEKIT_KERNEL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "napi_util.h"
#include "threadpool.h"

#define MK_CAT_(a, b) a##b
#define MK_CAT(a, b) MK_CAT_(a, b)

/* Below this many work units (about one element touched each) a kernel runs
 * on the calling thread: the pool's wake-up costs more than it saves. */
#define MK_PAR_MIN_WORK 32768

/* Most dims a shape / strides array may have (binary, where, permute, ...). */
#define MK_MAX_RANK 16

typedef void (*mk_range_fn)(void *ctx, int64_t begin, int64_t end, int64_t task);

/*
 * Runs fn(ctx, begin, end, task) over contiguous chunks covering [0, n).
 * `cost` is the work per item (elements touched); when n * cost is small or
 * the pool has one thread, fn runs once on [0, n) with task 0. The chunking
 * is a function of (n, cost, thread count) only, so per-task partial results
 * combine deterministically. Returns the number of tasks used; callers that
 * keep per-task scratch size it with mk_par_tasks(n, cost) first.
 */
int64_t mk_par_range(int64_t n, int64_t cost, mk_range_fn fn, void *ctx);
/* The number of tasks mk_par_range(n, cost, ...) will use. */
int64_t mk_par_tasks(int64_t n, int64_t cost);

/* ---- N-API helpers (all throw and return 0 on failure) ------------------- */

/* Typed array of float32 / float64 / int32 (the three Storage kinds). */
int mk_arg_storage(napi_env env, napi_value v, const char *what, mk_typed *out);
/* Int32Array only. */
int mk_arg_i32(napi_env env, napi_value v, const char *what, mk_typed *out);
/* Float array, or null/undefined (then out->data = NULL, out->length = 0). */
int mk_arg_float_or_null(napi_env env, napi_value v, const char *what, mk_typed *out);
/* `arr` must have the same element type as `like`. */
int mk_arg_same_type(napi_env env, const mk_typed *arr, const mk_typed *like, const char *what, const char *like_name);
/* arr.length >= need; RangeError "<what> has N elements, needs M" otherwise. */
int mk_arg_len(napi_env env, const mk_typed *arr, int64_t need, const char *what);
/* A JS array of integers in [min, max], at most MK_MAX_RANK long. */
int mk_arg_dims(napi_env env, napi_value v, const char *what, int64_t min, int64_t max, int64_t *out, int *rank);
/* A string among names[0..count); *out = its position. */
int mk_arg_enum(napi_env env, napi_value v, const char *what, const char *const *names, int count, int *out);
/* Dimension argument: integer in [0, 2^48]. */
int mk_arg_dim(napi_env env, napi_value v, const char *what, int64_t *out);
/* product of dims, or -1 on overflow past 2^53 */
int64_t mk_prod(const int64_t *dims, int rank);
/* a * b * c with overflow check (-1 on overflow) */
int64_t mk_mul3(int64_t a, int64_t b, int64_t c);

/* 4 for Float32Array / Int32Array, 8 for Float64Array. */
static inline size_t mk_elem_size(const mk_typed *t) { return t->type == napi_float64_array ? 8 : 4; }

#endif
