// An expert bank on the backend's MoE kernels: forward and backward as a handful of kernel
// calls (grouped GEMMs with the dispatch gather / weighted combine folded into them, the
// activation — SwiGLU, GELU or GPT-OSS's clamped SwiGLU — and its gradient in one pass each, the
// expert biases as a row pass and two small weight-gradient GEMMs), recorded as ONE autograd node.
//
// Two forms:
//  - routed:  x [T, H] + routing (token of each sorted row, weight of each slot) -> y [T, H]
//             (dispatch gather, experts, weighted combine; grads for x, the top-k weights
//             and every expert weight), or, when the routing says the weights came from the
//             router pass on x (layer-node.ts), grads for x, the router weight and the experts;
//  - rows:    expert-contiguous rows [S, H] -> [S, H] (what ExpertBank.forward computes).
// Saved for backward: the [S, P] pre-activations only (P = 2I gate/up, I for GELU); h is
// recomputed, the expert outputs y_r are never kept (dL/dw_r = <dy_t·W_down, h_r> needs no y_r;
// a down bias b_e adds <dy_t, b_e>, a weight-gradient row of its own).
// Fresh outputs are written entirely by their kernels, so they skip the zero fill
// (uninitializedFloatArrayLike). Small experts run the forward's and the backward's kernels each
// block of rows by block of rows (MoeKernels.rowBlocks), whose intermediates h and dY·W_down
// exist only a block at a time in each thread's L2 (blockLocal); bigger experts run pass by
// pass, the backward's last GEMMs batched into one pool pass. Either way the backward turns gu
// into its gradient in place. SwiGLU and GELU without a first bias apply the activation to each
// output tile of the first GEMM (gemmSwiglu / gemmGelu); the rest run GEMM, bias, activation.
// bf16 (x and the weights BF16Array, MoeKernels.bf16): the grouped GEMMs read bf16 operands
// only and accumulate in f32; gu, h and dY·W_down exist in f32 a slice of sorted rows at a time
// (bf16Forward / bf16Backward; row blocks take no bf16 operands), the activations run in f32,
// the pre-activations saved for the backward are kept in bf16 (that is where the memory goes),
// and outputs and gradients come out bf16, each rounded once.
// The reference composition (dispatch.ts, grouped-gemm.ts, experts.ts) stays the spec:
// test/moe-kernel-path.test.ts holds the two together (test/moe-bf16-kernels.test.ts in bf16).
import type { GptOssConstants, MoeKernels, RoutePlan } from '../../backend/moe.js';
import { BF16Array, type Storage, floatArrayLike, uninitializedFloatArrayLike } from '../../backend/types.js';
import { Tensor, makeOutput, recordsGraph } from '../../tensor/tensor.js';
import { GC_MIN_BYTES, collectBeforeLargeOutputs, droppedGradientBytes } from '../../tensor/gc.js';
import type { ExpertConfig } from '../config.js';
import type { RouterPassState } from '../contracts.js';
import type { ExpertWeights } from '../expert-weights.js';
import { rowBlocksApply } from '../execution/plan.js';
import type { AuxLossGradient } from './router-aux-loss.js';
import { acquireHalfScratch, acquireScratch, releaseScratch } from './scratch.js';

type FloatArray = Float32Array | Float64Array;

/** How the slots of a routed call are laid out, and where their combine weights come from. */
export interface NodeRouting {
  numTokens: number;
  topK: number;
  /** From MoeKernels.planRoutes on these weights. */
  plan: RoutePlan;
  /** [T, K] combine weights, of x's dtype: a differentiable input of the node unless `router` is given. */
  topkWeights: Tensor;
  /** The weights came from the router pass on x itself (logits = x·Wᵀ): see RouterGradient. */
  router?: RouterGradient | null;
}

/**
 * The node then takes the router weight as an input in place of the top-k weights, and its
 * backward runs the router's too (routerLayerBackward): the logits' gradient from the weights'
 * and from the aux losses', the router weight's gradient, and the router's share of dX summed
 * with the experts' in one pass.
 */
export interface RouterGradient {
  state: RouterPassState;
  /** [E, H] */
  weight: Tensor;
  /** The aux losses riding on the output (their gradient seeded with 1, as attachAuxLoss does), or null. */
  aux: AuxLossGradient | null;
}

/** Everything the forward and the backward share. */
interface NodeContext {
  k: MoeKernels;
  E: number;
  H: number;
  I: number;
  S: number;
  kind: ExpertConfig['kind'];
  layout: ExpertConfig['layout'];
  /** Pre-activation columns of a row: 2I (gate and up) or I (GELU). */
  P: number;
  /** Columns of each first-projection matrix: I (separate gate / up, GELU) or 2I (fused, interleaved). */
  firstCols: number;
  /** GPT-OSS's clamps, else null. */
  oss: GptOssConstants | null;
  /** Weights stored [E, out, in] (PyTorch Linear) when true. */
  outIn: boolean;
  seg: Int32Array;
  xs: FloatArray;
  /** The first projection: [gate, up] (separate, gated), [up] (GELU) or [gateUp]. */
  wList: Tensor[];
  first: FloatArray[];
  wDown: Tensor;
  down: FloatArray;
  /** [E, P] on the pre-activations and [E, H] on the output, or null. */
  firstBias: Tensor | null;
  downBias: Tensor | null;
  routing: NodeRouting | null;
  /** Routed: the token of each row, the weight of each row. */
  rowTok: Int32Array | null;
  rowW: FloatArray | null;
  rowBlocks: boolean;
  /** Pre-activations [S, P], kept for the backward (or null until it recomputes them). */
  gu: FloatArray | null;
  /** x and the weights are bf16: f32 passes, bf16 in and out (see the header). */
  half: boolean;
  /** bf16: the pre-activations saved for the backward, rounded to bf16 (gu is then null). */
  guHalf: Storage | null;
  /** bf16: the forward collected the dropped gradients (collectDroppedGrads). */
  collected: boolean;
}

/** Where gate and up sit in a gated bank's gu row. */
const guLayout = (c: NodeContext) =>
  c.layout === 'interleaved' ? { gateOffset: 0, upOffset: 1, colStride: 2 } : { gateOffset: 0, upOffset: c.I, colStride: 1 };
const firstLd = (c: NodeContext) => (c.outIn ? c.H : c.firstCols);
const downLd = (c: NodeContext) => (c.outIn ? c.I : c.H);
/** The activation runs on each output tile of the first GEMM (no first bias comes between, a gated kernel fits the layout). */
const activationInGemm = (c: NodeContext) =>
  !c.half && !c.firstBias && (c.kind === 'gelu' || (c.kind === 'swiglu' && c.layout !== 'interleaved'));
const storageOf = (t: Tensor) => t.storage as FloatArray;

/** Adds each sorted row's expert bias to dst [S, n] (row stride n). */
function addBias(c: NodeContext, dst: FloatArray, bias: Tensor, n: number): void {
  c.k.expertBias!({ c: { data: dst, ld: n, offset: 0, colStride: 1 }, bias: { data: bias.storage, expertStride: n }, seg: c.seg, n });
}

/** gu [S, P] = rows · op(W_first) (+ the first bias): separate gate / up weights write the two column halves. */
function firstGemm(c: NodeContext, dst: FloatArray): void {
  const a = { data: c.xs, ld: c.H };
  const stride = c.firstCols * c.H;
  c.first.forEach((w, half) => {
    const b = { data: w, ld: firstLd(c), trans: c.outIn, expertStride: stride };
    c.k.gemmRows({
      a,
      aIdx: c.rowTok,
      scale: null,
      b,
      seg: c.seg,
      c: { data: dst, offset: half * c.I, ld: c.P },
      n: c.firstCols,
      k: c.H,
      accumulate: false,
    });
  });
  if (c.firstBias) addBias(c, dst, c.firstBias, c.P);
}

/** h = act(gu) [S, I] from the pre-activations gu [S, P]. */
function activation(c: NodeContext, gu: FloatArray, h: FloatArray): void {
  const { k } = c;
  const L = { gu, ld: c.P, ...guLayout(c), rows: c.S, i: c.I };
  if (c.kind === 'gelu') k.geluForward!({ pre: gu, ld: c.P, offset: 0, colStride: 1, rows: c.S, i: c.I, h });
  else if (c.oss) k.gptOssForward!({ ...L, ...c.oss, h });
  else k.swigluForward({ ...L, h });
}

/** h = act(rows · W_first + b_first), then y = h · W_down + b_down (per sorted row). */
function expertsForward(c: NodeContext, h: FloatArray, y: FloatArray): void {
  const { k } = c;
  if (!activationInGemm(c)) {
    firstGemm(c, c.gu!);
    activation(c, c.gu!, h);
  } else if (c.kind === 'gelu') {
    // the GELU applied to each output tile while it is hot
    k.gemmGelu!({
      a: { data: c.xs, ld: c.H },
      aIdx: c.rowTok,
      b: { data: c.first[0]!, ld: firstLd(c), trans: c.outIn, expertStride: c.I * c.H },
      seg: c.seg,
      pre: c.gu ? { data: c.gu, ld: c.I } : null,
      h,
      i: c.I,
      k: c.H,
    });
  } else {
    // gate and up in one pass, the gate applied to each output tile while it is hot
    const [gate, up, upOff, stride] =
      c.layout === 'separate'
        ? [c.first[0]!, c.first[1]!, 0, c.I * c.H]
        : [c.first[0]!, c.first[0]!, c.outIn ? c.I * c.H : c.I, 2 * c.I * c.H];
    k.gemmSwiglu({
      a: { data: c.xs, ld: c.H },
      aIdx: c.rowTok,
      gate: { data: gate, ld: firstLd(c), trans: c.outIn, expertStride: stride },
      up: { data: up, offset: upOff },
      seg: c.seg,
      gu: c.gu ? { data: c.gu, ld: c.P, upOffset: c.I } : null,
      h,
      i: c.I,
      k: c.H,
    });
  }
  downGemm(c, h, y);
  if (c.downBias) addBias(c, y, c.downBias, c.H);
}

/** y [S, H] = h · op(W_down_e) per sorted row. */
function downGemm(c: NodeContext, h: Storage, y: FloatArray): void {
  c.k.gemmRows({
    a: { data: h, ld: c.I },
    aIdx: null,
    scale: null,
    b: { data: c.down, ld: downLd(c), trans: c.outIn, expertStride: c.H * c.I },
    seg: c.seg,
    c: { data: y, ld: c.H },
    n: c.H,
    k: c.I,
    accumulate: false,
  });
}

/** The first projection's weights, in the node's order: [gate, up] (separate, gated), [up] (GELU) or [gateUp]. */
export function firstWeights(w: ExpertWeights, cfg: ExpertConfig): Tensor[] {
  return cfg.kind === 'gelu' ? [w.upProj!] : cfg.layout === 'separate' ? [w.gateProj!, w.upProj!] : [w.gateUpProj!];
}

/**
 * Under autocast bf16: bf16 copies of f32 expert weights that the kernels read in their place
 * (the first projection's in firstWeights' order, and the down one). The
 * f32 weights stay the node's inputs and get f32 gradients: the weight-gradient GEMMs' f32 sums,
 * never rounded to bf16.
 */
export interface LowWeights {
  first: BF16Array[];
  down: BF16Array;
}

/**
 * The node. `rows` the E+1 segment offsets: x is [S, H] expert-contiguous rows; a routing:
 * x is [T, H] (the rows are those of its plan) and the output is the weighted combine [T, H].
 * x bf16 with f32 weights: `low` holds the weights' bf16 copies (LowWeights).
 */
export function expertsNode(
  k: MoeKernels,
  x: Tensor,
  rows: Int32Array | NodeRouting,
  w: ExpertWeights,
  cfg: ExpertConfig,
  low: LowWeights | null = null,
): Tensor {
  const routing = rows instanceof Int32Array ? null : rows;
  const seg = routing ? routing.plan.segOffsets : (rows as Int32Array);
  const xs = x.storage as FloatArray;
  const half = xs instanceof BF16Array;
  const gelu = cfg.kind === 'gelu';
  const wList = firstWeights(w, cfg);
  const I = cfg.intermediateSize;
  const c: NodeContext = {
    k,
    E: seg.length - 1,
    H: x.shape[1]!,
    I,
    S: seg[seg.length - 1]!,
    kind: cfg.kind,
    layout: cfg.layout,
    P: gelu ? I : 2 * I,
    firstCols: gelu || cfg.layout === 'separate' ? I : 2 * I,
    oss: cfg.kind === 'gpt-oss' ? { limit: cfg.swigluLimit, alpha: cfg.swigluAlpha } : null,
    outIn: cfg.orientation === 'out-in',
    seg,
    xs,
    wList,
    first: low ? (low.first as unknown as FloatArray[]) : wList.map(storageOf),
    wDown: w.downProj,
    down: low ? (low.down as unknown as FloatArray) : storageOf(w.downProj),
    firstBias: w.gateUpBias ?? null,
    downBias: w.downBias ?? null,
    routing,
    rowTok: routing ? routing.plan.rowTokens : null,
    rowW: routing ? (routing.plan.rowWeights as FloatArray) : null,
    rowBlocks: false,
    gu: null,
    half,
    guHalf: null,
    collected: false,
  };
  const router = routing?.router ?? null;
  const biases = [c.firstBias, c.downBias].filter((b): b is Tensor => b !== null);
  const inputs: Tensor[] = [x, ...(routing ? [router ? router.weight : routing.topkWeights] : []), ...wList, w.downProj, ...biases];
  const keepsGraph = recordsGraph(inputs);
  // small experts: the second GEMM reads each block of h while it is in cache, and h (and gu,
  // unless the backward will read it) never exists whole; no rows: nothing to block
  c.rowBlocks = !half && c.S > 0 && rowBlocksApply(c.H, c.I, xs.BYTES_PER_ELEMENT);
  // Inference outside row blocks keeps no gu: the gated / GELU GEMM holds each task's
  // pre-activation tiles in a buffer of its thread (ct-moe: no 128 MB array). Without such a
  // GEMM (interleaved layout, a first bias, GPT-OSS) gu is kept.
  c.gu = !half && (keepsGraph || c.rowBlocks || !activationInGemm(c)) ? acquireScratch(xs, c.S * c.P) : null;
  // internal buffers come from / go back to the scratch pool (scratch.ts); outputs are fresh
  const h = half ? null : acquireScratch(xs, c.S * c.I);
  const y = routing ? acquireScratch(xs, c.S * c.H) : uninitializedFloatArrayLike(xs, c.S * c.H);
  if (!h) {
    bf16Forward(c, y, keepsGraph);
  } else if (c.rowBlocks) {
    k.rowBlocks(() => {
      k.blockLocal(h, c.I);
      if (!keepsGraph) k.blockLocal(c.gu!, c.P);
      expertsForward(c, h, y);
    });
  } else {
    expertsForward(c, h, y);
  }
  if (h) releaseScratch(h);
  let out: FloatArray = y;
  let outShape = [c.S, c.H];
  if (routing) {
    const T = routing.numTokens;
    // bf16: the f32 combine is rounded into the output at once, so its buffer is pooled scratch
    out = half ? acquireScratch(xs, T * c.H) : uninitializedFloatArrayLike(xs, T * c.H);
    const slots = slotsInRowOrder(routing.plan.slotRows, f32Values(x, routing.topkWeights.storage), T, routing.topK);
    k.combine({
      y: { data: y, ld: c.H },
      slotRows: slots.rows,
      weights: slots.weights,
      numTokens: T,
      topK: routing.topK,
      h: c.H,
      out,
    });
    releaseScratch(y);
    outShape = [T, c.H];
  }
  const outData = half ? x.backend.cast(out, 'bf16') : out;
  if (half && routing) releaseScratch(out);
  const result = makeOutput(x.backend, outData, outShape, {
    name: routing ? 'moeExperts' : 'expertRows',
    inputs,
    backward: (gradOut) => expertsBackward(c, x, gradOut.storage as FloatArray),
  });
  if (!result.gradFn && c.gu) {
    // no graph (no grad needed): nothing will read the pre-activations again
    releaseScratch(c.gu);
    c.gu = null;
  }
  if (!result.gradFn) c.guHalf = null;
  return result;
}

/**
 * A bf16 node's slices: its f32 intermediates (gu, h, dY·W_down) exist `rows` sorted rows at a
 * time. Tests shrink them to cover several slices on small shapes.
 */
export const bf16Slices = { rows: 1024 };

/** c narrowed to the sorted rows [r0, r1): segment offsets, the routing's rows, and x's rows (rows form). */
function rowSlice(c: NodeContext, r0: number, r1: number): NodeContext {
  return {
    ...c,
    S: r1 - r0,
    seg: c.seg.map((s) => Math.min(Math.max(s, r0), r1) - r0),
    rowTok: c.rowTok?.subarray(r0, r1) ?? null,
    rowW: c.rowW?.subarray(r0, r1) ?? null,
    xs: c.rowTok ? c.xs : c.xs.subarray(r0 * c.H, r1 * c.H),
    gu: null,
    guHalf: null,
  };
}

/** The row slices [r0, r1) of a bf16 node, each with its sliced context. */
function forEachSlice(c: NodeContext, fn: (sc: NodeContext, r0: number, r1: number) => void): void {
  for (let r0 = 0; r0 < c.S; r0 += bf16Slices.rows) {
    const r1 = Math.min(c.S, r0 + bf16Slices.rows);
    fn(rowSlice(c, r0, r1), r0, r1);
  }
}

/**
 * The previous step's bf16 gradients (dropped by zeroGrad) collected before this step's big
 * arrays are live, as the f32 backward does (src/tensor/gc.ts; the threshold halved with the
 * element size): in a training forward (zeroGrad came before it), and before the backward
 * allocates the new gradients when zeroGrad came after the forward (droppedGradientBytes) or the
 * forward did not collect (its time-based fallback GC once a step, not twice).
 */
function collectDroppedGrads(c: NodeContext, forward: boolean): void {
  const min = GC_MIN_BYTES / 2;
  if (!forward && c.collected && droppedGradientBytes() < min) return;
  // bf16 gradients, or f32 ones for f32 weights under autocast (LowWeights)
  const f32 = c.wDown.dtype === 'f32';
  const gradElements = [...c.wList, c.wDown].reduce((n, t) => n + (t.requiresGrad ? t.size : 0), 0);
  collectBeforeLargeOutputs(gradElements * (f32 ? 4 : BF16Array.BYTES_PER_ELEMENT), f32 ? GC_MIN_BYTES : min);
  c.collected ||= forward;
}

/**
 * bf16 forward, slice by slice: y rows [S, H] (f32), and gu rounded to bf16 for the backward when
 * keep. A slice's first GEMMs (gate and up) run in one pool pass with the previous slice's down
 * GEMM (independent: that one reads hb and writes y), so the threads wait at a pass's end once per
 * slice, not three times.
 */
function bf16Forward(c: NodeContext, y: FloatArray, keep: boolean): void {
  const rows = Math.min(c.S, bf16Slices.rows);
  const gu = acquireScratch(c.xs, rows * c.P);
  const h = acquireScratch(c.xs, rows * c.I);
  if (keep) collectDroppedGrads(c, true);
  const hb = acquireHalfScratch(rows * c.I);
  // pooled: the backward gives it back once it has become the pre-activations' gradient
  const saved = keep ? acquireHalfScratch(c.S * c.P) : null;
  const cv = c.k.bf16!;
  let down: (() => void) | null = null;
  forEachSlice(c, (sc, r0, r1) => {
    const n = r1 - r0;
    const prev = down;
    c.k.batched(() => {
      prev?.();
      firstGemm(sc, gu);
    });
    activation(sc, gu, h);
    // h rounded to bf16 once, so that the second GEMM reads bf16 operands only
    cv.narrow(h.subarray(0, n * c.I) as Float32Array, hb.subarray(0, n * c.I));
    if (saved) cv.narrow(gu.subarray(0, n * c.P) as Float32Array, saved.subarray(r0 * c.P, r1 * c.P));
    down = () => downGemm(sc, hb, y.subarray(r0 * c.H, r1 * c.H));
  });
  (down as (() => void) | null)?.();
  releaseScratch(gu);
  releaseScratch(h);
  releaseScratch(hb);
  c.guHalf = saved;
}

/** A gradient of t from the node's f32 / f64 values (rounded once when t is bf16). */
function gradFor(t: Tensor, data: Storage): Tensor {
  return new Tensor(t.dtype === 'bf16' && !(data instanceof BF16Array) ? t.backend.cast(data, 'bf16') : data, t.shape, t.backend);
}

/** A float storage's values as the kernels' f32 / f64 operands (bf16 widened on x's backend). */
export function f32Values(x: Tensor, s: Storage): FloatArray {
  return (s instanceof BF16Array ? x.backend.cast(s, 'f32') : s) as FloatArray;
}

/**
 * Each token's slots (rows and combine weights) reordered by sorted row, so that the combine adds
 * a token's expert outputs in the order the composition's index-add does (bit-identical outputs
 * for top-k >= 3 too); dropped slots (row -1) come first and are skipped.
 */
function slotsInRowOrder(slotRows: Int32Array, weights: FloatArray, T: number, K: number): { rows: Int32Array; weights: FloatArray } {
  if (K < 3) return { rows: slotRows, weights }; // two terms add the same either way
  const rows = slotRows.slice();
  const w = weights.slice();
  for (let t = 0; t < T; t++) {
    for (let i = t * K + 1; i < (t + 1) * K; i++) {
      const [r, v] = [rows[i]!, w[i]!];
      let j = i - 1;
      for (; j >= t * K && rows[j]! > r; j--) {
        rows[j + 1] = rows[j]!;
        w[j + 1] = w[j]!;
      }
      rows[j + 1] = r;
      w[j + 1] = v;
    }
  }
  return { rows, weights: w };
}

/** The gradients the backward's last GEMMs write. */
interface LastGrads {
  dDown: FloatArray | null;
  dFirst: (FloatArray | null)[];
  /** [E, P] and [E, H], or null. */
  dFirstBias: FloatArray | null;
  dDownBias: FloatArray | null;
  /** dX per sorted row (summed over each token's slots afterwards when routed). */
  da: FloatArray | null;
}

/** The weight-gradient and dX GEMMs: they read only dY, h, x and dgu. */
function lastGemms(c: NodeContext, gs: FloatArray, hh: FloatArray, dgu: FloatArray, g: LastGrads): void {
  const { k, seg, H, I, rowTok, rowW } = c;
  const firstRows = c.firstCols;
  // dW_down_e = (w·dY_e)ᵀ h_e (out-in [H, I]) or h_eᵀ (w·dY_e) (in-out [I, H])
  if (g.dDown) {
    const dy = { data: gs, ld: H };
    const hm = { data: hh, ld: I };
    if (c.outIn) k.gemmWgrad({ a: dy, aIdx: rowTok, scale: rowW, b: hm, bIdx: null, seg, c: g.dDown, m: H, n: I, accumulate: false });
    else k.gemmWgrad({ a: hm, aIdx: null, scale: rowW, b: dy, bIdx: rowTok, seg, c: g.dDown, m: I, n: H, accumulate: false });
  }
  // dW_first: columns of dgu <-> rows (out-in) / columns (in-out) of the first weight(s)
  g.dFirst.forEach((d, idx) => {
    if (!d) return;
    const dg = { data: dgu, offset: idx * I, ld: c.P };
    const xm = { data: c.xs, ld: H };
    if (c.outIn) k.gemmWgrad({ a: dg, aIdx: null, scale: null, b: xm, bIdx: rowTok, seg, c: d, m: firstRows, n: H, accumulate: false });
    else k.gemmWgrad({ a: xm, aIdx: rowTok, scale: null, b: dg, bIdx: null, seg, c: d, m: H, n: firstRows, accumulate: false });
  });
  // the biases' gradients: per expert, the sum of its rows' dgu (first) and weighted dY (down),
  // as weight gradients with a column of ones
  if (g.dFirstBias || g.dDownBias) {
    const ones = { data: floatArrayLike(c.xs, c.S).fill(1), ld: 1 };
    if (g.dFirstBias)
      k.gemmWgrad({
        a: ones,
        aIdx: null,
        scale: null,
        b: { data: dgu, ld: c.P },
        bIdx: null,
        seg,
        c: g.dFirstBias,
        m: 1,
        n: c.P,
        accumulate: false,
      });
    if (g.dDownBias)
      k.gemmWgrad({
        a: ones,
        aIdx: null,
        scale: rowW,
        b: { data: gs, ld: H },
        bIdx: rowTok,
        seg,
        c: g.dDownBias,
        m: 1,
        n: H,
        accumulate: false,
      });
  }
  // dX rows = dgu · op(W_first_e)ᵀ; separate gate / up: [dG dU] · [W_gate; W_up] in one pass (stacked along K)
  if (!g.da) return;
  const b = { data: c.first[0]!, ld: firstLd(c), trans: !c.outIn, expertStride: firstRows * H };
  const b2 = c.first.length === 2 ? { data: c.first[1]!, kSplit: I } : null;
  k.gemmRows({
    a: { data: dgu, ld: c.P },
    aIdx: null,
    scale: null,
    b,
    b2,
    seg,
    c: { data: g.da, ld: H },
    n: H,
    k: c.P,
    accumulate: false,
  });
}

/**
 * bf16: the weight gradients' GEMMs in one pool pass (hh: h already times each row's combine
 * weight). bf16 weights get bf16 gradients written by the GEMMs themselves (each f32 sum rounded
 * once as its tile is final: no f32 gradient exists); f32 weights under autocast (LowWeights)
 * get the f32 sums, as the f32 node's.
 */
function bf16WeightGrads(c: NodeContext, gs: FloatArray, hh: FloatArray, dgu: FloatArray): LastGrads {
  const f32 = c.wDown.dtype === 'f32';
  const grad = (t: Tensor): FloatArray | null =>
    !t.requiresGrad ? null : f32 ? uninitializedFloatArrayLike(c.down, t.size) : (new BF16Array(t.size) as unknown as FloatArray);
  const g: LastGrads = { dDown: grad(c.wDown), dFirst: c.wList.map(grad), dFirstBias: null, dDownBias: null, da: null };
  c.k.batched(() => lastGemms({ ...c, rowW: null }, gs, hh, dgu, g)); // rowW null: hh is h times the combine weights
  return g;
}

/**
 * bf16 backward: slice by slice, dY·W_down, the pre-activations (the saved bf16 ones widened, or
 * recomputed), the activation's backward and dX's rows in f32, the pre-activations' gradient and
 * the recomputed h rounded to bf16; then the weight gradients over all rows from those bf16
 * operands (bf16WeightGrads).
 */
function bf16Backward(c: NodeContext, x: Tensor, gs: FloatArray): (Tensor | null)[] {
  const { k, routing, S, H, I, P } = c;
  const router = routing?.router ?? null;
  const needX = x.requiresGrad;
  const needRowDw = routing !== null && (router ? needX || router.weight.requiresGrad : routing.topkWeights.requiresGrad);
  const rows = Math.min(S, bf16Slices.rows);
  const dgu = acquireScratch(c.xs, rows * P);
  const dyh = acquireScratch(c.xs, rows * I);
  const dw = needRowDw ? uninitializedFloatArrayLike(c.xs, S) : null;
  const da = needX ? (routing ? acquireScratch(c.xs, S * H) : uninitializedFloatArrayLike(c.xs, S * H)) : null;
  const saved = c.guHalf as BF16Array | null;
  c.guHalf = null;
  const dguHalf = saved ?? acquireHalfScratch(S * P); // the saved pre-activations become their gradient, slice by slice
  const hHalf = acquireHalfScratch(S * I);
  const cv = k.bf16!;
  // a slice's dX GEMM runs in one pool pass with the next slice's dY·W_down (independent: it
  // reads the slice's bf16 dgu rows and writes its dX rows)
  let dxGemm: (() => void) | null = null;
  forEachSlice(c, (sc, r0, r1) => {
    const n = r1 - r0;
    const prev = dxGemm;
    k.batched(() => {
      prev?.();
      k.gemmRows({
        a: { data: gs, offset: sc.rowTok ? 0 : r0 * H, ld: H },
        aIdx: sc.rowTok,
        scale: null,
        b: { data: c.down, ld: downLd(c), trans: !c.outIn, expertStride: H * I },
        seg: sc.seg,
        c: { data: dyh, ld: I },
        n: I,
        k: H,
        accumulate: false,
      });
    });
    if (saved) cv.widen(saved.subarray(r0 * P, r1 * P), dgu as Float32Array);
    else firstGemm(sc, dgu);
    const grads = { rows: n, i: I, dy: dyh, rowScale: sc.rowW, hOut: dyh, rowDot: dw?.subarray(r0, r1) ?? null };
    if (c.kind === 'gelu') k.geluBackward!({ pre: dgu, ld: P, offset: 0, colStride: 1, ...grads, dpre: dgu });
    else if (c.oss) k.gptOssBackward!({ gu: dgu, ld: P, ...guLayout(c), ...grads, dgu, ...c.oss });
    else k.swigluBackward({ gu: dgu, ld: P, ...guLayout(c), ...grads, dgu });
    // the GEMMs after this read bf16 operands only: dgu, and h times each row's combine weight
    // (dW_down's scale, applied here once instead of in each of its packs)
    cv.narrow(dgu.subarray(0, n * P) as Float32Array, dguHalf.subarray(r0 * P, r1 * P));
    const hRows = dyh.subarray(0, n * I) as Float32Array;
    if (sc.rowW) cv.narrowScaledRows(hRows, sc.rowW as Float32Array, hHalf.subarray(r0 * I, r1 * I));
    else cv.narrow(hRows, hHalf.subarray(r0 * I, r1 * I));
    const dguRows = dguHalf.subarray(r0 * P, r1 * P) as unknown as FloatArray;
    dxGemm = da
      ? () =>
          lastGemms(sc, gs, dyh, dguRows, {
            dDown: null,
            dFirst: c.wList.map(() => null),
            dFirstBias: null,
            dDownBias: null,
            da: da.subarray(r0 * H, r1 * H),
          })
      : null;
  });
  (dxGemm as (() => void) | null)?.();
  releaseScratch(dgu);
  releaseScratch(dyh);
  // dX first: its f32 rows go back to the pool before the weight gradients' f32 sums are taken
  const { dx, dRouting } = routing ? routedInputGrads(c, x, routing, da, dw) : { dx: da ? gradFor(x, da) : null, dRouting: null };
  collectDroppedGrads(c, false);
  const g = bf16WeightGrads(c, gs, hHalf as unknown as FloatArray, dguHalf as unknown as FloatArray);
  releaseScratch(hHalf);
  releaseScratch(dguHalf);
  const dDown = g.dDown ? gradFor(c.wDown, g.dDown) : null;
  const dFirst = c.wList.map((wt, idx) => (g.dFirst[idx] ? gradFor(wt, g.dFirst[idx]!) : null));
  return [dx, ...(routing ? [dRouting] : []), ...dFirst, dDown];
}

function expertsBackward(c: NodeContext, x: Tensor, gs: FloatArray): (Tensor | null)[] {
  const { k, routing, xs, S, H, I } = c;
  const router = routing?.router ?? null;
  const needX = x.requiresGrad;
  // the rows' dL/dw_r: for the top-k weights' gradient, or the router's
  const needRowDw = routing !== null && (router ? needX || router.weight.requiresGrad : routing.topkWeights.requiresGrad);
  if (c.half) return bf16Backward(c, x, gs);
  const mk = (t: Tensor, data: Storage) => gradFor(t, data);
  // The backward overwrites gu with its gradient (saves an [S, P] buffer) and gives it back
  // to the pool; a second backward through a retained graph recomputes it first.
  let gu = c.gu;
  if (!gu) {
    gu = acquireScratch(xs, S * c.P);
    firstGemm(c, gu);
  }
  const dgu = gu; // in place: each element's pre-activations are read before their grads are written
  const dyh = acquireScratch(xs, S * I);
  const hh = dyh; // the activation's backward recomputes h into dyh once it has read it
  const dw = needRowDw ? uninitializedFloatArrayLike(xs, S) : null;
  const gradBytes = [...c.wList, c.wDown].reduce((n, t) => n + (t.requiresGrad ? t.size : 0), 0) * xs.BYTES_PER_ELEMENT;
  collectBeforeLargeOutputs(gradBytes);
  const grad = (t: Tensor | null) => (t?.requiresGrad ? uninitializedFloatArrayLike(xs, t.size) : null);
  const grads: LastGrads = {
    dDown: grad(c.wDown),
    dFirst: c.wList.map(grad),
    dFirstBias: grad(c.firstBias),
    dDownBias: grad(c.downBias),
    da: needX ? (routing ? acquireScratch(xs, S * H) : uninitializedFloatArrayLike(xs, S * H)) : null,
  };
  // dyh = dY · W_down_e  [S, I]   (dY rows = gradOut[token], unweighted)
  const dyhGemm = () => {
    const b = { data: c.down, ld: downLd(c), trans: !c.outIn, expertStride: H * I };
    k.gemmRows({
      a: { data: gs, ld: H },
      aIdx: c.rowTok,
      scale: null,
      b,
      seg: c.seg,
      c: { data: dyh, ld: I },
      n: I,
      k: H,
      accumulate: false,
    });
  };
  // dgu (the pre-activations' grads, gu's layout), h recomputed into dyh, dw_r = <dyh_r, h_r>
  const activationBackward = () => {
    const grads = { rows: S, i: I, dy: dyh, rowScale: c.rowW, hOut: dyh, rowDot: dw };
    const L = { gu: dgu, ld: c.P, ...guLayout(c), ...grads, dgu };
    if (c.kind === 'gelu') k.geluBackward!({ pre: dgu, ld: c.P, offset: 0, colStride: 1, ...grads, dpre: dgu });
    else if (c.oss) k.gptOssBackward!({ ...L, ...c.oss });
    else k.swigluBackward(L);
    // a down bias adds <dY_r, b_e> to dw_r (y_r = h_r·W_down + b_e): a GEMM of one column
    if (dw && c.downBias)
      k.gemmRows({
        a: { data: gs, ld: H },
        aIdx: c.rowTok,
        scale: null,
        b: { data: c.downBias.storage, ld: 1, trans: false, expertStride: H },
        seg: c.seg,
        c: { data: dw, ld: 1 },
        n: 1,
        k: H,
        accumulate: true,
      });
  };
  if (c.rowBlocks) {
    // small experts: every pass on a block of rows while the block is in cache
    k.rowBlocks(() => {
      // dyh is block-local; a block-local dgu, beside the gu rows it is read from, would
      // crowd the L2 (docs/performance.md: src/moe/kernel-path/experts-node.ts: expertsBackward)
      k.blockLocal(dyh, I);
      dyhGemm();
      activationBackward();
      lastGemms(c, gs, hh, dgu, grads);
    });
  } else {
    dyhGemm();
    activationBackward();
    k.batched(() => lastGemms(c, gs, hh, dgu, grads)); // one pass over the threads
  }
  const dDown = grads.dDown ? mk(c.wDown, grads.dDown) : null;
  const dFirst = c.wList.map((wt, idx) => (grads.dFirst[idx] ? mk(wt, grads.dFirst[idx]!) : null));
  const dBiases = [
    ...(c.firstBias ? [grads.dFirstBias ? mk(c.firstBias, grads.dFirstBias) : null] : []),
    ...(c.downBias ? [grads.dDownBias ? mk(c.downBias, grads.dDownBias) : null] : []),
  ];
  const { dx, dRouting } = routing
    ? routedInputGrads(c, x, routing, grads.da, dw)
    : { dx: grads.da ? mk(x, grads.da) : null, dRouting: null };
  releaseScratch(dyh);
  releaseScratch(dgu);
  c.gu = null;
  return [dx, ...(routing ? [dRouting] : []), ...dFirst, dDown, ...dBiases];
}

/** dX's f32 values: pooled scratch when x is bf16 (dxGrad rounds them at once and gives it back), else the gradient's own array. */
function dxBuffer(x: Tensor, n: number): FloatArray {
  const xs = x.storage as FloatArray;
  return xs instanceof BF16Array ? acquireScratch(xs, n) : uninitializedFloatArrayLike(xs, n);
}

function dxGrad(x: Tensor, dxs: FloatArray): Tensor {
  const g = gradFor(x, dxs);
  if (x.storage instanceof BF16Array) releaseScratch(dxs);
  return g;
}

/** dX of a routed call (the rows' dX summed per token) and the gradient of the top-k weights, or of the router weight. */
function routedInputGrads(
  c: NodeContext,
  x: Tensor,
  routing: NodeRouting,
  da: FloatArray | null,
  dw: FloatArray | null,
): { dx: Tensor | null; dRouting: Tensor | null } {
  const { k, xs, H, S } = c;
  const T = routing.numTokens;
  const mk = (t: Tensor, data: Storage) => gradFor(t, data);
  const router = routing.router ?? null;
  if (router) {
    const st = router.state;
    const dxs = da ? dxBuffer(x, T * H) : null;
    const dwr = router.weight.requiresGrad ? uninitializedFloatArrayLike(xs, st.numExperts * H) : null;
    if (dw) {
      const aux = router.aux;
      k.routerLayerBackward({
        ...st,
        lbCoef: aux?.lbCoef ?? null,
        zCoef: aux?.zCoef ?? 0,
        rowDw: dw,
        slotRows: routing.plan.slotRows,
        hidden: H,
        x: dwr ? xs : null,
        dwr,
        wr: dxs ? router.weight.storage : null,
        rowDx: dxs ? da : null,
        dx: dxs,
      });
    }
    if (da) releaseScratch(da);
    return { dx: dxs ? dxGrad(x, dxs) : null, dRouting: dwr ? mk(router.weight, dwr) : null };
  }
  let dx: Tensor | null = null;
  if (da) {
    const dxs = dxBuffer(x, T * H);
    k.combine({ y: { data: da, ld: H }, slotRows: routing.plan.slotRows, weights: null, numTokens: T, topK: routing.topK, h: H, out: dxs });
    releaseScratch(da);
    dx = dxGrad(x, dxs);
  }
  let dRouting: Tensor | null = null;
  if (dw) {
    const d = floatArrayLike(xs, T * routing.topK); // zeroed: dropped slots get 0
    const ss = routing.plan.sortedSlots;
    for (let r = 0; r < S; r++) d[ss[r]!] = dw[r]!;
    dRouting = mk(routing.topkWeights, d);
  }
  return { dx, dRouting };
}
