/*
 * The softmax top-k router pass (src/backend/native/moe.ts drives it). JS exports, each taking
 * one options object with the fields named here:
 *
 *   routerForward({ logits, t, e, k, renorm, scale, scores, ids, weights, lse, counts, sums })
 *     Per row of logits [t, e]: scores = softmax (max-subtracted, as the softmax op),
 *     ids [t, k] = the k largest scores in topk's order (ties: lower index first; NaN
 *     largest), weights [t, k] = the chosen scores, divided by (their sum + 1e-20) when
 *     renorm, times scale; lse [t] = logsumexp of the row. counts [e] (Int32Array) = slots
 *     per expert; sums (Float64Array, e + 2) = per-expert sums of scores, then the sum over
 *     rows of the entropy of the (normalised) scores, then the sum over rows of lse².
 *   routerBackward({ scores, lse, ids, dweights, t, e, k, renorm, scale, lbCoef, zCoef, dlogits })
 *     dlogits [t, e] = d/dlogits of  <dweights, weights> + Σ_{t,e} lbCoef[e]·scores[t,e]
 *                                     + zCoef · Σ_t lse_t²
 *     with weights as routerForward made them; dweights (same type as scores) and lbCoef
 *     (Float64Array [e]) may be null (0).
 *   routerLayerBackward({ scores, lse, ids, rowDw, slotRow, t, e, k, renorm, scale, lbCoef, zCoef,
 *                         x, dwr, wr, rowDx, h, dx })
 *     The router's part of a fused MoE layer's backward, after the experts': dlogits as
 *     routerBackward computes it, with dweights[s] = rowDw[slotRow[s]] (0 where slotRow[s] < 0,
 *     a dropped slot; rowDw null: no weights term), kept internally; then
 *       dwr [e, h] = dlogitsᵀ · x          (x [t, h]; dwr null: skipped)
 *       dx [t, h]  = Σ_k rowDx[slotRow[t·k + k']] + dlogits · wr   (wr [e, h]; dx null: skipped)
 *     i.e. the router GEMM's backward and the combine of the experts' per-row dX in one call.
 * Float arguments other than sums / lbCoef are all Float32Array or all Float64Array.
 * Rows run in parallel; per-task partial sums are combined in task order, so results do not
 * change from run to run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"
#include "cpu.h"
#include "kernel_util.h"
#include "vec_f32.h"

#define MAX_DIM ((int64_t)1 << 40)
#define MK_ROUTER_BLOCK 32 /* rows per block of the forward */

typedef struct {
  const void *logits, *dweights;
  void *scores, *weights, *lse, *dlogits;
  int32_t *ids;
  int64_t E, K;
  int renorm;
  double scale, z_coef;
  const double *lb_coef;
  int64_t tasks;
  double *partial;         /* per task (PARTIAL_STRIDE): [e] score sums, entropy, lse², [k] scratch */
  int64_t *partial_counts; /* per task (COUNTS_STRIDE): [e] */
  /* routerLayerBackward: dweights (the buffer c->dweights points to) gathered from row_dw
   * through slot_row; dwr [E, H] = dlogitsᵀ·x; dx [t, H] = Σ_k row_dx[slot row] + dlogits·wr */
  const int32_t *slot_row;
  const void *row_dw, *x, *wr, *row_dx;
  void *dweights_fill, *dwr, *dx;
  int64_t H, rows;
} mk_router_ctx;

/* Every lane of the layer backward's loops adds its terms in the same order at any vector
 * width (no contraction: -std=c11 keeps a*b+c two roundings), so the AVX-512 build of a loop
 * gives the generic build's bits. */
/* Each task's partials start on a cache line of their own: tasks on two cores updating one
 * line per row lose the second thread's gain to false sharing
 * (docs/performance.md: native/moe/router.c: PARTIAL_STRIDE). */
#define PARTIAL_STRIDE(E, K) ((((E) + 2 + (K)) + 7) & ~(int64_t)7)
#define COUNTS_STRIDE(E) (((E) + 7) & ~(int64_t)7)

#if defined(__x86_64__)
#define MK_ROUTER_A512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))
#endif
#define MK_DWR_ROWS 8  /* experts per register tile of dwr */
#define MK_DWR_COLS 32 /* columns per register tile of dwr (and per block of a dx row) */

#if defined(__x86_64__)
static MK_ROUTER_A512 void tail_dx_row_a512_f32(const mk_router_ctx *c, int64_t t); /* below */
#endif

#define T float
#define SFX f32
#define MK_EXP expf
#define MK_ROUTER_DX_ROW_A512 tail_dx_row_a512_f32
#define RT_VEC 1
#include "router_impl.inc"
#undef RT_VEC
#undef T
#undef SFX
#undef MK_EXP
#undef MK_ROUTER_DX_ROW_A512
#define T double
#define SFX f64
#define MK_EXP exp
#define MK_ROUTER_DX_ROW_A512 tail_dx_row_generic_f64
#define RT_VEC 0
#include "router_impl.inc"
#undef RT_VEC
#undef T
#undef SFX
#undef MK_EXP
#undef MK_ROUTER_DX_ROW_A512

#if defined(__aarch64__)
#include "router_neon.h"
/* tail_dx_row for f32 with its sums in NEON registers (router_neon.h): same terms, same order */
static void tail_dx_row_neon_f32(const mk_router_ctx *c, int64_t t) {
  const int64_t j0 =
      mk_router_dx_row_neon_f32(c->E, c->K, c->H, c->slot_row + t * c->K, (const float *)c->dlogits + t * c->E,
                                (const float *)c->wr, (const float *)c->row_dx, (float *)c->dx + t * c->H);
  tail_dx_cols_f32(c, t, j0, c->H);
}
static void tail_rows_neon_f32(void *p, int64_t r0, int64_t r1, int64_t task) {
  tail_rows_body_f32(p, r0, r1, task, tail_dx_row_neon_f32);
}
#endif

#if defined(__x86_64__)
#include <immintrin.h>
/* tail_dx_row for f32 with its sums in registers (GCC keeps the generic build's accumulator
 * block on the stack, a store-to-load chain per term; docs/performance.md: native/moe/router.c:
 * tail_dx_row_a512_f32). Same terms, same order. */
static MK_ROUTER_A512 void tail_dx_row_a512_f32(const mk_router_ctx *c, int64_t t) {
  const int64_t E = c->E, K = c->K, H = c->H;
  const int32_t *rows = c->slot_row + t * K;
  const float *dl = (const float *)c->dlogits + t * E;
  const float *wr = (const float *)c->wr, *rdx = (const float *)c->row_dx;
  float *o = (float *)c->dx + t * H;
  int64_t j0 = 0;
  for (; j0 + 32 <= H; j0 += 32) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
      if (rows[k] < 0) continue;
      const float *y = rdx + (int64_t)rows[k] * H + j0;
      a0 = _mm512_add_ps(a0, _mm512_loadu_ps(y));
      a1 = _mm512_add_ps(a1, _mm512_loadu_ps(y + 16));
    }
    for (int64_t e = 0; e < E; e++) {
      const __m512 g = _mm512_set1_ps(dl[e]);
      const float *we = wr + e * H + j0;
      a0 = _mm512_add_ps(a0, _mm512_mul_ps(g, _mm512_loadu_ps(we)));
      a1 = _mm512_add_ps(a1, _mm512_mul_ps(g, _mm512_loadu_ps(we + 16)));
    }
    _mm512_storeu_ps(o + j0, a0);
    _mm512_storeu_ps(o + j0 + 16, a1);
  }
  tail_dx_cols_f32(c, t, j0, H);
}
#endif

/* A float array of the scores' type with at least `need` elements (nullable: or null). */
static int float_like(mk_opts *o, const char *name, const mk_typed *like, int nullable, int64_t need, mk_typed *out) {
  if (!mk_opt_typed(o, name, napi_float32_array, 1, nullable, out)) return 0;
  if (!out->data) return 1;
  return mk_arg_same_type(o->env, out, like, o->what, "the scores") && mk_arg_len(o->env, out, need, o->what);
}

/* Float64Array of at least `need` elements (or null when nullable). */
static int f64_array(mk_opts *o, const char *name, int nullable, int64_t need, mk_typed *out) {
  return mk_opt_typed(o, name, napi_float64_array, 0, nullable, out) &&
         (!out->data || mk_arg_len(o->env, out, need, o->what));
}

static int i32_array(mk_opts *o, const char *name, int64_t need, mk_typed *out) {
  return mk_opt_typed(o, name, napi_int32_array, 0, 0, out) && mk_arg_len(o->env, out, need, o->what);
}

static int read_shape(mk_opts *o, int64_t *t, int64_t *e, int64_t *k) {
  if (!mk_opt_i64(o, "t", 0, MAX_DIM, t) || !mk_opt_i64(o, "e", 1, INT32_MAX, e) ||
      !mk_opt_i64(o, "k", 1, INT32_MAX, k))
    return 0;
  if (*k > *e) {
    mk_throw_range(o->env, "%s: k = %lld exceeds e = %lld", o->fn, (long long)*k, (long long)*e);
    return 0;
  }
  return 1;
}

/* The n expert ids are in [0, e); else throws naming the first that is not. */
static int ids_in_range(napi_env env, const char *fn, const mk_typed *ids, int64_t n, int64_t e) {
  const int32_t *ip = (const int32_t *)ids->data;
  for (int64_t q = 0; q < n; q++)
    if (ip[q] < 0 || ip[q] >= e) {
      mk_throw_range(env, "%s: ids[%lld] = %d is outside [0, %lld)", fn, (long long)q, ip[q], (long long)e);
      return 0;
    }
  return 1;
}

static napi_value router_forward(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed logits, scores, ids, weights, lse, counts, sums;
  int64_t t, e, k;
  int renorm;
  double scale;
  if (!mk_opts_arg(env, info, "routerForward", &o) || !mk_opt_typed(&o, "logits", napi_float32_array, 1, 0, &logits) ||
      !read_shape(&o, &t, &e, &k) || !mk_opt_bool(&o, "renorm", &renorm) || !mk_opt_f64(&o, "scale", &scale) ||
      !mk_arg_len(env, &logits, t * e, "routerForward: logits") ||
      !float_like(&o, "scores", &logits, 0, t * e, &scores) || !i32_array(&o, "ids", t * k, &ids) ||
      !float_like(&o, "weights", &logits, 0, t * k, &weights) || !float_like(&o, "lse", &logits, 0, t, &lse) ||
      !i32_array(&o, "counts", e, &counts) || !f64_array(&o, "sums", 0, e + 2, &sums))
    return NULL;
  const int64_t tasks = mk_par_tasks(t, 16 * e);
  double *partial = (double *)aligned_alloc(64, (size_t)(tasks * PARTIAL_STRIDE(e, k)) * sizeof(double));
  int64_t *pcounts = (int64_t *)aligned_alloc(64, (size_t)(tasks * COUNTS_STRIDE(e)) * sizeof(int64_t));
  if (!partial || !pcounts) {
    free(partial);
    free(pcounts);
    return mk_throw_error(env, "routerForward: out of memory");
  }
  memset(partial, 0, (size_t)(tasks * PARTIAL_STRIDE(e, k)) * sizeof(double));
  memset(pcounts, 0, (size_t)(tasks * COUNTS_STRIDE(e)) * sizeof(int64_t));
  mk_router_ctx c = {.logits = logits.data,
                     .scores = scores.data,
                     .weights = weights.data,
                     .lse = lse.data,
                     .ids = (int32_t *)ids.data,
                     .E = e,
                     .K = k,
                     .renorm = renorm,
                     .scale = scale,
                     .tasks = tasks,
                     .partial = partial,
                     .partial_counts = pcounts};
  mk_par_range(t, 16 * e, logits.type == napi_float64_array ? router_forward_chunk_f64 : router_forward_chunk_f32, &c);
  double *out = (double *)sums.data;
  int32_t *cnt = (int32_t *)counts.data;
  for (int64_t j = 0; j < e + 2; j++) {
    double s = 0;
    for (int64_t q = 0; q < tasks; q++) s += partial[q * PARTIAL_STRIDE(e, k) + j];
    out[j] = s;
  }
  for (int64_t j = 0; j < e; j++) {
    int64_t s = 0;
    for (int64_t q = 0; q < tasks; q++) s += pcounts[q * COUNTS_STRIDE(e) + j];
    cnt[j] = (int32_t)s;
  }
  free(partial);
  free(pcounts);
  return mk_napi_undefined(env);
}

static napi_value router_backward(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed scores, lse, ids, dweights, lbc, dlogits;
  int64_t t, e, k;
  int renorm;
  double scale, zc;
  if (!mk_opts_arg(env, info, "routerBackward", &o) || !mk_opt_typed(&o, "scores", napi_float32_array, 1, 0, &scores) ||
      !read_shape(&o, &t, &e, &k) || !mk_arg_len(env, &scores, t * e, "routerBackward: scores") ||
      !float_like(&o, "lse", &scores, 0, t, &lse) || !i32_array(&o, "ids", t * k, &ids) ||
      !float_like(&o, "dweights", &scores, 1, t * k, &dweights) || !mk_opt_bool(&o, "renorm", &renorm) ||
      !mk_opt_f64(&o, "scale", &scale) || !f64_array(&o, "lbCoef", 1, e, &lbc) || !mk_opt_f64(&o, "zCoef", &zc) ||
      !float_like(&o, "dlogits", &scores, 0, t * e, &dlogits))
    return NULL;
  if (!ids_in_range(env, "routerBackward", &ids, t * k, e)) return NULL;
  mk_router_ctx c = {.scores = (void *)scores.data,
                     .lse = lse.data,
                     .ids = (int32_t *)ids.data,
                     .dweights = dweights.data,
                     .dlogits = dlogits.data,
                     .E = e,
                     .K = k,
                     .renorm = renorm,
                     .scale = scale,
                     .z_coef = zc,
                     .lb_coef = (const double *)lbc.data};
  mk_par_range(t, e, scores.type == napi_float64_array ? router_backward_chunk_f64 : router_backward_chunk_f32, &c);
  return mk_napi_undefined(env);
}

static napi_value router_layer_backward(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed scores, lse, ids, rdw, slot_row, lbc, x, dwr, wr, rdx, dx;
  int64_t t, e, k, h;
  int renorm;
  double scale, zc;
  const char *fn = "routerLayerBackward";
  if (!mk_opts_arg(env, info, fn, &o) || !mk_opt_typed(&o, "scores", napi_float32_array, 1, 0, &scores) ||
      !read_shape(&o, &t, &e, &k) || !mk_arg_len(env, &scores, t * e, "routerLayerBackward: scores") ||
      !float_like(&o, "lse", &scores, 0, t, &lse) || !i32_array(&o, "ids", t * k, &ids) ||
      !float_like(&o, "rowDw", &scores, 1, 0, &rdw) || !i32_array(&o, "slotRow", t * k, &slot_row) ||
      !mk_opt_bool(&o, "renorm", &renorm) || !mk_opt_f64(&o, "scale", &scale) || !f64_array(&o, "lbCoef", 1, e, &lbc) ||
      !mk_opt_f64(&o, "zCoef", &zc) || !mk_opt_i64(&o, "h", 0, MAX_DIM, &h) ||
      !float_like(&o, "dwr", &scores, 1, e * h, &dwr) || !float_like(&o, "x", &scores, !dwr.data, t * h, &x) ||
      !float_like(&o, "dx", &scores, 1, t * h, &dx) || !float_like(&o, "wr", &scores, !dx.data, e * h, &wr) ||
      !float_like(&o, "rowDx", &scores, !dx.data, 0, &rdx))
    return NULL;
  /* the rows a slot may name: those of every per-row array given */
  int64_t rows = INT64_MAX;
  if (rdw.data) rows = (int64_t)rdw.length;
  if (dx.data && h > 0 && (int64_t)rdx.length / h < rows) rows = (int64_t)rdx.length / h;
  if (!ids_in_range(env, fn, &ids, t * k, e)) return NULL;
  const int32_t *sr = (const int32_t *)slot_row.data;
  for (int64_t q = 0; q < t * k; q++)
    if (sr[q] >= rows)
      return mk_throw_range(env, "routerLayerBackward: slotRow[%lld] = %d is past the rows of rowDw / rowDx (%lld)",
                            (long long)q, sr[q], (long long)rows);
  const size_t elt = scores.type == napi_float64_array ? sizeof(double) : sizeof(float);
  void *dlogits = malloc((size_t)(t * e) * elt + 1);
  void *dweights = rdw.data ? malloc((size_t)(t * k) * elt + 1) : NULL;
  if (!dlogits || (rdw.data && !dweights)) {
    free(dlogits);
    free(dweights);
    return mk_throw_error(env, "routerLayerBackward: out of memory");
  }
  mk_router_ctx c = {.scores = (void *)scores.data,
                     .lse = lse.data,
                     .ids = (int32_t *)ids.data,
                     .dweights = dweights,
                     .dweights_fill = dweights,
                     .dlogits = dlogits,
                     .E = e,
                     .K = k,
                     .renorm = renorm,
                     .scale = scale,
                     .z_coef = zc,
                     .lb_coef = (const double *)lbc.data,
                     .slot_row = sr,
                     .row_dw = rdw.data,
                     .x = x.data,
                     .wr = wr.data,
                     .row_dx = rdx.data,
                     .dwr = dwr.data,
                     .dx = dx.data,
                     .H = h,
                     .rows = t};
  const int f64 = scores.type == napi_float64_array;
  mk_range_fn rows_fn = f64 ? tail_rows_f64 : tail_rows_f32, dwr_fn = f64 ? tail_dwr_f64 : tail_dwr_f32;
#if defined(__x86_64__)
  if (mk_cpu_isa() >= MK_ISA_AVX512) {
    rows_fn = f64 ? tail_rows_a512_f64 : tail_rows_a512_f32;
    dwr_fn = f64 ? tail_dwr_a512_f64 : tail_dwr_a512_f32;
  }
#elif defined(__aarch64__)
  if (mk_cpu_isa() == MK_ISA_NEON && !f64) rows_fn = tail_rows_neon_f32;
#endif
  mk_par_range(t, e * (k + 1) + (dx.data ? h * (k + e) : 0), rows_fn, &c);
  if (dwr.data) mk_par_range((h + MK_DWR_COLS - 1) / MK_DWR_COLS, t * e * MK_DWR_COLS, dwr_fn, &c);
  free(dlogits);
  free(dweights);
  return mk_napi_undefined(env);
}

napi_status mk_register_router(napi_env env, napi_value exports) {
  napi_status st;
  if ((st = mk_napi_export_fn(env, exports, "routerForward", router_forward)) != napi_ok) return st;
  if ((st = mk_napi_export_fn(env, exports, "routerBackward", router_backward)) != napi_ok) return st;
  return mk_napi_export_fn(env, exports, "routerLayerBackward", router_layer_backward);
}
