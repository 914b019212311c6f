// The router aux losses after the router pass kernel: wlb·LB + wz·Z as ONE scalar autograd node
// on the logits. Values come from the pass's sums (no pass over the scores); the backward is one
// routerBackward kernel call. Covers the unmasked LB with f_e from this batch (local-batch) or given
// (global-batch); losses.ts (loadBalancingLoss, zLoss) stays the spec.
import type { LbConvention } from '../config.js';
import { floatArrayLike } from '../../backend/types.js';
import { Tensor, makeOutput } from '../../tensor/tensor.js';
import type { RouterPassState } from '../contracts.js';

export interface AuxLossOptions {
  weights: { lb: number; z: number };
  convention: LbConvention;
  /** Global-batch f_e (slots per token, Σ f = K); null: f_e = this batch's counts / T. */
  frequencies: Float64Array | null;
}

export interface AuxLossNode {
  /** wlb·LB + wz·Z (terms with weight 0 left out), or null when both weights are 0. */
  total: Tensor | null;
  lb: number | null;
  z: number | null;
}

/** d(wlb·LB + wz·Z)/d(logits) for a seed g, as routerBackward's lbCoef and zCoef. */
export interface AuxLossGradient {
  lbCoef: Float64Array | null;
  zCoef: number;
}

/** The two losses' values, their weighted total, and its gradient coefficients for a seed of g. */
export function routerPassAuxTerms(
  s: RouterPassState,
  o: AuxLossOptions,
): { lb: number | null; z: number | null; value: number; gradient: (g: number) => AuxLossGradient } | null {
  const { numTokens: T, numExperts: E, topK: K } = s;
  const wlb = o.weights.lb;
  const wz = o.weights.z;
  if (!(wlb > 0) && !(wz > 0)) return null;
  // LB = Σ_e coef_e · Σ_t scores[t, e],  coef_e = c·f_e / T  (losses.ts)
  const c = (o.convention === 'one' ? 1 / K : 1) * E;
  const coef = new Float64Array(E);
  let lb = 0;
  for (let e = 0; e < E && T > 0; e++) {
    const f = o.frequencies ? o.frequencies[e]! : s.counts[e]! / T;
    coef[e] = (c * f) / T;
    lb += coef[e]! * s.scoreSums[e]!;
  }
  return {
    lb: wlb > 0 ? lb : null,
    z: wz > 0 ? s.zLoss : null,
    value: (wlb > 0 ? wlb * lb : 0) + (wz > 0 ? wz * s.zLoss : 0),
    gradient: (g) => ({ lbCoef: wlb > 0 ? coef.map((v) => v * wlb * g) : null, zCoef: wz > 0 ? (wz * g) / Math.max(T, 1) : 0 }),
  };
}

export function routerPassAuxLoss(s: RouterPassState, o: AuxLossOptions): AuxLossNode {
  const terms = routerPassAuxTerms(s, o);
  if (!terms) return { total: null, lb: null, z: null };
  const { logits } = s;
  const b = logits.backend;
  const out = floatArrayLike(s.scores as Float32Array | Float64Array, 1);
  out[0] = terms.value;
  const total = makeOutput(b, out, [], {
    name: 'routerAuxLoss',
    inputs: [logits],
    backward: (g) => {
      const { lbCoef, zCoef } = terms.gradient(g.item());
      return [new Tensor(s.kernels.routerBackward({ ...s, renorm: false, scale: 1, lbCoef, zCoef }, null), logits.shape, b)];
    },
  });
  return { total, lb: terms.lb, z: terms.z };
}
