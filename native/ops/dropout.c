/*
 * Dropout's mask from the engine's seeded generator; JS export:
 *   dropoutMask(mask, state, threshold, keep)
 * mask: Float32Array or Float64Array, filled with mask[i] = r_i >= threshold ? keep : 0, where
 * r_0, r_1, ... are the next uint32 draws of xoshiro128** from `state` (a Uint32Array of 4, the
 * generator's s[0..3], advanced in place): the draws src/tensor/random.ts's Generator.nextU32
 * makes, in the same order, so the mask is the JavaScript fill's bit for bit. One thread: the
 * stream is sequential.
 */
#include "addon.h"

static inline uint32_t rotl32(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

#define DROPOUT_FILL(T)                           \
  do {                                            \
    T *restrict m = (T *)mask.data;               \
    const T k = (T)keep;                          \
    for (size_t i = 0; i < mask.length; i++) {    \
      const uint32_t r = rotl32(s1 * 5u, 7) * 9u; \
      const uint32_t t = s1 << 9;                 \
      s2 ^= s0;                                   \
      s3 ^= s1;                                   \
      s1 ^= s2;                                   \
      s0 ^= s3;                                   \
      s2 ^= t;                                    \
      s3 = rotl32(s3, 11);                        \
      m[i] = (double)r >= threshold ? k : (T)0;   \
    }                                             \
  } while (0)

static napi_value js_dropout_mask(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  mk_typed mask, state;
  double threshold, keep;
  if (!mk_napi_args(env, info, 4, argv, "dropoutMask") ||
      !mk_napi_float_array(env, argv[0], "dropoutMask: mask", &mask) ||
      !mk_napi_typed(env, argv[1], "dropoutMask: state", &state) ||
      !mk_napi_f64(env, argv[2], "dropoutMask: threshold", &threshold) ||
      !mk_napi_f64(env, argv[3], "dropoutMask: keep", &keep))
    return NULL;
  if (state.type != napi_uint32_array || state.length != 4)
    return mk_throw_type(env, "dropoutMask: state must be a Uint32Array of 4 (got %s of %zu)",
                         mk_napi_typed_name(state.type), state.length);
  uint32_t *st = (uint32_t *)state.data;
  uint32_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3];
  if (mask.type == napi_float64_array)
    DROPOUT_FILL(double);
  else
    DROPOUT_FILL(float);
  st[0] = s0;
  st[1] = s1;
  st[2] = s2;
  st[3] = s3;
  return mk_napi_undefined(env);
}

napi_status mk_register_dropout(napi_env env, napi_value exports) {
  return mk_napi_export_fn(env, exports, "dropoutMask", js_dropout_mask);
}
