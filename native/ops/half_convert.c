/*
 * bf16 / f16 <-> f32 conversions for the half-precision layer (src/backend/half-precision.ts),
 * bit for bit as src/io/half.ts's engine casts (PyTorch's CPU casts): widening is exact (an
 * f16 signalling NaN is quieted), narrowing rounds to nearest even, NaN -> 0xffff (bf16) or
 * sign|0x7e00 (f16). Chunks run on the thread pool; bf16 through bf16_pack.h's vector loops, f16
 * in scalar C.
 *
 * JS exports: halfToF32(src: Uint16Array, out: Float32Array, f16: boolean): void
 *             f32ToHalf(src: Float32Array, out: Uint16Array, f16: boolean): void
 *             f32ToBf16ScaledRows(src: Float32Array, rowScale: Float32Array, out: Uint16Array): void
 *               (src's rows, src.length / rowScale.length elements each, times their scale in f32,
 *               then rounded: the bf16 experts node's h times each row's combine weight)
 */
#include <stdint.h>
#include <string.h>

#include "addon.h"
#include "bf16_pack.h"
#include "threadpool.h"

#define CHUNK ((int64_t)1 << 16)

static inline uint32_t f16_to_f32_bits(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) return sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0); /* inf; NaN quieted */
  if (exp != 0) return sign | ((exp + 112) << 23) | (mant << 13);
  if (mant == 0) return sign;
  uint32_t e = 113;
  while (!(mant & 0x400u)) {
    mant <<= 1;
    e--;
  }
  return sign | (e << 23) | ((mant & 0x3ffu) << 13);
}

static inline uint16_t f32_bits_to_f16(uint32_t b) {
  uint32_t sign = (b >> 16) & 0x8000u, exp = (b >> 23) & 0xffu, mant = b & 0x7fffffu;
  if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00u);
  int32_t e = (int32_t)exp - 112;
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000u;
    uint32_t shift = (uint32_t)(14 - e), h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* may carry up to inf */
  return (uint16_t)(sign | h);
}

typedef struct {
  const void *src;
  void *out;
  int64_t n;
  int f16;
} conv_ctx;

static void widen_task(void *p, int64_t t, int tid) {
  const conv_ctx *c = (const conv_ctx *)p;
  const uint16_t *s = (const uint16_t *)c->src;
  uint32_t *o = (uint32_t *)c->out;
  int64_t i0 = t * CHUNK, i1 = i0 + CHUNK < c->n ? i0 + CHUNK : c->n;
  if (c->f16)
    for (int64_t i = i0; i < i1; i++) o[i] = f16_to_f32_bits(s[i]);
  else
    mk_bf16_widen(s + i0, i1 - i0, (float *)o + i0);
}

static void narrow_task(void *p, int64_t t, int tid) {
  const conv_ctx *c = (const conv_ctx *)p;
  const uint32_t *s = (const uint32_t *)c->src;
  uint16_t *o = (uint16_t *)c->out;
  int64_t i0 = t * CHUNK, i1 = i0 + CHUNK < c->n ? i0 + CHUNK : c->n;
  if (c->f16)
    for (int64_t i = i0; i < i1; i++) o[i] = f32_bits_to_f16(s[i]);
  else
    mk_bf16_narrow((const float *)s + i0, i1 - i0, o + i0);
}

static napi_value convert(napi_env env, napi_callback_info info, int widen) {
  const char *fn = widen ? "halfToF32" : "f32ToHalf";
  napi_value argv[3];
  mk_typed src, out;
  int f16;
  if (!mk_napi_args(env, info, 3, argv, fn) || !mk_napi_typed(env, argv[0], "src", &src) ||
      !mk_napi_typed(env, argv[1], "out", &out) || !mk_napi_bool(env, argv[2], "f16", &f16))
    return NULL;
  napi_typedarray_type want_src = widen ? napi_uint16_array : napi_float32_array;
  napi_typedarray_type want_out = widen ? napi_float32_array : napi_uint16_array;
  if (src.type != want_src || out.type != want_out)
    return mk_throw_type(env, "%s: src must be a %s and out a %s", fn, widen ? "Uint16Array" : "Float32Array",
                         widen ? "Float32Array" : "Uint16Array");
  if (out.length < src.length)
    return mk_throw_range(env, "%s: out has %zu elements, src %zu", fn, out.length, src.length);
  conv_ctx c = {.src = src.data, .out = out.data, .n = (int64_t)src.length, .f16 = f16};
  mk_parallel_for((c.n + CHUNK - 1) / CHUNK, widen ? widen_task : narrow_task, &c);
  return mk_napi_undefined(env);
}

typedef struct {
  const float *src, *scale;
  uint16_t *out;
  int64_t rows, len, rows_per_task;
} scaled_ctx;

static void scaled_rows_task(void *p, int64_t t, int tid) {
  const scaled_ctx *c = (const scaled_ctx *)p;
  const int64_t r0 = t * c->rows_per_task, r1 = r0 + c->rows_per_task < c->rows ? r0 + c->rows_per_task : c->rows;
  for (int64_t r = r0; r < r1; r++)
    mk_bf16_narrow_scaled(c->src + r * c->len, 0, c->scale[r], c->len, c->out + r * c->len);
}

static napi_value f32_to_bf16_scaled_rows(napi_env env, napi_callback_info info) {
  const char *fn = "f32ToBf16ScaledRows";
  napi_value argv[3];
  mk_typed src, scale, out;
  if (!mk_napi_args(env, info, 3, argv, fn) || !mk_napi_typed(env, argv[0], "src", &src) ||
      !mk_napi_typed(env, argv[1], "rowScale", &scale) || !mk_napi_typed(env, argv[2], "out", &out))
    return NULL;
  if (src.type != napi_float32_array || scale.type != napi_float32_array || out.type != napi_uint16_array)
    return mk_throw_type(env, "%s: src and rowScale must be Float32Arrays and out a Uint16Array", fn);
  if (scale.length == 0 ? src.length != 0 : src.length % scale.length != 0)
    return mk_throw_range(env, "%s: src has %zu elements, not whole rows of %zu row scales", fn, src.length,
                          scale.length);
  if (out.length < src.length)
    return mk_throw_range(env, "%s: out has %zu elements, src %zu", fn, out.length, src.length);
  if (src.length == 0) return mk_napi_undefined(env);
  const int64_t len = (int64_t)(src.length / scale.length), per = len >= CHUNK ? 1 : CHUNK / len;
  scaled_ctx c = {.src = (const float *)src.data,
                  .scale = (const float *)scale.data,
                  .out = (uint16_t *)out.data,
                  .rows = (int64_t)scale.length,
                  .len = len,
                  .rows_per_task = per};
  mk_parallel_for((c.rows + per - 1) / per, scaled_rows_task, &c);
  return mk_napi_undefined(env);
}

static napi_value half_to_f32(napi_env env, napi_callback_info info) { return convert(env, info, 1); }
static napi_value f32_to_half(napi_env env, napi_callback_info info) { return convert(env, info, 0); }

/* The half-precision kernels' exports: these conversions and the bf16 GEMM (gemm_bf16.c). */
napi_status mk_register_half(napi_env env, napi_value exports) {
  napi_status s = mk_napi_export_fn(env, exports, "halfToF32", half_to_f32);
  if (s == napi_ok) s = mk_napi_export_fn(env, exports, "f32ToHalf", f32_to_half);
  if (s == napi_ok) s = mk_napi_export_fn(env, exports, "f32ToBf16ScaledRows", f32_to_bf16_scaled_rows);
  return s == napi_ok ? mk_register_gemm_bf16(env, exports) : s;
}
