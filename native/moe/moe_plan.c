/*
 * The slot plan of a routed MoE call (src/backend/native/moe.ts drives it). JS export, taking
 * one options object with the fields named here:
 *
 *   moePlanRoutes({ ids, t, k, e, capacity, weights, seg, sortedSlots, rowTok, slotRow, rowW }) -> s
 *     dispatch.ts planSlots as one pass, with the per-row maps the fused kernels read: the t·k
 *     slots sorted by expert id, stably (within an expert, ascending slot), each expert keeping
 *     its first `capacity` slots (capacity < 0: all of them). Writes seg [e+1] (row offsets of
 *     the experts), and for each kept row r: sortedSlots[r] = its slot, rowTok[r] = slot / k,
 *     rowW[r] = weights[slot]; slotRow [t·k] = the row of each slot, -1 when dropped. Returns s,
 *     the number of rows kept (sortedSlots, rowTok and rowW need room for t·k).
 * ids, seg, sortedSlots, rowTok and slotRow are Int32Array; weights and rowW both Float32Array
 * or both Float64Array. Serial: a few microseconds for thousands of slots.
 */
#include <stdlib.h>

#include "addon.h"
#include "kernel_util.h"

#define MAX_DIM ((int64_t)1 << 40)

static int i32_of(mk_opts *o, const char *name, int64_t need, mk_typed *out) {
  return mk_opt_typed(o, name, napi_int32_array, 0, 0, out) && mk_arg_len(o->env, out, need, o->what);
}

static napi_value moe_plan_routes(napi_env env, napi_callback_info info) {
  mk_opts o;
  mk_typed ids, w, seg, sorted, tok, slot_row, roww;
  int64_t t, k, e, cap;
  if (!mk_opts_arg(env, info, "moePlanRoutes", &o) || !mk_opt_i64(&o, "t", 0, MAX_DIM, &t) ||
      !mk_opt_i64(&o, "k", 1, INT32_MAX, &k) || !mk_opt_i64(&o, "e", 1, INT32_MAX, &e) ||
      !mk_opt_i64(&o, "capacity", -1, MAX_DIM, &cap))
    return NULL;
  const int64_t n = t * k;
  if (n > INT32_MAX) return mk_throw_range(env, "moePlanRoutes: t·k = %lld slots exceed Int32 indices", (long long)n);
  if (!i32_of(&o, "ids", n, &ids) || !mk_opt_typed(&o, "weights", napi_float32_array, 1, 0, &w) ||
      !mk_arg_len(env, &w, n, "moePlanRoutes: weights") || !i32_of(&o, "seg", e + 1, &seg) ||
      !i32_of(&o, "sortedSlots", n, &sorted) || !i32_of(&o, "rowTok", n, &tok) ||
      !i32_of(&o, "slotRow", n, &slot_row) || !mk_opt_typed(&o, "rowW", napi_float32_array, 1, 0, &roww) ||
      !mk_arg_same_type(env, &roww, &w, "moePlanRoutes: rowW", "weights") ||
      !mk_arg_len(env, &roww, n, "moePlanRoutes: rowW"))
    return NULL;
  const int32_t *id = (const int32_t *)ids.data;
  int32_t *off = (int32_t *)seg.data;
  int64_t *fill = (int64_t *)calloc((size_t)e, sizeof(int64_t));
  if (!fill) return mk_throw_error(env, "moePlanRoutes: out of memory");
  for (int64_t s = 0; s < n; s++) {
    if (id[s] < 0 || id[s] >= e) {
      free(fill);
      return mk_throw_range(env, "moePlanRoutes: expert id %d at slot %lld is outside [0, %lld)", id[s], (long long)s,
                            (long long)e);
    }
    fill[id[s]]++;
  }
  off[0] = 0;
  for (int64_t x = 0; x < e; x++) {
    const int64_t kept = cap >= 0 && fill[x] > cap ? cap : fill[x];
    off[x + 1] = (int32_t)(off[x] + kept);
    fill[x] = 0;
  }
  int32_t *ss = (int32_t *)sorted.data, *rt = (int32_t *)tok.data, *sr = (int32_t *)slot_row.data;
  const int f64 = w.type == napi_float64_array;
  for (int64_t s = 0; s < n; s++) {
    const int32_t x = id[s];
    if (off[x] + fill[x] >= off[x + 1]) {
      sr[s] = -1;
      continue;
    }
    const int64_t r = off[x] + fill[x]++;
    ss[r] = (int32_t)s;
    rt[r] = (int32_t)(s / k);
    sr[s] = (int32_t)r;
    if (f64)
      ((double *)roww.data)[r] = ((const double *)w.data)[s];
    else
      ((float *)roww.data)[r] = ((const float *)w.data)[s];
  }
  free(fill);
  return mk_napi_make_i64(env, off[e]);
}

napi_status mk_register_moe_plan(napi_env env, napi_value exports) {
  return mk_napi_export_fn(env, exports, "moePlanRoutes", moe_plan_routes);
}
