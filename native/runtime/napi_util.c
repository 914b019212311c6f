#include "napi_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static napi_value throw_fmt(napi_env env, int kind, const char *fmt, va_list ap) {
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    if (kind == 0)
      napi_throw_type_error(env, NULL, msg);
    else if (kind == 1)
      napi_throw_range_error(env, NULL, msg);
    else
      napi_throw_error(env, NULL, msg);
  }
  return NULL;
}

napi_value mk_throw_type(napi_env env, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  throw_fmt(env, 0, fmt, ap);
  va_end(ap);
  return NULL;
}

napi_value mk_throw_range(napi_env env, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  throw_fmt(env, 1, fmt, ap);
  va_end(ap);
  return NULL;
}

napi_value mk_throw_error(napi_env env, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  throw_fmt(env, 2, fmt, ap);
  va_end(ap);
  return NULL;
}

int mk_napi_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *fn) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    mk_throw_error(env, "%s: cannot read arguments", fn);
    return 0;
  }
  if (argc < want) {
    mk_throw_type(env, "%s: expected %zu arguments, got %zu", fn, want, argc);
    return 0;
  }
  return 1;
}

const char *mk_napi_typed_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
      return "Int8Array";
    case napi_uint8_array:
      return "Uint8Array";
    case napi_uint8_clamped_array:
      return "Uint8ClampedArray";
    case napi_int16_array:
      return "Int16Array";
    case napi_uint16_array:
      return "Uint16Array";
    case napi_int32_array:
      return "Int32Array";
    case napi_uint32_array:
      return "Uint32Array";
    case napi_float32_array:
      return "Float32Array";
    case napi_float64_array:
      return "Float64Array";
    case napi_bigint64_array:
      return "BigInt64Array";
    case napi_biguint64_array:
      return "BigUint64Array";
    default:
      return "typed array";
  }
}

int mk_napi_typed(napi_env env, napi_value v, const char *what, mk_typed *out) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) {
    mk_throw_type(env, "%s must be a typed array", what);
    return 0;
  }
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &out->type, &out->length, &out->data, &ab, &offset) != napi_ok) {
    mk_throw_type(env, "%s: cannot read typed array", what);
    return 0;
  }
  return 1;
}

int mk_napi_float_array(napi_env env, napi_value v, const char *what, mk_typed *out) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (is && mk_napi_typed(env, v, what, out) && (out->type == napi_float32_array || out->type == napi_float64_array))
    return 1;
  if (is)
    mk_throw_type(env, "%s must be a Float32Array or Float64Array, got %s", what, mk_napi_typed_name(out->type));
  else
    mk_throw_type(env, "%s must be a Float32Array or Float64Array", what);
  return 0;
}

int mk_napi_f64(napi_env env, napi_value v, const char *what, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    mk_throw_type(env, "%s must be a number", what);
    return 0;
  }
  return 1;
}

int mk_napi_i64(napi_env env, napi_value v, const char *what, int64_t min, int64_t max, int64_t *out) {
  double d;
  if (!mk_napi_f64(env, v, what, &d)) return 0;
  if (!isfinite(d) || d != floor(d)) {
    mk_throw_type(env, "%s must be an integer, got %g", what, d);
    return 0;
  }
  if (d < (double)min || d > (double)max) {
    mk_throw_range(env, "%s must be in [%lld, %lld], got %.0f", what, (long long)min, (long long)max, d);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

int mk_napi_bool(napi_env env, napi_value v, const char *what, int *out) {
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) {
    mk_throw_type(env, "%s must be a boolean", what);
    return 0;
  }
  *out = b ? 1 : 0;
  return 1;
}

napi_status mk_napi_export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_status st = napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  if (st != napi_ok) return st;
  return napi_set_named_property(env, exports, name, fn);
}

napi_value mk_napi_make_i64(napi_env env, int64_t v) {
  napi_value r = NULL;
  napi_create_int64(env, v, &r);
  return r;
}

napi_value mk_napi_make_string(napi_env env, const char *s) {
  napi_value r = NULL;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &r);
  return r;
}

napi_value mk_napi_undefined(napi_env env) {
  napi_value r = NULL;
  napi_get_undefined(env, &r);
  return r;
}

int mk_opts_arg(napi_env env, napi_callback_info info, const char *fn, mk_opts *o) {
  napi_value argv[1];
  napi_valuetype t = napi_undefined;
  if (!mk_napi_args(env, info, 1, argv, fn)) return 0;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_object) {
    mk_throw_type(env, "%s: expected an options object", fn);
    return 0;
  }
  o->env = env;
  o->obj = argv[0];
  o->fn = fn;
  o->what[0] = 0;
  return 1;
}

napi_value mk_opt(mk_opts *o, const char *name) {
  napi_value v = NULL;
  snprintf(o->what, sizeof o->what, "%s: %s", o->fn, name);
  if (napi_get_named_property(o->env, o->obj, name, &v) != napi_ok) {
    mk_throw_error(o->env, "%s: cannot read the option", o->what);
    return NULL;
  }
  return v;
}

int mk_opt_i64(mk_opts *o, const char *name, int64_t min, int64_t max, int64_t *out) {
  napi_value v = mk_opt(o, name);
  return v && mk_napi_i64(o->env, v, o->what, min, max, out);
}

int mk_opt_f64(mk_opts *o, const char *name, double *out) {
  napi_value v = mk_opt(o, name);
  return v && mk_napi_f64(o->env, v, o->what, out);
}

int mk_opt_bool(mk_opts *o, const char *name, int *out) {
  napi_value v = mk_opt(o, name);
  return v && mk_napi_bool(o->env, v, o->what, out);
}

int mk_opt_typed(mk_opts *o, const char *name, napi_typedarray_type type, int any_float, int nullable, mk_typed *out) {
  napi_value v = mk_opt(o, name);
  if (!v) return 0;
  napi_valuetype vt = napi_undefined;
  napi_typeof(o->env, v, &vt);
  if (nullable && (vt == napi_null || vt == napi_undefined)) {
    out->data = NULL;
    out->length = 0;
    out->type = type;
    return 1;
  }
  if (any_float) return mk_napi_float_array(o->env, v, o->what, out);
  if (!mk_napi_typed(o->env, v, o->what, out)) return 0;
  if (out->type == type) return 1;
  mk_throw_type(o->env, "%s must be a %s, got %s", o->what, mk_napi_typed_name(type), mk_napi_typed_name(out->type));
  return 0;
}

int mk_opt_enum(mk_opts *o, const char *name, const char *const *names, int count, int *out) {
  napi_value v = mk_opt(o, name);
  if (!v) return 0;
  char s[32];
  size_t n = 0;
  if (napi_get_value_string_utf8(o->env, v, s, sizeof s, &n) == napi_ok)
    for (int i = 0; i < count; i++)
      if (strcmp(s, names[i]) == 0) {
        *out = i;
        return 1;
      }
  char allowed[160] = "";
  for (int i = 0; i < count; i++)
    snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s'%s'", i ? ", " : "", names[i]);
  mk_throw_type(o->env, "%s must be one of %s", o->what, allowed);
  return 0;
}
