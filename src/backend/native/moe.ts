// The native backend's MoeKernels (../moe.ts): named operands in, the addon's options objects
// out (moe-addon.ts). Windows with an offset become subarrays: same memory, zero copy.
import type { HalfAccel } from '../half-precision.js';
import { scaledRows } from '../reference/moe.js';
import type { GeluLayout, MoeKernels, RoutePlan, RouterGradTerms, SwigluLayout } from '../moe.js';
import { type Storage, floatArrayLike, uninitializedFloatArrayLike } from '../types.js';
import type { FloatArray } from './addon.js';
import type { ActLayoutOptions, MoeAddonKernels, RouterAddonKernels } from './moe-addon.js';

const f = (s: Storage): FloatArray => s as FloatArray;
const at = (data: Storage, offset = 0): FloatArray => (offset ? f(data).subarray(offset) : f(data));

/** A SwiGLU-layout pre-activation operand as the activation exports take it. */
function actLayout(kind: ActLayoutOptions['kind'], a: SwigluLayout, c: { limit: number; alpha: number } = { limit: 0, alpha: 0 }) {
  const { gu, ld, gateOffset, upOffset, colStride, rows, i } = a;
  return { kind, gu: f(gu), ld, gateOff: gateOffset, upOff: upOffset, colStride, s: rows, i, ...c };
}

/** A GELU pre-activation operand, as actLayout's. */
function geluLayout({ pre, ld, offset, colStride, rows, i }: GeluLayout) {
  return actLayout('gelu', { gu: pre, ld, gateOffset: offset, upOffset: offset, colStride, rows, i });
}

const o = (s: Storage | null): FloatArray | null => (s ? f(s) : null);

/** convert: the addon's bulk conversions (the bf16 experts node needs them), where it has them. */
export function nativeMoeKernels(k: MoeAddonKernels, r: RouterAddonKernels, convert?: HalfAccel['convert']): MoeKernels {
  return {
    fast: true,
    bf16: convert && {
      widen: (src, out) => convert.widen(src, out, 'bf16'),
      narrow: (src, out) => convert.narrow(src, out, 'bf16'),
      narrowScaledRows: convert.narrowScaledRows
        ? (src, s, out) => convert.narrowScaledRows!(src, s, out)
        : (src, s, out) => convert.narrow(scaledRows(src, s), out, 'bf16'),
    },
    gemmRows({ a, aIdx, scale, b, b2, seg, c, n, k: kk, accumulate }) {
      k.moeGemmRows({
        a: at(a.data, a.offset),
        aIdx,
        scale: o(scale),
        lda: a.ld,
        b: at(b.data, b.offset),
        b2: b2 ? at(b2.data, b2.offset) : null,
        kSplit: b2?.kSplit ?? 0,
        bTrans: b.trans,
        bExpertStride: b.expertStride,
        ldb: b.ld,
        seg,
        c: at(c.data, c.offset),
        ldc: c.ld,
        n,
        k: kk,
        accumulate,
      });
    },
    gemmWgrad({ a, aIdx, scale, b, bIdx, seg, c, m, n, accumulate }) {
      k.moeGemmWgrad({
        a: at(a.data, a.offset),
        aIdx,
        scale: o(scale),
        lda: a.ld,
        b: at(b.data, b.offset),
        bIdx,
        ldb: b.ld,
        seg,
        c: f(c),
        m,
        n,
        accumulate,
      });
    },
    gemmSwiglu({ a, aIdx, gate, up, seg, gu, h, i, k: kk }) {
      k.moeGemmSwiglu({
        a: at(a.data, a.offset),
        aIdx,
        lda: a.ld,
        bGate: at(gate.data, gate.offset),
        bUp: at(up.data, up.offset),
        bTrans: gate.trans,
        bExpertStride: gate.expertStride,
        ldb: gate.ld,
        seg,
        gu: gu ? f(gu.data) : null,
        ldgu: gu?.ld ?? 0,
        upOff: gu?.upOffset ?? 0,
        h: f(h),
        i,
        k: kk,
      });
    },
    gemmGelu({ a, aIdx, b, seg, pre, h, i, k: kk }) {
      k.moeGemmGelu({
        a: at(a.data, a.offset),
        aIdx,
        lda: a.ld,
        b: at(b.data, b.offset),
        bTrans: b.trans,
        bExpertStride: b.expertStride,
        ldb: b.ld,
        seg,
        pre: pre ? f(pre.data) : null,
        ldpre: pre?.ld ?? 0,
        h: f(h),
        i,
        k: kk,
      });
    },
    swigluForward: (a) => k.moeActForward({ ...actLayout('swiglu', a), h: f(a.h) }),
    swigluBackward: (a) => k.moeActBackward({ ...actLayout('swiglu', a), ...actGrads(a, a.dgu) }),
    geluForward: (a) => k.moeActForward({ ...geluLayout(a), h: f(a.h) }),
    geluBackward: (a) => k.moeActBackward({ ...geluLayout(a), ...actGrads(a, a.dpre) }),
    gptOssForward: (a) => k.moeActForward({ ...actLayout('gpt-oss', a, a), h: f(a.h) }),
    gptOssBackward: (a) => k.moeActBackward({ ...actLayout('gpt-oss', a, a), ...actGrads(a, a.dgu) }),
    expertBias({ c, bias, seg, n }) {
      k.moeExpertBias({
        c: f(c.data),
        ld: c.ld,
        off: c.offset,
        colStride: c.colStride,
        n,
        seg,
        bias: at(bias.data, bias.offset),
        biasStride: bias.expertStride,
      });
    },
    combine({ y, slotRows, weights, numTokens, topK, h, out }) {
      k.moeCombine({ y: at(y.data, y.offset), ldy: y.ld, row: slotRows, w: o(weights), t: numTokens, k: topK, h, out: f(out) });
    },
    planRoutes({ ids, numTokens: T, topK: K, numExperts: E, capacity, weights }): RoutePlan {
      const n = T * K;
      const segOffsets = new Int32Array(E + 1);
      const sortedSlots = new Int32Array(n);
      const rowTokens = new Int32Array(n);
      const slotRows = new Int32Array(n);
      const rowWeights = uninitializedFloatArrayLike(f(weights), n);
      const S = k.moePlanRoutes({
        ids,
        t: T,
        k: K,
        e: E,
        capacity: capacity ?? -1,
        weights: f(weights),
        seg: segOffsets,
        sortedSlots,
        rowTok: rowTokens,
        slotRow: slotRows,
        rowW: rowWeights,
      });
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
      r.routerForward({ logits: x, t: T, e: E, k: K, renorm, scale, scores, ids, weights, lse, counts, sums });
      return { scores, ids, weights, lse, counts, scoreSums: sums.subarray(0, E), entropySum: sums[E]!, lseSquaredSum: sums[E + 1]! };
    },
    routerBackward(t, dweights) {
      const dlogits = floatArrayLike(f(t.scores), t.numTokens * t.numExperts);
      r.routerBackward({ ...backwardTerms(t), dweights: o(dweights), dlogits });
      return dlogits;
    },
    routerLayerBackward(a) {
      r.routerLayerBackward({
        ...backwardTerms(a),
        rowDw: o(a.rowDw),
        slotRow: a.slotRows,
        x: o(a.x),
        dwr: o(a.dwr),
        wr: o(a.wr),
        rowDx: o(a.rowDx),
        h: a.hidden,
        dx: o(a.dx),
      });
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
    blockLocal: (a, rowElems) => k.moeFuseLocal({ a: f(a), rowElems }),
  };
}

/** The gradient operands of an activation's backward; dgu: where the pre-activations' gradient goes. */
function actGrads(a: { dy: Storage; rowScale: Storage | null; hOut: Storage | null; rowDot: Storage | null }, dgu: Storage) {
  return { dy: f(a.dy), w: o(a.rowScale), dgu: f(dgu), hout: o(a.hOut), dw: o(a.rowDot) };
}

function backwardTerms(t: RouterGradTerms) {
  return {
    scores: f(t.scores),
    lse: f(t.lse),
    ids: t.ids,
    t: t.numTokens,
    e: t.numExperts,
    k: t.topK,
    renorm: t.renorm,
    scale: t.scale,
    lbCoef: t.lbCoef,
    zCoef: t.zCoef,
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
