// The fused router kernels of the native addon (native/router.c; its header comment has the
// exact semantics).
import { addonKernels } from '../../backend/native/addon.js';
import type { FloatArray } from './native-moe.js';

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
  routerBackward(
    scores: FloatArray,
    lse: FloatArray,
    ids: Int32Array,
    dweights: FloatArray | null,
    t: number,
    e: number,
    k: number,
    renorm: boolean,
    scale: number,
    lbCoef: Float64Array | null,
    zCoef: number,
    dlogits: FloatArray,
  ): void;
}

/** The kernels, or null when the addon is missing or predates them. */
export const routerKernels = addonKernels<RouterNativeKernels>(['routerForward', 'routerBackward']);
