/*
 * Fused causal / full scaled-dot-product attention; JS exports:
 *   attention(q, k, v, bh, tq, tk, d, scale, causal, out, lse)
 *   attentionBackward(q, k, v, out, lse, dout, bh, tq, tk, d, scale, causal,
 *                     dq, dk, dv)
 * All arrays Float32Array or all Float64Array. Semantics follow
 * src/backend/reference/attention.ts; see attention_impl.inc for the method.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "addon.h"
#include "kernel_util.h"

#define BQ 32 /* queries per forward item */
#define BK 64 /* keys per block */

typedef struct {
  const void *q, *k, *v, *out_c, *lse_c, *dout;
  void *out, *lse, *dq, *dk, *dv;
  int64_t bh, tq, tk, d, qblocks;
  double scale;
  int causal;
} mk_attn_ctx;

#define T float
#define SFX f32
#define MK_EXP expf
#include "attention_impl.inc"
#undef T
#undef SFX
#undef MK_EXP
#define T double
#define SFX f64
#define MK_EXP exp
#include "attention_impl.inc"
#undef T
#undef SFX
#undef MK_EXP

static int arg_like(napi_env env, napi_value v, const char *what, const mk_typed *q, int64_t need, mk_typed *out) {
  return mk_napi_float_array(env, v, what, out) && mk_arg_same_type(env, out, q, what, "q") &&
         mk_arg_len(env, out, need, what);
}

static int read_dims(napi_env env, napi_value *argv, const char *fn, int64_t *bh, int64_t *tq, int64_t *tk, int64_t *d,
                     double *scale, int *causal) {
  char w[6][48];
  const char *names[6] = {"bh", "tq", "tk", "d", "scale", "causal"};
  for (int i = 0; i < 6; i++) snprintf(w[i], sizeof w[i], "%s: %s", fn, names[i]);
  if (!mk_arg_dim(env, argv[0], w[0], bh) || !mk_arg_dim(env, argv[1], w[1], tq) ||
      !mk_arg_dim(env, argv[2], w[2], tk) || !mk_arg_dim(env, argv[3], w[3], d) ||
      !mk_napi_f64(env, argv[4], w[4], scale) || !mk_napi_bool(env, argv[5], w[5], causal))
    return 0;
  if (mk_mul3(*bh, *tq, *d) < 0 || mk_mul3(*bh, *tk, *d) < 0 || *d > (1 << 20) || *tq > ((int64_t)1 << 31)) {
    mk_throw_range(env, "%s: sizes are too large", fn);
    return 0;
  }
  return 1;
}

static int probe_alloc(napi_env env, size_t bytes, const char *fn) {
  void *p = malloc(bytes);
  if (!p) {
    mk_throw_error(env, "%s: out of memory", fn);
    return 0;
  }
  free(p);
  return 1;
}

static napi_value js_attention(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  mk_typed q, k, v, out, lse;
  int64_t bh, tq, tk, d;
  double scale;
  int causal;
  if (!mk_napi_args(env, info, 11, argv, "attention") || !mk_napi_float_array(env, argv[0], "attention: q", &q) ||
      !read_dims(env, argv + 3, "attention", &bh, &tq, &tk, &d, &scale, &causal) ||
      !mk_arg_len(env, &q, bh * tq * d, "attention: q") ||
      !arg_like(env, argv[1], "attention: k", &q, bh * tk * d, &k) ||
      !arg_like(env, argv[2], "attention: v", &q, bh * tk * d, &v) ||
      !arg_like(env, argv[9], "attention: out", &q, bh * tq * d, &out) ||
      !arg_like(env, argv[10], "attention: lse", &q, bh * tq, &lse))
    return NULL;
  if (bh == 0 || tq == 0) return mk_napi_undefined(env);
  const size_t esz = mk_elem_size(&q);
  if (!probe_alloc(env, esz * (size_t)(BK * d + BK + BQ * d + 2 * BQ), "attention")) return NULL;
  mk_attn_ctx c = {.q = q.data,
                   .k = k.data,
                   .v = v.data,
                   .out = out.data,
                   .lse = lse.data,
                   .bh = bh,
                   .tq = tq,
                   .tk = tk,
                   .d = d,
                   .scale = scale,
                   .causal = causal};
  c.qblocks = (tq + BQ - 1) / BQ;
  const int64_t per_item = (tq < BQ ? tq : BQ) * (tk > 0 ? tk : 1) * (d > 0 ? d : 1) * 2;
  mk_par_range(bh * c.qblocks, per_item, esz == 8 ? attn_fwd_chunk_f64 : attn_fwd_chunk_f32, &c);
  return mk_napi_undefined(env);
}

static napi_value js_attention_backward(napi_env env, napi_callback_info info) {
  napi_value argv[15];
  mk_typed q, k, v, out, lse, dout, dq, dk, dv;
  int64_t bh, tq, tk, d;
  double scale;
  int causal;
  if (!mk_napi_args(env, info, 15, argv, "attentionBackward") ||
      !mk_napi_float_array(env, argv[0], "attentionBackward: q", &q) ||
      !read_dims(env, argv + 6, "attentionBackward", &bh, &tq, &tk, &d, &scale, &causal) ||
      !mk_arg_len(env, &q, bh * tq * d, "attentionBackward: q") ||
      !arg_like(env, argv[1], "attentionBackward: k", &q, bh * tk * d, &k) ||
      !arg_like(env, argv[2], "attentionBackward: v", &q, bh * tk * d, &v) ||
      !arg_like(env, argv[3], "attentionBackward: out", &q, bh * tq * d, &out) ||
      !arg_like(env, argv[4], "attentionBackward: lse", &q, bh * tq, &lse) ||
      !arg_like(env, argv[5], "attentionBackward: dout", &q, bh * tq * d, &dout) ||
      !arg_like(env, argv[12], "attentionBackward: dq", &q, bh * tq * d, &dq) ||
      !arg_like(env, argv[13], "attentionBackward: dk", &q, bh * tk * d, &dk) ||
      !arg_like(env, argv[14], "attentionBackward: dv", &q, bh * tk * d, &dv))
    return NULL;
  if (bh == 0) return mk_napi_undefined(env);
  const size_t esz = mk_elem_size(&q);
  if (!probe_alloc(env, esz * (size_t)(2 * BK * d + 3 * BK + tq), "attentionBackward")) return NULL;
  mk_attn_ctx c = {.q = q.data,
                   .k = k.data,
                   .v = v.data,
                   .out_c = out.data,
                   .lse_c = lse.data,
                   .dout = dout.data,
                   .dq = dq.data,
                   .dk = dk.data,
                   .dv = dv.data,
                   .bh = bh,
                   .tq = tq,
                   .tk = tk,
                   .d = d,
                   .scale = scale,
                   .causal = causal};
  const int64_t per_item = (tq > 0 ? tq : 1) * (tk > 0 ? tk : 1) * (d > 0 ? d : 1) * 5;
  mk_par_range(bh, per_item, esz == 8 ? attn_bwd_chunk_f64 : attn_bwd_chunk_f32, &c);
  return mk_napi_undefined(env);
}

napi_status mk_register_attention(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "attention", js_attention)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "attentionBackward", js_attention_backward);
}
