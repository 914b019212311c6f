/*
 * Small Node-API helpers shared by every exports file.
 *
 * Convention: a helper that fails has already thrown a JS exception and
 * returns 0 (or NULL); the caller then returns NULL from its napi_callback.
 *
 *   static napi_value my_op(napi_env env, napi_callback_info info) {
 *     napi_value argv[3];
 *     if (!mk_napi_args(env, info, 3, argv, "myOp")) return NULL;
 *     mk_typed x;
 *     int64_t n;
 *     if (!mk_napi_typed(env, argv[0], "x", &x) || !mk_napi_i64(env, argv[1], "n", &n))
 *       return NULL;
 *     ...
 *   }
 */
#ifndef MOEKIT_NAPI_UTIL_H
#define MOEKIT_NAPI_UTIL_H

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* A typed array argument: data points at its first element. */
typedef struct {
  void *data;
  size_t length; /* elements */
  napi_typedarray_type type;
} mk_typed;

/* Fetch exactly `want` arguments; throws TypeError "<fn>: expected N arguments". */
int mk_napi_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *fn);

/* Any typed array; throws TypeError naming `what` otherwise. */
int mk_napi_typed(napi_env env, napi_value v, const char *what, mk_typed *out);

/* A Float32Array or Float64Array; throws TypeError naming `what` otherwise. */
int mk_napi_float_array(napi_env env, napi_value v, const char *what, mk_typed *out);

/* An integer-valued number in [min, max]; throws TypeError / RangeError. */
int mk_napi_i64(napi_env env, napi_value v, const char *what, int64_t min, int64_t max, int64_t *out);

int mk_napi_f64(napi_env env, napi_value v, const char *what, double *out);
int mk_napi_bool(napi_env env, napi_value v, const char *what, int *out);

/* "float32" | "float64" | "int32" | ... for messages. */
const char *mk_napi_typed_name(napi_typedarray_type t);

/* Throw with a printf-style message; always return NULL, so one can write
 * `return mk_throw_range(env, "x: ...", ...);` in a callback. */
napi_value mk_throw_type(napi_env env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
napi_value mk_throw_range(napi_env env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
napi_value mk_throw_error(napi_env env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Set exports[name] = function; returns napi_ok or the failing status. */
napi_status mk_napi_export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb);

/*
 * Named options: an export that takes one options object reads its fields by name. Each getter
 * throws naming "<fn>: <name>" (a missing field reads as undefined: an error, except where a
 * nullable array takes it as null).
 *
 *   mk_opts o;
 *   int64_t n;
 *   if (!mk_opts_arg(env, info, "myOp", &o) || !mk_opt_i64(&o, "n", 0, 100, &n)) return NULL;
 */
typedef struct {
  napi_env env;
  napi_value obj;
  const char *fn;
  char what[96]; /* "<fn>: <name>" of the field read last */
} mk_opts;

/* The export's only argument, an object; throws TypeError "<fn>: expected an options object". */
int mk_opts_arg(napi_env env, napi_callback_info info, const char *fn, mk_opts *o);
/* The value of field `name` (undefined when absent); sets o->what. NULL after throwing. */
napi_value mk_opt(mk_opts *o, const char *name);
int mk_opt_i64(mk_opts *o, const char *name, int64_t min, int64_t max, int64_t *out);
int mk_opt_f64(mk_opts *o, const char *name, double *out);
int mk_opt_bool(mk_opts *o, const char *name, int *out);
/* A typed array of type `type` (or, with type napi_float32_array and `anyFloat`, Float32Array or
 * Float64Array); nullable: null / undefined give data NULL, length 0. */
int mk_opt_typed(mk_opts *o, const char *name, napi_typedarray_type type, int any_float, int nullable, mk_typed *out);
/* A string among names[0..count); *out = its position. */
int mk_opt_enum(mk_opts *o, const char *name, const char *const *names, int count, int *out);

/* Value constructors that ignore failures (they only fail on a dead env). */
napi_value mk_napi_make_i64(napi_env env, int64_t v);
napi_value mk_napi_make_string(napi_env env, const char *s);
napi_value mk_napi_undefined(napi_env env);

#endif
