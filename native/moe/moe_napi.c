/*
 * The MoE kernels' JS exports (src/backend/native/ drives them). Each takes one options object,
 * whose fields are named below; the exports check types and spans, then call moe.h.
 *
 *   moeGemmRows({ a, aIdx, scale, lda, b, b2, kSplit, bTrans, bExpertStride, ldb, seg, c, ldc, n, k, accumulate })
 *     For every expert e and row r in [seg[e], seg[e+1]):
 *       c[r*ldc + j] (+)= sum_p scale[r] * a[row(r)*lda + p] * op(B_e)[p, j]   (j < n, p < k)
 *     row(r) = aIdx ? aIdx[r] : r; scale may be null (1); B_e = b + e*bExpertStride, op(B_e)
 *     is B_e [k, n] (ldb) or, with bTrans, B_e stored [n, k] (ldb). b2 (null: none) stacks a
 *     second matrix of b's layout along K: op(B_e)'s rows p >= kSplit are op(B2_e)'s rows
 *     p - kSplit (e.g. dX = [dG dU]·[Wg; Wu] in one pass instead of a second, accumulating one).
 *   moeGemmWgrad({ a, aIdx, scale, lda, b, bIdx, ldb, seg, c, m, n, accumulate })
 *     For every expert e (C_e = c + e*m*n, [m, n] row-major):
 *       C_e[i, j] (+)= sum_{r in seg e} scale[r] * a[arow(r)*lda + i] * b[brow(r)*ldb + j]
 *     i.e. the weight gradient X_eᵀ·G_e with the rows gathered on the fly; written directly
 *     (an empty expert gets zeros unless accumulating).
 *   moeGemmSwiglu({ a, aIdx, lda, bGate, bUp, bTrans, bExpertStride, ldb, seg, gu, ldgu, upOff, h, i, k })
 *     The gated first GEMM of a SwiGLU expert: for rows r of expert e (as moeGemmRows, no scale)
 *       gu[r*ldgu + j] = a_r · op(Gate_e)[:, j],  gu[r*ldgu + upOff + j] = a_r · op(Up_e)[:, j],
 *       h[r*i + j] = silu(gate) * up                                         (j < i, p < k)
 *     with Gate_e / Up_e laid out as moeGemmRows's B_e. One pass: A is packed once for both
 *     products and the gate is applied to each output tile while it is in L1. gu may be null
 *     (then ldgu and upOff are ignored): only h is written, each task's gate / up tiles kept
 *     in a buffer of its thread (inference: no [S, 2i] array).
 *   moeGemmGelu({ a, aIdx, lda, b, bTrans, bExpertStride, ldb, seg, pre, ldpre, h, i, k })
 *     The first GEMM of a GELU expert: pre[r*ldpre + j] = a_r · op(B_e)[:, j], h[r*i + j] =
 *     gelu(pre) (exact, erf), GELU applied to each output tile while it is in L1; pre may be null.
 *   moeActForward({ kind, gu, ld, gateOff, upOff, colStride, s, i, h, limit, alpha })
 *     kind 'swiglu': h[r, q] = silu(g) * u, g = gu[r*ld + gateOff + q*colStride], u likewise
 *     with upOff; 'gelu': h = gelu(g) (upOff unused); 'gpt-oss': g' = min(g, limit), u' =
 *     clamp(u, ±limit), h = (u' + 1)·g'·σ(alpha·g') (limit, alpha only for 'gpt-oss').
 *   moeActBackward({ kind, gu, ld, gateOff, upOff, colStride, s, i, dy, w, dgu, hout, dw, limit, alpha })
 *     with dh = w[r] * dy[r, q] (w may be null): dgu gets the pre-activations' gradients in gu's
 *     layout (dgu may be gu), hout (may be dy, or null) the recomputed h, dw (or null) [s] =
 *     <dy_r, h_r>.
 *   moeExpertBias({ c, ld, off, colStride, n, seg, bias, biasStride })
 *     c[r*ld + off + q*colStride] += bias[e*biasStride + q] for rows r of expert e, q < n.
 *   moeCombine({ y, ldy, row, w, t, k, h, out })
 *     out[t, :] = sum_k w[t*k + k'] * y[row[t*k + k'] * ldy, :]; row < 0 = dropped slot,
 *     w may be null (1). Threads over tokens, so no two tasks write one row.
 *   moeBatchBegin(), moeBatchRun()
 *     Between the two, the grouped GEMMs only queue their work (their arguments must stay alive
 *     and unchanged until moeBatchRun); moeBatchRun runs all of it in one pass over the thread
 *     pool. The queued GEMMs must not depend on each other's outputs.
 *   moeFuseBegin(), moeFuseRun()
 *     Between the two, the grouped GEMMs, moeActForward / moeActBackward and moeExpertBias
 *     queue as stages of a row fusion (moe_fuse.h), which moeFuseRun runs block of rows by block
 *     of rows: a stage may read what an earlier one wrote at the same rows only. All GEMM stages
 *     share one seg; moeCombine (not row-local) throws inside a fusion. Arguments must stay alive
 *     and unchanged until moeFuseRun.
 *   moeFuseLocal({ a, rowElems })
 *     Inside a fusion: a (rows of rowElems elements) is block-local, an intermediate no stage
 *     reads outside the block of rows that wrote it. Each thread keeps one block's rows of it in
 *     a buffer of its own and a is left unwritten; moeFuseRun throws if a stage reads it other
 *     than by sorted row (through an index, as a weight) or with another row length.
 * Float arguments are all Float32Array or all Float64Array; indices Int32Array. In moeGemmRows and
 * moeGemmWgrad a, b and b2 may instead be Uint16Arrays of bf16 bit patterns beside Float32Array
 * floats (f32 accumulation, moe_bf16.h); so may moeGemmWgrad's c when not accumulating (each f32
 * sum rounded once to nearest even).
 */
#include <stdio.h>

#include "addon.h"
#include "moe.h"
#include "moe_fuse.h"

#define MAX_DIM ((int64_t)1 << 40)

/* A float array of like's type (like NULL: any float type); nullable: null gives data NULL. */
static int float_opt(mk_opts *o, const char *name, const mk_typed *like, int nullable, mk_typed *out) {
  if (!mk_opt_typed(o, name, napi_float32_array, 1, nullable, out)) return 0;
  if (nullable && !out->data) return 1;
  return !like || mk_arg_same_type(o->env, out, like, o->what, "the other float arguments");
}

/* A grouped GEMM's a / b / b2: a float array of like's type, or, in an f32 call (like NULL or
 * f32), a Uint16Array of bf16 bit patterns (*half set). */
static int operand_opt(mk_opts *o, const char *name, const mk_typed *like, int nullable, mk_typed *out, int *half) {
  *half = 0;
  napi_value v = mk_opt(o, name);
  if (!v) return 0;
  napi_valuetype vt = napi_undefined;
  napi_typeof(o->env, v, &vt);
  if (!nullable || (vt != napi_null && vt != napi_undefined)) {
    mk_typed t;
    if (!mk_napi_typed(o->env, v, o->what, &t)) return 0;
    if (t.type == napi_uint16_array) {
      if (like && like->type != napi_float32_array) {
        mk_throw_type(o->env, "%s: bf16 (Uint16Array) operands need Float32Array floats, got %s", o->what,
                      mk_napi_typed_name(like->type));
        return 0;
      }
      *out = t;
      *half = 1;
      return 1;
    }
  }
  return float_opt(o, name, like, nullable, out);
}

/* The float type of a GEMM's other arguments: a's, or f32 when a is bf16. */
static mk_typed float_like(const mk_typed *a, int a_half) {
  mk_typed t = *a;
  if (a_half) t.type = napi_float32_array;
  return t;
}

static int i32_opt(mk_opts *o, const char *name, int nullable, mk_typed *out) {
  return mk_opt_typed(o, name, napi_int32_array, 0, nullable, out);
}

static int dim_opt(mk_opts *o, const char *name, int64_t *out) { return mk_opt_i64(o, name, 0, MAX_DIM, out); }

/* at least n elements (n <= 0: anything); what names the field */
static int need(mk_opts *o, const mk_typed *t, int64_t n, const char *name) {
  if (n <= 0) return 1;
  snprintf(o->what, sizeof o->what, "%s: %s", o->fn, name);
  return mk_arg_len(o->env, t, n, o->what);
}

/* seg: E+1 non-decreasing offsets from 0; returns E (or -1 after throwing). */
static int64_t check_seg(mk_opts *o, const mk_typed *seg) {
  const int32_t *s = (const int32_t *)seg->data;
  if (seg->length < 1 || s[0] != 0) {
    mk_throw_range(o->env, "%s: seg must start at 0 and hold E+1 offsets", o->fn);
    return -1;
  }
  for (size_t e = 1; e < seg->length; e++)
    if (s[e] < s[e - 1]) {
      mk_throw_range(o->env, "%s: seg must be non-decreasing (seg[%zu] = %d < %d)", o->fn, e, s[e], s[e - 1]);
      return -1;
    }
  return (int64_t)seg->length - 1;
}

/* Max of idx[0..n) (checked >= 0), or n-1 without idx; -2 after throwing. */
static int64_t max_row(mk_opts *o, const mk_typed *idx, int64_t n, const char *name) {
  if (!idx->data) return n - 1;
  if (!need(o, idx, n, name)) return -2;
  const int32_t *p = (const int32_t *)idx->data;
  int64_t m = -1;
  for (int64_t i = 0; i < n; i++) {
    if (p[i] < 0) {
      mk_throw_range(o->env, "%s: %s[%lld] = %d is negative", o->fn, name, (long long)i, p[i]);
      return -2;
    }
    if (p[i] > m) m = p[i];
  }
  return m;
}

/* elements of an expert matrix's layout holding kk rows of op(B_e) [kk, n] */
static int64_t b_span(int64_t E, int64_t bes, int btrans, int64_t ldb, int64_t n, int64_t kk) {
  return E > 0 && kk ? (E - 1) * bes + (btrans ? (n - 1) * ldb + kk : (kk - 1) * ldb + n) : 0;
}

static napi_value done(napi_env env, const char *err) {
  return err ? mk_throw_error(env, "%s", err) : mk_napi_undefined(env);
}

static napi_value moe_gemm_rows(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed a, aidx, scale, b, b2, seg, c;
  int64_t lda, ks = 0, bes, ldb, ldc, n, k;
  int btrans, acc, ah, bh, b2h;
  mk_typed fl;
  if (!mk_opts_arg(env, info, "moeGemmRows", &o) || !operand_opt(&o, "a", NULL, 0, &a, &ah) ||
      ((fl = float_like(&a, ah)), 0) || !i32_opt(&o, "aIdx", 1, &aidx) || !float_opt(&o, "scale", &fl, 1, &scale) ||
      !dim_opt(&o, "lda", &lda) || !operand_opt(&o, "b", &fl, 0, &b, &bh) ||
      !operand_opt(&o, "b2", &fl, 1, &b2, &b2h) || (b2.data && !dim_opt(&o, "kSplit", &ks)) ||
      !mk_opt_bool(&o, "bTrans", &btrans) || !dim_opt(&o, "bExpertStride", &bes) || !dim_opt(&o, "ldb", &ldb) ||
      !i32_opt(&o, "seg", 0, &seg) || !float_opt(&o, "c", &fl, 0, &c) || !dim_opt(&o, "ldc", &ldc) ||
      !dim_opt(&o, "n", &n) || !dim_opt(&o, "k", &k) || !mk_opt_bool(&o, "accumulate", &acc))
    return NULL;
  if (b2.data && b2h != bh) return mk_throw_type(env, "moeGemmRows: b2 must have b's type (bf16 or float)");
  const int stacked = b2.data != NULL;
  int64_t E = check_seg(&o, &seg);
  if (E < 0) return NULL;
  const int64_t S = ((const int32_t *)seg.data)[E];
  if (stacked && (ks < 1 || ks >= k))
    return mk_throw_range(env, "moeGemmRows: kSplit is %lld, must be in [1, k) = [1, %lld)", (long long)ks,
                          (long long)k);
  if (S == 0 || n == 0) return mk_napi_undefined(env);
  const int64_t kb = stacked ? (ks > k - ks ? ks : k - ks) : k; /* op(B) rows of the longer part */
  if (ldc < n || lda < k || ldb < (btrans ? kb : n))
    return mk_throw_range(env, "moeGemmRows: leading dimensions too small");
  int64_t mr = max_row(&o, &aidx, S, "aIdx");
  if (mr == -2) return NULL;
  if (!need(&o, &a, k ? mr * lda + k : 0, "a") || (scale.data && !need(&o, &scale, S, "scale")) ||
      !need(&o, &b, b_span(E, bes, btrans, ldb, n, stacked ? ks : k), "b") ||
      (stacked && !need(&o, &b2, b_span(E, bes, btrans, ldb, n, k - ks), "b2")) ||
      !need(&o, &c, (S - 1) * ldc + n, "c"))
    return NULL;
  const mk_moe_gemm g = {.f64 = fl.type == napi_float64_array,
                         .a = a.data,
                         .a_idx = aidx.data,
                         .scale = scale.data,
                         .lda = lda,
                         .b = b.data,
                         .ldb = ldb,
                         .b_es = bes,
                         .a_half = ah,
                         .b_half = bh,
                         .b_trans = btrans,
                         .c = c.data,
                         .ldc = ldc,
                         .accumulate = acc,
                         .seg = seg.data,
                         .N = n,
                         .K = k,
                         .b2 = b2.data,
                         .k_split = ks};
  return done(env, mk_moe_gemm_run(MK_MOE_ROWS, &g, E));
}

/* The first GEMM of a gated (bUp non-NULL) or GELU expert, with its activation on each tile. */
static napi_value gemm_act(napi_env env, mk_opts *o, const mk_typed *a, const mk_typed *aidx, int64_t lda,
                           const mk_typed *b, const mk_typed *bu, const char *pre_name, mk_moe_epilogue epi) {
  mk_typed seg, pre, h;
  int64_t bes, ldb, ldpre = 0, uoff = 0, n, k;
  int btrans;
  const int gated = epi == MK_EPI_SWIGLU;
  if (!mk_opt_bool(o, "bTrans", &btrans) || !dim_opt(o, "bExpertStride", &bes) || !dim_opt(o, "ldb", &ldb) ||
      !i32_opt(o, "seg", 0, &seg) || !float_opt(o, pre_name, a, 1, &pre) ||
      (pre.data && !dim_opt(o, gated ? "ldgu" : "ldpre", &ldpre)) ||
      (pre.data && gated && !dim_opt(o, "upOff", &uoff)) || !float_opt(o, "h", a, 0, &h) || !dim_opt(o, "i", &n) ||
      !dim_opt(o, "k", &k))
    return NULL;
  int64_t E = check_seg(o, &seg);
  if (E < 0) return NULL;
  const int64_t S = ((const int32_t *)seg.data)[E];
  if (S == 0 || n == 0) return mk_napi_undefined(env);
  if (pre.data && gated && (uoff < n || ldpre < uoff + n))
    return mk_throw_range(env,
                          "%s: the up columns [upOff, upOff + i) must follow the gate columns [0, i) within "
                          "ldgu (upOff %lld, i %lld, ldgu %lld)",
                          o->fn, (long long)uoff, (long long)n, (long long)ldpre);
  if (pre.data && ldpre < n)
    return mk_throw_range(env, "%s: ldpre (%lld) < i (%lld)", o->fn, (long long)ldpre, (long long)n);
  if (lda < k || ldb < (btrans ? k : n)) return mk_throw_range(env, "%s: leading dimensions too small", o->fn);
  int64_t mr = max_row(o, aidx, S, "aIdx");
  if (mr == -2) return NULL;
  const int64_t bspan = b_span(E, bes, btrans, ldb, n, k);
  if (!need(o, a, k ? mr * lda + k : 0, "a") || !need(o, b, bspan, gated ? "bGate" : "b") ||
      (gated && !need(o, bu, bspan, "bUp")) || (pre.data && !need(o, &pre, (S - 1) * ldpre + uoff + n, pre_name)) ||
      !need(o, &h, S * n, "h"))
    return NULL;
  const mk_moe_gemm g = {.f64 = a->type == napi_float64_array,
                         .a = a->data,
                         .a_idx = aidx->data,
                         .lda = lda,
                         .b = b->data,
                         .ldb = ldb,
                         .b_es = bes,
                         .b_trans = btrans,
                         .c = pre.data,
                         .ldc = ldpre,
                         .seg = seg.data,
                         .N = n,
                         .K = k,
                         .b2 = gated ? bu->data : NULL,
                         .c2 = gated && pre.data ? (char *)pre.data + uoff * (int64_t)mk_elem_size(&pre) : NULL,
                         .h = h.data,
                         .ldh = n,
                         .epilogue = epi};
  return done(env, mk_moe_gemm_run(MK_MOE_ROWS, &g, E));
}

static napi_value moe_gemm_swiglu(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed a, aidx, bg, bu;
  int64_t lda;
  if (!mk_opts_arg(env, info, "moeGemmSwiglu", &o) || !float_opt(&o, "a", NULL, 0, &a) ||
      !i32_opt(&o, "aIdx", 1, &aidx) || !dim_opt(&o, "lda", &lda) || !float_opt(&o, "bGate", &a, 0, &bg) ||
      !float_opt(&o, "bUp", &a, 0, &bu))
    return NULL;
  return gemm_act(env, &o, &a, &aidx, lda, &bg, &bu, "gu", MK_EPI_SWIGLU);
}

static napi_value moe_gemm_gelu(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed a, aidx, b;
  int64_t lda;
  if (!mk_opts_arg(env, info, "moeGemmGelu", &o) || !float_opt(&o, "a", NULL, 0, &a) ||
      !i32_opt(&o, "aIdx", 1, &aidx) || !dim_opt(&o, "lda", &lda) || !float_opt(&o, "b", &a, 0, &b))
    return NULL;
  return gemm_act(env, &o, &a, &aidx, lda, &b, NULL, "pre", MK_EPI_GELU);
}

static napi_value moe_gemm_wgrad(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed a, aidx, scale, b, bidx, seg, c;
  int64_t lda, ldb, m, n;
  int acc, ah, bh, ch;
  mk_typed fl;
  if (!mk_opts_arg(env, info, "moeGemmWgrad", &o) || !operand_opt(&o, "a", NULL, 0, &a, &ah) ||
      ((fl = float_like(&a, ah)), 0) || !i32_opt(&o, "aIdx", 1, &aidx) || !float_opt(&o, "scale", &fl, 1, &scale) ||
      !dim_opt(&o, "lda", &lda) || !operand_opt(&o, "b", &fl, 0, &b, &bh) || !i32_opt(&o, "bIdx", 1, &bidx) ||
      !dim_opt(&o, "ldb", &ldb) || !i32_opt(&o, "seg", 0, &seg) || !operand_opt(&o, "c", &fl, 0, &c, &ch) ||
      !dim_opt(&o, "m", &m) || !dim_opt(&o, "n", &n) || !mk_opt_bool(&o, "accumulate", &acc))
    return NULL;
  if (ch && acc)
    return mk_throw_range(env,
                          "moeGemmWgrad: a bf16 (Uint16Array) c is written, not accumulated: accumulate must be false");
  int64_t E = check_seg(&o, &seg);
  if (E < 0) return NULL;
  const int64_t S = ((const int32_t *)seg.data)[E];
  if (m == 0 || n == 0 || E == 0) return mk_napi_undefined(env);
  if (lda < m || ldb < n) return mk_throw_range(env, "moeGemmWgrad: leading dimensions too small");
  int64_t ma = max_row(&o, &aidx, S, "aIdx");
  if (ma == -2) return NULL;
  int64_t mb = max_row(&o, &bidx, S, "bIdx");
  if (mb == -2) return NULL;
  if ((S > 0 && !need(&o, &a, ma * lda + m, "a")) || (S > 0 && !need(&o, &b, mb * ldb + n, "b")) ||
      (scale.data && !need(&o, &scale, S, "scale")) || !need(&o, &c, E * m * n, "c"))
    return NULL;
  const mk_moe_gemm g = {.f64 = fl.type == napi_float64_array,
                         .a = a.data,
                         .a_idx = aidx.data,
                         .scale = scale.data,
                         .lda = lda,
                         .b = b.data,
                         .a_half = ah,
                         .b_half = bh,
                         .c_half = ch,
                         .b_idx = bidx.data,
                         .ldb = ldb,
                         .c = c.data,
                         .ldc = n,
                         .c_es = m * n,
                         .accumulate = acc,
                         .seg = seg.data,
                         .M = m,
                         .N = n};
  return done(env, mk_moe_gemm_run(MK_MOE_WGRAD, &g, E));
}

static const char *const k_act_kinds[] = {"swiglu", "gelu", "gpt-oss"};

/* The pre-activation layout the activation exports share (checks gu's span); kind and the
 * GPT-OSS constants too. */
static int act_layout(mk_opts *o, mk_typed *gu, int *kind, mk_moe_act *a, int64_t *s) {
  if (!mk_opt_enum(o, "kind", k_act_kinds, 3, kind) || !float_opt(o, "gu", NULL, 0, gu) || !dim_opt(o, "ld", &a->ld) ||
      !dim_opt(o, "gateOff", &a->goff) || (*kind != 1 && !dim_opt(o, "upOff", &a->uoff)) ||
      !dim_opt(o, "colStride", &a->cs) || !dim_opt(o, "s", s) || !dim_opt(o, "i", &a->I) ||
      (*kind == 2 && (!mk_opt_f64(o, "limit", &a->limit) || !mk_opt_f64(o, "alpha", &a->alpha))))
    return 0;
  a->f64 = gu->type == napi_float64_array;
  a->gu = gu->data;
  if (*kind == 1) a->uoff = a->goff;
  if (*s > 0 && a->I > 0) {
    const int64_t last = (a->goff > a->uoff ? a->goff : a->uoff) + (a->I - 1) * a->cs;
    if (last >= a->ld) {
      mk_throw_range(o->env, "%s: the pre-activation columns run past ld", o->fn);
      return 0;
    }
    return need(o, gu, (*s - 1) * a->ld + last + 1, "gu");
  }
  return 1;
}

static napi_value moe_act_forward(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed gu, h;
  mk_moe_act a = {0};
  int kind;
  int64_t s;
  if (!mk_opts_arg(env, info, "moeActForward", &o) || !act_layout(&o, &gu, &kind, &a, &s) ||
      !float_opt(&o, "h", &gu, 0, &h) || !need(&o, &h, s * a.I, "h"))
    return NULL;
  a.h = h.data;
  static const mk_moe_act_kind fwd[] = {MK_ACT_SWIGLU_FWD, MK_ACT_GELU_FWD, MK_ACT_OSS_FWD};
  return done(env, mk_moe_act_run(fwd[kind], &a, s));
}

static napi_value moe_act_backward(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed gu, dy, w, dgu, hout, dw;
  mk_moe_act a = {0};
  int kind;
  int64_t s;
  if (!mk_opts_arg(env, info, "moeActBackward", &o) || !act_layout(&o, &gu, &kind, &a, &s) ||
      !float_opt(&o, "dy", &gu, 0, &dy) || !float_opt(&o, "w", &gu, 1, &w) || !float_opt(&o, "dgu", &gu, 0, &dgu) ||
      !float_opt(&o, "hout", &gu, 1, &hout) || !float_opt(&o, "dw", &gu, 1, &dw) || !need(&o, &dy, s * a.I, "dy") ||
      (w.data && !need(&o, &w, s, "w")) ||
      (s > 0 && a.I > 0 &&
       !need(&o, &dgu, (s - 1) * a.ld + (a.goff > a.uoff ? a.goff : a.uoff) + (a.I - 1) * a.cs + 1, "dgu")) ||
      (hout.data && !need(&o, &hout, s * a.I, "hout")) || (dw.data && !need(&o, &dw, s, "dw")))
    return NULL;
  a.dy = dy.data;
  a.w = w.data;
  a.dgu = dgu.data;
  a.hout = hout.data;
  a.dw = dw.data;
  static const mk_moe_act_kind bwd[] = {MK_ACT_SWIGLU_BWD, MK_ACT_GELU_BWD, MK_ACT_OSS_BWD};
  return done(env, mk_moe_act_run(bwd[kind], &a, s));
}

static napi_value moe_expert_bias(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed c, seg, bias;
  mk_moe_act a = {0};
  if (!mk_opts_arg(env, info, "moeExpertBias", &o) || !float_opt(&o, "c", NULL, 0, &c) || !dim_opt(&o, "ld", &a.ld) ||
      !dim_opt(&o, "off", &a.goff) || !dim_opt(&o, "colStride", &a.cs) || !dim_opt(&o, "n", &a.I) ||
      !i32_opt(&o, "seg", 0, &seg) || !float_opt(&o, "bias", &c, 0, &bias) || !dim_opt(&o, "biasStride", &a.bias_es))
    return NULL;
  const int64_t E = check_seg(&o, &seg);
  if (E < 0) return NULL;
  const int64_t S = ((const int32_t *)seg.data)[E];
  if (S == 0 || a.I == 0) return mk_napi_undefined(env);
  if (a.goff + (a.I - 1) * a.cs >= a.ld) return mk_throw_range(env, "moeExpertBias: the columns run past ld");
  if (!need(&o, &c, (S - 1) * a.ld + a.goff + (a.I - 1) * a.cs + 1, "c") ||
      !need(&o, &bias, (E - 1) * a.bias_es + a.I, "bias"))
    return NULL;
  a.f64 = c.type == napi_float64_array;
  a.dgu = c.data;
  a.bias = bias.data;
  a.E = E;
  a.seg = seg.data;
  return done(env, mk_moe_act_run(MK_ACT_BIAS, &a, S));
}

static napi_value moe_combine(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed y, row, w, out;
  int64_t ldy, t, k, h;
  if (!mk_opts_arg(env, info, "moeCombine", &o) || !float_opt(&o, "y", NULL, 0, &y) || !dim_opt(&o, "ldy", &ldy) ||
      !i32_opt(&o, "row", 0, &row) || !float_opt(&o, "w", &y, 1, &w) || !dim_opt(&o, "t", &t) ||
      !dim_opt(&o, "k", &k) || !dim_opt(&o, "h", &h) || !float_opt(&o, "out", &y, 0, &out) ||
      !need(&o, &row, t * k, "row") || (w.data && !need(&o, &w, t * k, "w")) || !need(&o, &out, t * h, "out"))
    return NULL;
  if (mk_fuse_open())
    return mk_throw_error(env, "moeCombine: not row-local, cannot run inside a fusion (moeFuseBegin .. moeFuseRun)");
  if (ldy < h) return mk_throw_range(env, "moeCombine: ldy < h");
  const int32_t *rp = (const int32_t *)row.data;
  int64_t rows = ldy > 0 ? ((int64_t)y.length - h) / ldy + 1 : 0;
  if (y.length < (size_t)h) rows = 0;
  for (int64_t q = 0; q < t * k; q++)
    if (rp[q] >= rows) return mk_throw_range(env, "moeCombine: row[%lld] = %d is past y", (long long)q, rp[q]);
  mk_moe_combine(y.type == napi_float64_array, y.data, ldy, rp, w.data, t, k, h, out.data);
  return mk_napi_undefined(env);
}

static napi_value moe_batch_begin(napi_env env, napi_callback_info info) {
  (void)info;
  if (mk_fuse_open()) return mk_throw_error(env, "moeBatchBegin: a fusion is open (moeFuseRun closes it)");
  if (mk_moe_batch_begin() < 0)
    return mk_throw_error(env, "moeBatchBegin: a batch is already open (moeBatchRun closes it)");
  return mk_napi_undefined(env);
}

static napi_value moe_batch_run(napi_env env, napi_callback_info info) {
  (void)info;
  if (!mk_moe_batch_open()) return mk_throw_error(env, "moeBatchRun: no batch is open (moeBatchBegin opens one)");
  mk_moe_batch_run();
  return mk_napi_undefined(env);
}

static napi_value moe_fuse_begin(napi_env env, napi_callback_info info) {
  (void)info;
  if (mk_moe_batch_open()) return mk_throw_error(env, "moeFuseBegin: a batch is open (moeBatchRun closes it)");
  if (mk_fuse_begin() < 0) return mk_throw_error(env, "moeFuseBegin: a fusion is already open (moeFuseRun closes it)");
  return mk_napi_undefined(env);
}

static napi_value moe_fuse_local(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed a;
  int64_t row;
  if (!mk_opts_arg(env, info, "moeFuseLocal", &o) || !float_opt(&o, "a", NULL, 0, &a) ||
      !mk_opt_i64(&o, "rowElems", 1, MAX_DIM, &row))
    return NULL;
  if (!mk_fuse_open()) return mk_throw_error(env, "moeFuseLocal: no fusion is open (moeFuseBegin opens one)");
  const size_t elt = mk_elem_size(&a);
  const char *err = mk_fuse_local(a.data, a.length * elt, (size_t)row * elt);
  if (err) return mk_throw_error(env, "moeFuseLocal: %s", err);
  return mk_napi_undefined(env);
}

static napi_value moe_fuse_run(napi_env env, napi_callback_info info) {
  (void)info;
  if (!mk_fuse_open()) return mk_throw_error(env, "moeFuseRun: no fusion is open (moeFuseBegin opens one)");
  const char *err = mk_fuse_run();
  if (err) return mk_throw_error(env, "moeFuseRun: %s", err);
  return mk_napi_undefined(env);
}

napi_status mk_register_moe(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {
      {"moeGemmRows", moe_gemm_rows},     {"moeGemmWgrad", moe_gemm_wgrad},   {"moeGemmSwiglu", moe_gemm_swiglu},
      {"moeGemmGelu", moe_gemm_gelu},     {"moeActForward", moe_act_forward}, {"moeActBackward", moe_act_backward},
      {"moeExpertBias", moe_expert_bias}, {"moeCombine", moe_combine},        {"moeBatchBegin", moe_batch_begin},
      {"moeBatchRun", moe_batch_run},     {"moeFuseBegin", moe_fuse_begin},   {"moeFuseRun", moe_fuse_run},
      {"moeFuseLocal", moe_fuse_local}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    const napi_status st = mk_napi_export_fn(env, exports, fns[i].name, fns[i].cb);
    if (st != napi_ok) return st;
  }
  return napi_ok;
}
