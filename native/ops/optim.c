/*
 * Optimiser kernels (mutate their first arguments); JS exports:
 *   adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay,
 *         biasCorrection1, biasCorrection2)
 *   axpy(y, x, alpha)                       y += alpha * x
 *   sumSquares(x, sq)                       returns sq + sum of x[i]^2
 * All arrays Float32Array or all Float64Array, same length.
 */
#include <math.h>

#include "addon.h"
#include "kernel_util.h"

typedef struct {
  void *y, *m, *v;
  const void *x;
  double beta1, beta2, eps, step_size, sqrt_bc2, decay, alpha;
} mk_opt_ctx;

#define T float
#define SFX f32
#include "optim_impl.inc"
#undef T
#undef SFX
#define T double
#define SFX f64
#include "optim_impl.inc"
#undef T
#undef SFX

static int arg_same(napi_env env, napi_value v, const char *what, const mk_typed *like, const char *like_name,
                    mk_typed *out) {
  return mk_napi_float_array(env, v, what, out) && mk_arg_same_type(env, out, like, what, like_name) &&
         mk_arg_len(env, out, (int64_t)like->length, what);
}

static napi_value js_adamw(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  mk_typed param, grad, m, v;
  double lr, b1, b2, eps, wd, bc1, bc2;
  if (!mk_napi_args(env, info, 11, argv, "adamw") || !mk_napi_float_array(env, argv[0], "adamw: param", &param) ||
      !arg_same(env, argv[1], "adamw: grad", &param, "param", &grad) ||
      !arg_same(env, argv[2], "adamw: m", &param, "param", &m) ||
      !arg_same(env, argv[3], "adamw: v", &param, "param", &v) || !mk_napi_f64(env, argv[4], "adamw: lr", &lr) ||
      !mk_napi_f64(env, argv[5], "adamw: beta1", &b1) || !mk_napi_f64(env, argv[6], "adamw: beta2", &b2) ||
      !mk_napi_f64(env, argv[7], "adamw: eps", &eps) || !mk_napi_f64(env, argv[8], "adamw: weightDecay", &wd) ||
      !mk_napi_f64(env, argv[9], "adamw: biasCorrection1", &bc1) ||
      !mk_napi_f64(env, argv[10], "adamw: biasCorrection2", &bc2))
    return NULL;
  mk_opt_ctx c = {param.data, m.data, v.data, grad.data, b1, b2, eps, lr / bc1, sqrt(bc2), 1 - lr * wd, 0};
  mk_par_range((int64_t)param.length, 4, param.type == napi_float64_array ? adamw_chunk_f64 : adamw_chunk_f32, &c);
  return mk_napi_undefined(env);
}

static napi_value js_axpy(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  mk_typed y, x;
  double alpha;
  if (!mk_napi_args(env, info, 3, argv, "axpy") || !mk_napi_float_array(env, argv[0], "axpy: y", &y) ||
      !arg_same(env, argv[1], "axpy: x", &y, "y", &x) || !mk_napi_f64(env, argv[2], "axpy: alpha", &alpha))
    return NULL;
  mk_opt_ctx c = {.y = y.data, .x = x.data, .alpha = alpha};
  mk_par_range((int64_t)y.length, 1, y.type == napi_float64_array ? axpy_chunk_f64 : axpy_chunk_f32, &c);
  return mk_napi_undefined(env);
}

/* Gradient clipping's squared norm: in double, one element after the other (no reordering, no
 * contraction: -ffp-contract=off), so the sum is src/optim/clip.ts's JavaScript loop's bit for bit. */
static napi_value js_sum_squares(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  mk_typed x;
  double sq;
  if (!mk_napi_args(env, info, 2, argv, "sumSquares") || !mk_napi_float_array(env, argv[0], "sumSquares: x", &x) ||
      !mk_napi_f64(env, argv[1], "sumSquares: sq", &sq))
    return NULL;
  if (x.type == napi_float64_array) {
    const double *a = (const double *)x.data;
    for (size_t i = 0; i < x.length; i++) sq += a[i] * a[i];
  } else {
    const float *a = (const float *)x.data;
    for (size_t i = 0; i < x.length; i++) {
      const double v = a[i];
      sq += v * v;
    }
  }
  napi_value out;
  if (napi_create_double(env, sq, &out) != napi_ok) return NULL;
  return out;
}

napi_status mk_register_optim(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "sumSquares", js_sum_squares)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "adamw", js_adamw)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "axpy", js_axpy);
}
