/*
 * Elementwise kernels and their JS exports:
 *   unary(op, x, out)                 unaryBackward(op, x, dy, out)
 *   binary(op, a, aStrides, b, bStrides, outShape, out)
 *   where(cond, cStrides, a, aStrides, b, bStrides, outShape, out)
 *   clamp(x, lo, hi, out)             cast(x, out)
 * Float kernels take Float32Array / Float64Array (all operands the same);
 * binary also takes Int32Array for the ops that are exact on int32 (add, sub,
 * maximum, minimum, comparisons); where and cast take all three kinds.
 * Semantics follow src/backend/reference/elementwise.ts and math.ts.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "addon.h"
#include "kernel_util.h"
#include "nd_iter.h"
#include "vec_f32.h"

typedef enum {
  U_NEG,
  U_EXP,
  U_LOG,
  U_SQRT,
  U_RSQRT,
  U_ABS,
  U_TANH,
  U_SIGMOID,
  U_SILU,
  U_RELU,
  U_GELU,
  U_GELU_TANH,
  U_SIGN,
  U_SQUARE,
  U_RECIPROCAL,
  U_COUNT
} mk_unary_op;
static const char *const k_unary_names[U_COUNT] = {"neg",  "exp",       "log",     "sqrt",   "rsqrt",
                                                   "abs",  "tanh",      "sigmoid", "silu",   "relu",
                                                   "gelu", "gelu_tanh", "sign",    "square", "reciprocal"};

typedef enum {
  B_ADD,
  B_SUB,
  B_MUL,
  B_DIV,
  B_POW,
  B_MAXIMUM,
  B_MINIMUM,
  B_EQ,
  B_NE,
  B_LT,
  B_LE,
  B_GT,
  B_GE,
  B_COUNT
} mk_binary_op;
static const char *const k_binary_names[B_COUNT] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                                    "eq",  "ne",  "lt",  "le",  "gt",  "ge"};

/* ---- scalar math (double), as in src/backend/reference/math.ts ------------ */

#define INV_SQRT2 0.7071067811865476
#define INV_SQRT_2PI 0.3989422804014327
#define SQRT_2_OVER_PI 0.7978845608028654
#define GELU_TANH_C 0.044715

static inline double mk_sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}
static inline double mk_gelu(double x) { return 0.5 * x * (1.0 + erf(x * INV_SQRT2)); }
static inline double mk_gelu_tanh(double x) {
  return 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x)));
}

/* JS Math.pow differs from C pow only where |x| == 1 and y is NaN / infinite. */
static inline double mk_js_pow(double x, double y) {
  if (y != y) return NAN;
  if (isinf(y) && fabs(x) == 1.0) return NAN;
  return pow(x, y);
}

static double mk_unary_deriv(int op, double x) {
  switch ((mk_unary_op)op) {
    case U_NEG:
      return -1;
    case U_EXP:
      return exp(x);
    case U_LOG:
      return 1 / x;
    case U_SQRT:
      return 0.5 / sqrt(x);
    case U_RSQRT:
      return -0.5 / (x * sqrt(x));
    case U_ABS:
      return x > 0 ? 1 : (x < 0 ? -1 : 0);
    case U_TANH: {
      double t = tanh(x);
      return 1 - t * t;
    }
    case U_SIGMOID: {
      double s = mk_sigmoid(x);
      return s * (1 - s);
    }
    case U_SILU: {
      double s = mk_sigmoid(x);
      return s * (1 + x * (1 - s));
    }
    case U_RELU:
      return x > 0 ? 1 : 0;
    case U_GELU:
      return 0.5 * (1 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
    case U_GELU_TANH: {
      double u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
      double t = tanh(u);
      double du = SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_C * x * x);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
    }
    case U_SIGN:
      return 0;
    case U_SQUARE:
      return 2 * x;
    case U_RECIPROCAL:
      return -1 / (x * x);
    default:
      return NAN;
  }
}

typedef struct {
  int op;
  const void *a, *b;
  void *out;
  mk_nd_layout lay;
} mk_bin_ctx;

#define T float
#define SFX f32
#define EW_VEC 1
#include "elementwise_impl.inc"
#undef EW_VEC
#undef T
#undef SFX
#define T double
#define SFX f64
#define EW_VEC 0
#include "elementwise_impl.inc"
#undef EW_VEC
#undef T
#undef SFX

/* int32 binary: only ops whose JS result (double, then ToInt32) is exact. */
static int i32_binary_supported(int op) { return op != B_MUL && op != B_DIV && op != B_POW; }

static void binary_chunk_i32(void *p, int64_t begin, int64_t end, int64_t task) {
  const mk_bin_ctx *c = (const mk_bin_ctx *)p;
  const int32_t *a = (const int32_t *)c->a, *b = (const int32_t *)c->b;
  int32_t *out = (int32_t *)c->out;
  mk_nd_iter it;
  mk_nd_iter_init(&it, &c->lay, begin);
  const int last = c->lay.rank - 1;
  const int64_t sa = c->lay.st[0][last], sb = c->lay.st[1][last];
  for (int64_t pos = begin; pos < end;) {
    int64_t n = mk_nd_iter_run(&it, &c->lay, end - pos);
    const int32_t *pa = a + it.off[0], *pb = b + it.off[1];
    int32_t *po = out + pos;
    for (int64_t i = 0; i < n; i++) {
      int32_t x = pa[i * sa], y = pb[i * sb], r = 0;
      switch ((mk_binary_op)c->op) {
        /* wrap-around add/sub == ToInt32 of the exact double sum */
        case B_ADD:
          r = (int32_t)((uint32_t)x + (uint32_t)y);
          break;
        case B_SUB:
          r = (int32_t)((uint32_t)x - (uint32_t)y);
          break;
        case B_MAXIMUM:
          r = x > y ? x : y;
          break;
        case B_MINIMUM:
          r = x < y ? x : y;
          break;
        case B_EQ:
          r = x == y;
          break;
        case B_NE:
          r = x != y;
          break;
        case B_LT:
          r = x < y;
          break;
        case B_LE:
          r = x <= y;
          break;
        case B_GT:
          r = x > y;
          break;
        case B_GE:
          r = x >= y;
          break;
        default:
          break;
      }
      po[i] = r;
    }
    pos += n;
    mk_nd_iter_advance(&it, &c->lay, n);
  }
}

/* ---- where: select by element width; cond of any storage kind ------------- */

typedef struct {
  const void *cond, *a, *b;
  void *out;
  napi_typedarray_type ctype;
  size_t width;
  mk_nd_layout lay;
} mk_where_ctx;

static inline int cond_at(const void *c, napi_typedarray_type t, int64_t i) {
  if (t == napi_float32_array) return ((const float *)c)[i] != 0; /* NaN counts as true */
  if (t == napi_float64_array) return ((const double *)c)[i] != 0;
  return ((const int32_t *)c)[i] != 0;
}

static void where_chunk(void *p, int64_t begin, int64_t end, int64_t task) {
  const mk_where_ctx *c = (const mk_where_ctx *)p;
  mk_nd_iter it;
  mk_nd_iter_init(&it, &c->lay, begin);
  const int last = c->lay.rank - 1;
  const int64_t sc = c->lay.st[0][last], sa = c->lay.st[1][last], sb = c->lay.st[2][last];
  for (int64_t pos = begin; pos < end;) {
    int64_t n = mk_nd_iter_run(&it, &c->lay, end - pos);
    for (int64_t i = 0; i < n; i++) {
      int take_a = cond_at(c->cond, c->ctype, it.off[0] + i * sc);
      if (c->width == 8) {
        const uint64_t *src =
            take_a ? (const uint64_t *)c->a + it.off[1] + i * sa : (const uint64_t *)c->b + it.off[2] + i * sb;
        ((uint64_t *)c->out)[pos + i] = *src;
      } else {
        const uint32_t *src =
            take_a ? (const uint32_t *)c->a + it.off[1] + i * sa : (const uint32_t *)c->b + it.off[2] + i * sb;
        ((uint32_t *)c->out)[pos + i] = *src;
      }
    }
    pos += n;
    mk_nd_iter_advance(&it, &c->lay, n);
  }
}

/* ---- cast ------------------------------------------------------------------ */

/* JS ToInt32(Math.trunc(x)): NaN / +-Inf -> 0, wraps modulo 2^32. */
static inline int32_t js_to_int32(double x) {
  if (!isfinite(x)) return 0;
  double t = trunc(x);
  if (t >= -2147483648.0 && t <= 2147483647.0) return (int32_t)t;
  double m = fmod(t, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return (int32_t)(uint32_t)m;
}

typedef struct {
  const void *x;
  void *out;
  napi_typedarray_type from, to;
} mk_cast_ctx;

static void cast_chunk(void *p, int64_t b, int64_t e, int64_t task) {
  const mk_cast_ctx *c = (const mk_cast_ctx *)p;
#define CAST_LOOP(FROM, TO, EXPR)                  \
  do {                                             \
    const FROM *restrict x = (const FROM *)c->x;   \
    TO *restrict o = (TO *)c->out;                 \
    for (int64_t i = b; i < e; i++) o[i] = (EXPR); \
  } while (0)
  if (c->to == napi_int32_array) {
    if (c->from == napi_float32_array)
      CAST_LOOP(float, int32_t, js_to_int32(x[i]));
    else if (c->from == napi_float64_array)
      CAST_LOOP(double, int32_t, js_to_int32(x[i]));
    else
      CAST_LOOP(int32_t, int32_t, x[i]);
  } else if (c->to == napi_float32_array) {
    if (c->from == napi_float32_array)
      CAST_LOOP(float, float, x[i]);
    else if (c->from == napi_float64_array)
      CAST_LOOP(double, float, (float)x[i]);
    else
      CAST_LOOP(int32_t, float, (float)x[i]);
  } else {
    if (c->from == napi_float32_array)
      CAST_LOOP(float, double, (double)x[i]);
    else if (c->from == napi_float64_array)
      CAST_LOOP(double, double, x[i]);
    else
      CAST_LOOP(int32_t, double, (double)x[i]);
  }
#undef CAST_LOOP
}

/* ---- flat range adapters for the thread pool ------------------------------ */

typedef struct {
  int op;
  int f64;
  const void *x, *dy;
  void *out;
  double lo, hi;
} mk_flat_ctx;

static void unary_chunk(void *p, int64_t b, int64_t e, int64_t task) {
  const mk_flat_ctx *c = (const mk_flat_ctx *)p;
  if (c->f64)
    unary_range_f64(c->op, (const double *)c->x + b, (double *)c->out + b, e - b);
  else
    unary_range_f32(c->op, (const float *)c->x + b, (float *)c->out + b, e - b);
}

static void unary_backward_chunk(void *p, int64_t b, int64_t e, int64_t task) {
  const mk_flat_ctx *c = (const mk_flat_ctx *)p;
  if (c->f64)
    unary_backward_range_f64(c->op, (const double *)c->x + b, (const double *)c->dy + b, (double *)c->out + b, e - b);
  else
    unary_backward_range_f32(c->op, (const float *)c->x + b, (const float *)c->dy + b, (float *)c->out + b, e - b);
}

static void clamp_chunk(void *p, int64_t b, int64_t e, int64_t task) {
  const mk_flat_ctx *c = (const mk_flat_ctx *)p;
  if (c->f64)
    clamp_range_f64((const double *)c->x + b, (double *)c->out + b, e - b, c->lo, c->hi);
  else /* float bounds: rounding is monotonic, so this equals clamping in double */
    clamp_range_f32((const float *)c->x + b, (float *)c->out + b, e - b, (float)c->lo, (float)c->hi);
}

/* Transcendental ops cost ~20x a load/store: parallelise them sooner. */
static int64_t unary_cost(int op) {
  switch ((mk_unary_op)op) {
    case U_NEG:
    case U_ABS:
    case U_RELU:
    case U_SIGN:
    case U_SQUARE:
    case U_SQRT:
    case U_RECIPROCAL:
    case U_RSQRT:
      return 1;
    default:
      return 16;
  }
}

/* ---- N-API ------------------------------------------------------------------ */

static napi_value js_unary(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int op;
  mk_typed x, out;
  if (!mk_napi_args(env, info, 3, argv, "unary") ||
      !mk_arg_enum(env, argv[0], "unary: op", k_unary_names, U_COUNT, &op) ||
      !mk_napi_float_array(env, argv[1], "unary: x", &x) || !mk_napi_float_array(env, argv[2], "unary: out", &out) ||
      !mk_arg_same_type(env, &out, &x, "unary: out", "x") || !mk_arg_len(env, &out, (int64_t)x.length, "unary: out"))
    return NULL;
  mk_flat_ctx c = {op, x.type == napi_float64_array, x.data, NULL, out.data, 0, 0};
  mk_par_range((int64_t)x.length, unary_cost(op), unary_chunk, &c);
  return mk_napi_undefined(env);
}

static napi_value js_unary_backward(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int op;
  mk_typed x, dy, out;
  if (!mk_napi_args(env, info, 4, argv, "unaryBackward") ||
      !mk_arg_enum(env, argv[0], "unaryBackward: op", k_unary_names, U_COUNT, &op) ||
      !mk_napi_float_array(env, argv[1], "unaryBackward: x", &x) ||
      !mk_napi_float_array(env, argv[2], "unaryBackward: dy", &dy) ||
      !mk_napi_float_array(env, argv[3], "unaryBackward: out", &out) ||
      !mk_arg_same_type(env, &dy, &x, "unaryBackward: dy", "x") ||
      !mk_arg_same_type(env, &out, &x, "unaryBackward: out", "x") ||
      !mk_arg_len(env, &dy, (int64_t)x.length, "unaryBackward: dy") ||
      !mk_arg_len(env, &out, (int64_t)x.length, "unaryBackward: out"))
    return NULL;
  mk_flat_ctx c = {op, x.type == napi_float64_array, x.data, dy.data, out.data, 0, 0};
  mk_par_range((int64_t)x.length, unary_cost(op), unary_backward_chunk, &c);
  return mk_napi_undefined(env);
}

static napi_value js_clamp(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  mk_typed x, out;
  double lo, hi;
  if (!mk_napi_args(env, info, 4, argv, "clamp") || !mk_napi_float_array(env, argv[0], "clamp: x", &x) ||
      !mk_napi_f64(env, argv[1], "clamp: lo", &lo) || !mk_napi_f64(env, argv[2], "clamp: hi", &hi) ||
      !mk_napi_float_array(env, argv[3], "clamp: out", &out) || !mk_arg_same_type(env, &out, &x, "clamp: out", "x") ||
      !mk_arg_len(env, &out, (int64_t)x.length, "clamp: out"))
    return NULL;
  mk_flat_ctx c = {0, x.type == napi_float64_array, x.data, NULL, out.data, lo, hi};
  mk_par_range((int64_t)x.length, 1, clamp_chunk, &c);
  return mk_napi_undefined(env);
}

static napi_value js_cast(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  mk_typed x, out;
  if (!mk_napi_args(env, info, 2, argv, "cast") || !mk_arg_storage(env, argv[0], "cast: x", &x) ||
      !mk_arg_storage(env, argv[1], "cast: out", &out) || !mk_arg_len(env, &out, (int64_t)x.length, "cast: out"))
    return NULL;
  mk_cast_ctx c = {x.data, out.data, x.type, out.type};
  mk_par_range((int64_t)x.length, 1, cast_chunk, &c);
  return mk_napi_undefined(env);
}

/* Reads shape + per-operand strides, checks every operand's reach. */
static int read_layout(napi_env env, napi_value *strides_v, const mk_typed *ops, int nops, napi_value shape_v,
                       const char *fn, const char *const *names, mk_nd_layout *lay, int64_t *total) {
  char what[64];
  int rank, r2;
  snprintf(what, sizeof what, "%s: outShape", fn);
  if (!mk_arg_dims(env, shape_v, what, 0, (int64_t)1 << 48, lay->shape, &rank)) return 0;
  lay->rank = rank;
  lay->nops = nops;
  *total = mk_prod(lay->shape, rank);
  if (*total < 0) {
    mk_throw_range(env, "%s: outShape is too large", fn);
    return 0;
  }
  for (int k = 0; k < nops; k++) {
    snprintf(what, sizeof what, "%s: %sStrides", fn, names[k]);
    if (!mk_arg_dims(env, strides_v[k], what, 0, (int64_t)1 << 48, lay->st[k], &r2)) return 0;
    if (r2 != rank) {
      mk_throw_range(env, "%s has %d entries, outShape has %d", what, r2, rank);
      return 0;
    }
    snprintf(what, sizeof what, "%s: %s", fn, names[k]);
    if (!mk_arg_len(env, &ops[k], mk_nd_span(lay->shape, lay->st[k], rank), what)) return 0;
  }
  return 1;
}

static napi_value js_binary(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  int op;
  mk_typed ops[2], out;
  static const char *const names[2] = {"a", "b"};
  if (!mk_napi_args(env, info, 7, argv, "binary") ||
      !mk_arg_enum(env, argv[0], "binary: op", k_binary_names, B_COUNT, &op) ||
      !mk_arg_storage(env, argv[1], "binary: a", &ops[0]) || !mk_arg_storage(env, argv[3], "binary: b", &ops[1]) ||
      !mk_arg_storage(env, argv[6], "binary: out", &out) ||
      !mk_arg_same_type(env, &ops[1], &ops[0], "binary: b", "a") ||
      !mk_arg_same_type(env, &out, &ops[0], "binary: out", "a"))
    return NULL;
  if (ops[0].type == napi_int32_array && !i32_binary_supported(op))
    return mk_throw_type(env, "binary: op \"%s\" is not supported on Int32Array", k_binary_names[op]);
  napi_value strides_v[2] = {argv[2], argv[4]};
  mk_bin_ctx c;
  int64_t total;
  if (!read_layout(env, strides_v, ops, 2, argv[5], "binary", names, &c.lay, &total) ||
      !mk_arg_len(env, &out, total, "binary: out"))
    return NULL;
  if (total == 0) return mk_napi_undefined(env);
  mk_nd_collapse(&c.lay);
  c.op = op;
  c.a = ops[0].data;
  c.b = ops[1].data;
  c.out = out.data;
  mk_range_fn fn = ops[0].type == napi_float64_array   ? binary_chunk_f64
                   : ops[0].type == napi_float32_array ? binary_chunk_f32
                                                       : binary_chunk_i32;
  mk_par_range(total, op == B_POW ? 16 : 1, fn, &c);
  return mk_napi_undefined(env);
}

static napi_value js_where(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  mk_typed ops[3], out;
  static const char *const names[3] = {"cond", "a", "b"};
  if (!mk_napi_args(env, info, 8, argv, "where") || !mk_arg_storage(env, argv[0], "where: cond", &ops[0]) ||
      !mk_arg_storage(env, argv[2], "where: a", &ops[1]) || !mk_arg_storage(env, argv[4], "where: b", &ops[2]) ||
      !mk_arg_storage(env, argv[7], "where: out", &out) || !mk_arg_same_type(env, &ops[2], &ops[1], "where: b", "a") ||
      !mk_arg_same_type(env, &out, &ops[1], "where: out", "a"))
    return NULL;
  napi_value strides_v[3] = {argv[1], argv[3], argv[5]};
  mk_where_ctx c;
  int64_t total;
  if (!read_layout(env, strides_v, ops, 3, argv[6], "where", names, &c.lay, &total) ||
      !mk_arg_len(env, &out, total, "where: out"))
    return NULL;
  if (total == 0) return mk_napi_undefined(env);
  mk_nd_collapse(&c.lay);
  c.cond = ops[0].data;
  c.a = ops[1].data;
  c.b = ops[2].data;
  c.out = out.data;
  c.ctype = ops[0].type;
  c.width = mk_elem_size(&ops[1]);
  mk_par_range(total, 2, where_chunk, &c);
  return mk_napi_undefined(env);
}

napi_status mk_register_elementwise(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "unary", js_unary)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "unaryBackward", js_unary_backward)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "binary", js_binary)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "where", js_where)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "clamp", js_clamp)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "cast", js_cast);
}
