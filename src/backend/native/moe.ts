// The native backend's MoeKernels (../moe.ts): named operands in, the addon's positional calls
// out (moe-addon.ts). Windows with an offset become subarrays: same memory, zero copy.
import type { MoeKernels, RoutePlan } from '../moe.js';
import { type Storage, floatArrayLike, uninitializedFloatArrayLike } from '../types.js';
import type { FloatArray } from './addon.js';
import type { MoeAddonKernels, RouterAddonKernels } from './moe-addon.js';

const f = (s: Storage): FloatArray => s as FloatArray;
const at = (data: Storage, offset = 0): FloatArray => (offset ? f(data).subarray(offset) : f(data));

export function nativeMoeKernels(k: MoeAddonKernels, r: RouterAddonKernels): MoeKernels {
  return {
    fast: true,
    gemmRows({ a, aIdx, scale, b, b2, seg, c, n, k: kk, accumulate }) {
      const A = at(a.data, a.offset);
      const B = at(b.data, b.offset);
      const C = at(c.data, c.offset);
      const sc = scale ? f(scale) : null;
      if (b2)
        k.moeGemmRowsStackedK(
          A,
          aIdx,
          sc,
          a.ld,
          B,
          at(b2.data, b2.offset),
          b2.kSplit,
          b.trans,
          b.expertStride,
          b.ld,
          seg,
          C,
          c.ld,
          n,
          kk,
          accumulate,
        );
      else k.moeGemmRows(A, aIdx, sc, a.ld, B, b.trans, b.expertStride, b.ld, seg, C, c.ld, n, kk, accumulate);
    },
    gemmWgrad({ a, aIdx, scale, b, bIdx, seg, c, m, n, accumulate }) {
      k.moeGemmWgrad(
        at(a.data, a.offset),
        aIdx,
        scale ? f(scale) : null,
        a.ld,
        at(b.data, b.offset),
        bIdx,
        b.ld,
        seg,
        f(c),
        m,
        n,
        accumulate,
      );
    },
    gemmSwiglu({ a, aIdx, gate, up, seg, gu, h, i, k: kk }) {
      const G = at(gate.data, gate.offset);
      const U = at(up.data, up.offset);
      k.moeGemmSwiglu(
        at(a.data, a.offset),
        aIdx,
        a.ld,
        G,
        U,
        gate.trans,
        gate.expertStride,
        gate.ld,
        seg,
        gu ? f(gu.data) : null,
        gu?.ld ?? 0,
        gu?.upOffset ?? 0,
        f(h),
        i,
        kk,
      );
    },
    swigluForward({ gu, ld, gateOffset, upOffset, colStride, rows, i, h }) {
      k.moeSwigluForward(f(gu), ld, gateOffset, upOffset, colStride, rows, i, f(h));
    },
    swigluBackward({ gu, ld, gateOffset, upOffset, colStride, rows, i, dy, rowScale, dgu, hOut, rowDot }) {
      k.moeSwigluBackward(
        f(gu),
        ld,
        gateOffset,
        upOffset,
        colStride,
        rows,
        i,
        f(dy),
        rowScale ? f(rowScale) : null,
        f(dgu),
        hOut ? f(hOut) : null,
        rowDot ? f(rowDot) : null,
      );
    },
    combine({ y, slotRows, weights, numTokens, topK, h, out }) {
      k.moeCombine(at(y.data, y.offset), y.ld, slotRows, weights ? f(weights) : null, numTokens, topK, h, f(out));
    },
    planRoutes({ ids, numTokens: T, topK: K, numExperts: E, capacity, weights }): RoutePlan {
      const n = T * K;
      const segOffsets = new Int32Array(E + 1);
      const sortedSlots = new Int32Array(n);
      const rowTokens = new Int32Array(n);
      const slotRows = new Int32Array(n);
      const rowWeights = uninitializedFloatArrayLike(f(weights), n);
      const S = k.moePlanRoutes(ids, T, K, E, capacity ?? -1, f(weights), segOffsets, sortedSlots, rowTokens, slotRows, rowWeights);
      return {
        segOffsets,
        sortedSlots: sortedSlots.subarray(0, S),
        rowTokens: rowTokens.subarray(0, S),
        slotRows,
        rowWeights: rowWeights.subarray(0, S),
        droppedSlots: n - S,
      };
    },
    routerForward(logits, { numTokens: T, numExperts: E, topK: K, renorm, scale }) {
      const x = f(logits);
      const scores = floatArrayLike(x, T * E);
      const ids = new Int32Array(T * K);
      const weights = floatArrayLike(x, T * K);
      const lse = floatArrayLike(x, T);
      const counts = new Int32Array(E);
      const sums = new Float64Array(E + 2);
      r.routerForward(x, T, E, K, renorm, scale, scores, ids, weights, lse, counts, sums);
      return { scores, ids, weights, lse, counts, scoreSums: sums.subarray(0, E), entropySum: sums[E]!, lseSquaredSum: sums[E + 1]! };
    },
    routerBackward(t, dweights) {
      const dlogits = floatArrayLike(f(t.scores), t.numTokens * t.numExperts);
      r.routerBackward(
        f(t.scores),
        f(t.lse),
        t.ids,
        dweights ? f(dweights) : null,
        t.numTokens,
        t.numExperts,
        t.topK,
        t.renorm,
        t.scale,
        t.lbCoef,
        t.zCoef,
        dlogits,
      );
      return dlogits;
    },
    routerLayerBackward(a) {
      const o = (s: Storage | null) => (s ? f(s) : null);
      r.routerLayerBackward(
        f(a.scores),
        f(a.lse),
        a.ids,
        o(a.rowDw),
        a.slotRows,
        a.numTokens,
        a.numExperts,
        a.topK,
        a.renorm,
        a.scale,
        a.lbCoef,
        a.zCoef,
        o(a.x),
        o(a.dwr),
        o(a.wr),
        o(a.rowDx),
        a.hidden,
        o(a.dx),
      );
    },
    batched: (fn) =>
      queuedBetween(
        () => k.moeBatchBegin(),
        () => k.moeBatchRun(),
        fn,
      ),
    rowBlocks: (fn) =>
      queuedBetween(
        () => k.moeFuseBegin(),
        () => k.moeFuseRun(),
        fn,
      ),
    blockLocal: (a, rowElems) => k.moeFuseLocal(f(a), rowElems),
  };
}

/** Calls fn between open() and run(); run() closes what open() began even when fn throws. */
function queuedBetween(open: () => void, run: () => void, fn: () => void): void {
  open();
  try {
    fn();
  } finally {
    run();
  }
}
