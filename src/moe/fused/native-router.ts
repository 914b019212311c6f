// The fused router kernels of the native addon (native/moe/router.c; its header comment has the
// exact semantics).
import { addonKernels } from '../../backend/native/addon.js';
import type { FloatArray } from './native-moe.js';

/** The shape and the terms both router backwards take: the weights' renorm and scaling, and the aux losses' coefficients. */
type BackwardTerms = [t: number, e: number, k: number, renorm: boolean, scale: number, lbCoef: Float64Array | null, zCoef: number];

export interface RouterNativeKernels {
  /** softmax, top-k, gathered (renormalised, scaled) weights, logsumexp, counts; sums = [Σ_t scores[t, e] for e, Σ_t entropy_t, Σ_t lse_t²]. */
  routerForward(
    logits: FloatArray,
    t: number,
    e: number,
    k: number,
    renorm: boolean,
    scale: number,
    scores: FloatArray,
    ids: Int32Array,
    weights: FloatArray,
    lse: FloatArray,
    counts: Int32Array,
    sums: Float64Array,
  ): void;
  /** dlogits of <dweights, weights> + Σ lbCoef[e]·scores[t, e] + zCoef·Σ lse_t². */
  routerBackward(...args: [scores: FloatArray, lse: FloatArray, ids: Int32Array, dweights: FloatArray | null, ...BackwardTerms, dlogits: FloatArray]): void;
  /**
   * The router's part of a fused MoE layer's backward: dlogits (kept internally) as
   * routerBackward with dweights[s] = rowDw[slotRow[s]] (0 for a dropped slot); then
   * dwr [e, h] = dlogitsᵀ·x and dx [t, h] = Σ_k rowDx[slotRow[t·K+k]] + dlogits·wr (null: skipped).
   */
  routerLayerBackward(
    ...args: [
      scores: FloatArray,
      lse: FloatArray,
      ids: Int32Array,
      rowDw: FloatArray | null,
      slotRow: Int32Array,
      ...BackwardTerms,
      x: FloatArray | null,
      dwr: FloatArray | null,
      wr: FloatArray | null,
      rowDx: FloatArray | null,
      h: number,
      dx: FloatArray | null,
    ]
  ): void;
}

/** The kernels, or null when the addon is missing or predates them. */
export const routerKernels = addonKernels<RouterNativeKernels>(['routerForward', 'routerBackward', 'routerLayerBackward']);
