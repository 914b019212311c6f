// Fused SwiGLU expert bank on the native backend: forward and backward as a handful of native
// kernel calls (grouped GEMMs with cross-expert tiling, gather / weighted combine folded into
// the GEMM packing, SwiGLU and its gradient in one pass each), recorded as ONE autograd node.
//
// Two forms:
//  - routed:  x [T, H] + routing (token of each sorted row, weight of each slot) -> y [T, H]
//             (dispatch gather, experts, weighted combine; grads for x, the top-k weights
//             and every expert weight), or, when the routing says the weights came from the
//             fused router on x (layer.ts), grads for x, the router weight and the experts;
//  - rows:    expert-contiguous rows [S, H] -> [S, H] (what ExpertBank.forward computes).
// Saved for backward: the [S, 2I] gate/up pre-activations only; h is recomputed, the expert
// outputs y_r are never kept (dL/dw_r = <dy_t·W_down, h_r> needs no y_r).
// Fresh outputs are written entirely by their kernels, so they skip the zero fill
// (uninitializedFloatArrayLike). Small experts run the forward's and the backward's kernels each
// as one row fusion (fusedRows: block of rows by block of rows), whose intermediates h and
// dY·W_down exist only a block at a time in each thread's L2 (moeFuseLocal); bigger experts run
// pass by pass, the backward's last GEMMs batched into one pool pass. Either way the backward
// turns gu into its gradient in place.
// The reference composition (dispatch.ts, grouped-gemm.ts, experts.ts) stays the spec:
// test/moe-fused.test.ts holds the two together.
import type { ExpertConfig } from '../config.js';
import type { ExpertWeights } from '../experts.js';
import { floatArrayLike, isFloatArray, uninitializedFloatArrayLike } from '../../backend/types.js';
import { Tensor, makeOutput, recordsGraph } from '../../tensor/tensor.js';
import { type FloatArray, type MoeNativeKernels, batched, fusedMoeEnabled, fusedRows, moeKernels } from './native-moe.js';
import { collectBeforeLargeOutputs } from '../../tensor/gc.js';
import { acquireScratch, releaseScratch } from './scratch.js';
import type { RoutePlan } from './route-plan.js';
import type { FusedRouterState } from './router.js';
import type { FusedAuxGradient } from './router-aux-loss.js';

/** How the slots of a routed call are laid out, and where their combine weights come from. */
export interface FusedRouting {
  numTokens: number;
  topK: number;
  /** From planRoutes on these weights. */
  plan: RoutePlan;
  /** [T, K] combine weights, of x's dtype: a differentiable input of the node unless `router` is given. */
  topkWeights: Tensor;
  /** The weights came from the fused router on x itself (logits = x·Wᵀ): see FusedRouterGradient. */
  router?: FusedRouterGradient | null;
}

/**
 * The node then takes the router weight as an input in place of the top-k weights, and its
 * backward runs the router's too (routerLayerBackward): the logits' gradient from the weights'
 * and from the aux losses', the router weight's gradient, and the router's share of dX summed
 * with the experts' in one pass.
 */
export interface FusedRouterGradient {
  state: FusedRouterState;
  /** [E, H] */
  weight: Tensor;
  /** The aux losses riding on the output (their gradient seeded with 1, as attachAuxLoss does), or null. */
  aux: FusedAuxGradient | null;
}

type Layout = 'separate' | 'fused' | 'interleaved';

/** The kernels when the fused path can run this bank on x (else null: use the reference). */
export function fusedKernelsFor(x: Tensor, w: ExpertWeights, cfg: ExpertConfig, extra: (Tensor | null)[] = []): MoeNativeKernels | null {
  if (!fusedMoeEnabled() || x.backend.name !== 'native') return null;
  if (cfg.kind !== 'swiglu' || w.gateUpBias || w.downBias) return null;
  const k = moeKernels();
  if (!k) return null;
  const first = cfg.layout === 'separate' ? [w.gateProj, w.upProj] : [w.gateUpProj];
  const all = [x, ...first, w.downProj, ...extra];
  if (!isFloatArray(x.storage)) return null;
  for (const t of all) {
    if (!t || t.backend !== x.backend || t.storage.constructor !== x.storage.constructor) return null;
  }
  return k;
}

interface Geometry {
  E: number;
  H: number;
  I: number;
  layout: Layout;
  /** Weights stored [E, out, in] (PyTorch Linear) when true. */
  outIn: boolean;
}

/** Above this, one expert's weights and their gradients no longer fit a core's L2 beside a block of rows. */
const ROW_FUSION_MAX_EXPERT_BYTES = 1 << 20;

/**
 * Whether the forward and the backward each run as one row fusion (fusedRows) rather than pass by pass:
 * where one expert's weights are small enough that a thread can keep them, their gradients and
 * a block of rows' intermediates in its L2. MOEKIT_MOE_ROW_FUSION=0 / 1 forces it off / on.
 */
function rowFusionApplies(g: Geometry, bytesPerElement: number): boolean {
  const force = process.env.MOEKIT_MOE_ROW_FUSION;
  if (force === '0' || force === '1') return force === '1';
  return 3 * g.H * g.I * bytesPerElement <= ROW_FUSION_MAX_EXPERT_BYTES;
}

/**
 * The fused node. `rows` the E+1 segment offsets: x is [S, H] expert-contiguous rows; a routing:
 * x is [T, H] (the rows are those of its plan) and the output is the weighted combine [T, H].
 */
export function fusedSwigluExperts(k: MoeNativeKernels, x: Tensor, rows: Int32Array | FusedRouting, w: ExpertWeights, cfg: ExpertConfig): Tensor {
  const routing = rows instanceof Int32Array ? null : rows;
  const segOffsets = routing ? routing.plan.segOffsets : (rows as Int32Array);
  const E = segOffsets.length - 1;
  const H = x.shape[1]!;
  const I = cfg.intermediateSize;
  const g: Geometry = { E, H, I, layout: cfg.layout, outIn: cfg.orientation === 'out-in' };
  const S = segOffsets[E]!;
  const xs = x.storage as FloatArray;
  const wList = g.layout === 'separate' ? [w.gateProj!, w.upProj!] : [w.gateUpProj!];
  const wDown = w.downProj;
  const first = wList.map((t) => t.storage as FloatArray);
  const down = wDown.storage as FloatArray;
  const I2 = 2 * I;

  // routed: the token of each row, the row of each slot (-1 dropped), the weight of each row
  const rowTok = routing ? routing.plan.rowTokens : null;
  const slotRow = routing ? routing.plan.slotRows : null;
  const rowW = routing ? routing.plan.rowWeights : null;
  const tw = routing ? (routing.topkWeights.storage as FloatArray) : null;
  const router = routing?.router ?? null;

  // ---- forward ----
  // first GEMM -> gu [S, 2I]: separate weights write the two column halves
  // internal buffers come from / go back to the scratch pool (scratch.ts); outputs are fresh
  const inputs: Tensor[] = [x, ...(routing ? [router ? router.weight : routing.topkWeights] : []), ...wList, wDown];
  const keepsGraph = recordsGraph(inputs);
  // small experts: the second GEMM reads each block of h while it is in cache, and h (and gu,
  // unless the backward will read it) never exists whole
  const rowFusion = S > 0 && rowFusionApplies(g, xs.BYTES_PER_ELEMENT); // no rows: nothing to fuse (and no block-local room)
  // Inference outside a row fusion keeps no gu: the gated GEMM holds each task's gate / up
  // tiles in a buffer of its thread (ct-moe: no 128 MB array). The interleaved layout has no
  // gated kernel and keeps it.
  let gu: FloatArray | null = keepsGraph || rowFusion || g.layout === 'interleaved' ? acquireScratch(xs, S * I2) : null;
  const firstTrans = g.outIn; // out-in: op(W) = Wᵀ
  const firstGemm = (dst: FloatArray) => {
    if (g.layout === 'separate') {
      const ldb = g.outIn ? H : I;
      k.moeGemmRows(xs, rowTok, null, H, first[0]!, firstTrans, I * H, ldb, segOffsets, dst, I2, I, H, false);
      k.moeGemmRows(xs, rowTok, null, H, first[1]!, firstTrans, I * H, ldb, segOffsets, dst.subarray(I), I2, I, H, false);
    } else {
      const ldb = g.outIn ? H : I2;
      k.moeGemmRows(xs, rowTok, null, H, first[0]!, firstTrans, I2 * H, ldb, segOffsets, dst, I2, I2, H, false);
    }
  };
  // The backward overwrites gu with its gradient (saves an [S, 2I] buffer) and gives it back
  // to the pool; a second backward through a retained graph recomputes it first.
  const [goff, uoff, cs] = g.layout === 'interleaved' ? [0, 1, 2] : [0, I, 1];
  const h = acquireScratch(xs, S * I);
  const y = routing ? acquireScratch(xs, S * H) : uninitializedFloatArrayLike(xs, S * H);
  const downLdb = g.outIn ? I : H;
  const expertsForward = () => {
    if (g.layout === 'interleaved') {
      firstGemm(gu!);
      k.moeSwigluForward(gu!, I2, goff, uoff, cs, S, I, h);
    } else {
      // gate and up in one pass, the gate applied to each output tile while it is hot
      const [gate, up, bes, ldb] = g.layout === 'separate'
        ? [first[0]!, first[1]!, I * H, g.outIn ? H : I]
        : [first[0]!, first[0]!.subarray(g.outIn ? I * H : I), I2 * H, g.outIn ? H : I2];
      k.moeGemmSwiglu(xs, rowTok, H, gate, up, firstTrans, bes, ldb, segOffsets, gu, I2, I, h, I, H);
    }
    k.moeGemmRows(h, null, null, I, down, g.outIn, H * I, downLdb, segOffsets, y, H, H, I, false);
  };
  if (rowFusion) {
    fusedRows(k, () => {
      k.moeFuseLocal(h, I);
      if (!keepsGraph) k.moeFuseLocal(gu!, I2);
      expertsForward();
    });
  } else {
    expertsForward();
  }
  releaseScratch(h);
  let out: FloatArray;
  let outShape: number[];
  if (routing) {
    const T = routing.numTokens;
    out = uninitializedFloatArrayLike(xs, T * H);
    k.moeCombine(y, H, slotRow!, tw, T, routing.topK, H, out);
    releaseScratch(y);
    outShape = [T, H];
  } else {
    out = y;
    outShape = [S, H];
  }

  const result = makeOutput(x.backend, out, outShape, {
    name: routing ? 'fusedMoE' : 'fusedExperts',
    inputs,
    backward: (gradOut) => {
      const gs = gradOut.storage as FloatArray;
      const needX = x.requiresGrad;
      // the rows' dL/dw_r: for the top-k weights' gradient, or the router's
      const needRowDw = routing !== null && (router ? needX || router.weight.requiresGrad : routing.topkWeights.requiresGrad);
      const mk = (t: Tensor, data: FloatArray) => new Tensor(data, t.shape, t.backend);
      if (!gu) {
        gu = acquireScratch(xs, S * I2);
        firstGemm(gu);
      }
      const dgu = gu; // in place: each element's gate/up are read before their grads are written
      const dyh = acquireScratch(xs, S * I);
      const hh = dyh; // the SwiGLU backward recomputes h into dyh once it has read it
      const dw = needRowDw ? uninitializedFloatArrayLike(xs, S) : null;
      const gradBytes = [...wList, wDown].reduce((n, t) => n + (t.requiresGrad ? t.size : 0), 0) * xs.BYTES_PER_ELEMENT;
      collectBeforeLargeOutputs(gradBytes);
      const dDownData = wDown.requiresGrad ? uninitializedFloatArrayLike(xs, E * H * I) : null;
      const firstRows = g.layout === 'separate' ? I : I2;
      const dFirstData = wList.map((wt) => (wt.requiresGrad ? uninitializedFloatArrayLike(xs, E * firstRows * H) : null));
      const da = needX ? (routing ? acquireScratch(xs, S * H) : uninitializedFloatArrayLike(xs, S * H)) : null;
      // dyh = dY · W_down_e  [S, I]   (dY rows = gradOut[token], unweighted)
      const dyhGemm = () => k.moeGemmRows(gs, rowTok, null, H, down, !g.outIn, H * I, downLdb, segOffsets, dyh, I, I, H, false);
      // dgu (gate/up grads, gu's layout), h recomputed into dyh, dw_r = <dyh_r, h_r>
      const swigluBackward = () => k.moeSwigluBackward(gu!, I2, goff, uoff, cs, S, I, dyh, rowW, dgu, dyh, dw);
      // the weight-gradient and dX GEMMs read only dY, h, x and dgu
      const lastGemms = () => {
        // dW_down_e = (w·dY_e)ᵀ h_e (out-in [H, I]) or h_eᵀ (w·dY_e) (in-out [I, H])
        if (dDownData) {
          if (g.outIn) k.moeGemmWgrad(gs, rowTok, rowW, H, hh, null, I, segOffsets, dDownData, H, I, false);
          else k.moeGemmWgrad(hh, null, rowW, I, gs, rowTok, H, segOffsets, dDownData, I, H, false);
        }
        // dW_first: columns of dgu <-> rows (out-in) / columns (in-out) of the first weight(s)
        dFirstData.forEach((d, idx) => {
          if (!d) return;
          const a = g.layout === 'separate' && idx === 1 ? dgu.subarray(I) : dgu;
          if (g.outIn) k.moeGemmWgrad(a, null, null, I2, xs, rowTok, H, segOffsets, d, firstRows, H, false);
          else k.moeGemmWgrad(xs, rowTok, null, H, a, null, I2, segOffsets, d, H, firstRows, false);
        });
        // dX rows = dgu · op(W_first_e)ᵀ (summed over each token's slots below)
        if (!da) return;
        if (g.layout === 'separate') {
          // [dG dU] · [W_gate; W_up] in one pass (the two weights stacked along K)
          const ldb = g.outIn ? H : I;
          k.moeGemmRowsStackedK(dgu, null, null, I2, first[0]!, first[1]!, I, !firstTrans, I * H, ldb, segOffsets, da, H, H, I2, false);
        } else {
          const ldb = g.outIn ? H : I2;
          k.moeGemmRows(dgu, null, null, I2, first[0]!, !firstTrans, I2 * H, ldb, segOffsets, da, H, H, I2, false);
        }
      };
      if (rowFusion) {
        // small experts: every pass on a block of rows while the block is in cache
        fusedRows(k, () => {
          // dyh is block-local; a block-local dgu, beside the gu rows it is read from, would
          // crowd the L2 (measured slower than in place)
          k.moeFuseLocal(dyh, I);
          dyhGemm();
          swigluBackward();
          lastGemms();
        });
      } else {
        dyhGemm();
        swigluBackward();
        batched(k, lastGemms); // one pass over the threads
      }
      const dDown = dDownData ? mk(wDown, dDownData) : null;
      const dFirst = wList.map((wt, idx) => (dFirstData[idx] ? mk(wt, dFirstData[idx]!) : null));
      let dx: Tensor | null = null;
      let dRouting: Tensor | null = null; // the top-k weights' gradient, or the router weight's
      if (router) {
        const st = router.state;
        const T = routing!.numTokens;
        const dxs = needX ? uninitializedFloatArrayLike(xs, T * H) : null;
        const dwr = router.weight.requiresGrad ? uninitializedFloatArrayLike(xs, st.numExperts * H) : null;
        const wr = router.weight.storage as FloatArray;
        if (needRowDw) {
          const aux = router.aux;
          st.kernels.routerLayerBackward(st.scores, st.lse, st.ids, dw, slotRow!, T, st.numExperts, st.topK, st.renorm, st.scale,
            aux?.lbCoef ?? null, aux?.zCoef ?? 0, dwr ? xs : null, dwr, dxs ? wr : null, dxs ? da : null, H, dxs);
        }
        if (da) releaseScratch(da);
        dx = dxs ? mk(x, dxs) : null;
        dRouting = dwr ? mk(router.weight, dwr) : null;
      } else if (da && routing) {
        const dxs = uninitializedFloatArrayLike(xs, routing.numTokens * H);
        k.moeCombine(da, H, slotRow!, null, routing.numTokens, routing.topK, H, dxs);
        releaseScratch(da);
        dx = mk(x, dxs);
      } else if (da) {
        dx = mk(x, da);
      }
      releaseScratch(dyh);
      releaseScratch(dgu);
      gu = null;
      if (needRowDw && !router) {
        const d = floatArrayLike(xs, routing!.numTokens * routing!.topK); // zeroed: dropped slots get 0
        const ss = routing!.plan.sortedSlots;
        for (let r = 0; r < S; r++) d[ss[r]!] = dw![r]!;
        dRouting = mk(routing!.topkWeights, d);
      }
      return [dx, ...(routing ? [dRouting] : []), ...dFirst, dDown];
    },
  });
  if (!result.gradFn && gu) {
    // no graph (no grad needed): nothing will read the pre-activations again
    releaseScratch(gu);
    gu = null;
  }
  return result;
}
