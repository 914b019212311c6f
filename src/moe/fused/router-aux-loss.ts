// The router aux losses on the fused router path: wlb·LB + wz·Z as ONE scalar autograd node on
// the logits. Values come from the fused forward's sums (no pass over the scores); the backward
// is one native pass. Covers the unmasked LB with f_e from this batch (local-batch) or given
// (global-batch); losses.ts (loadBalancingLoss, zLoss) stays the spec.
import type { LbConvention } from '../config.js';
import { floatArrayLike } from '../../backend/types.js';
import { Tensor, makeOutput } from '../../tensor/tensor.js';
import type { FusedRouterState } from './router.js';
import type { FloatArray } from './native-moe.js';

export interface FusedAuxLossOptions {
  weights: { lb: number; z: number };
  convention: LbConvention;
  /** Global-batch f_e (slots per token, Σ f = K); null: f_e = this batch's counts / T. */
  frequencies: Float64Array | null;
}

export interface FusedAuxLosses {
  /** wlb·LB + wz·Z (terms with weight 0 left out), or null when both weights are 0. */
  total: Tensor | null;
  lb: number | null;
  z: number | null;
}

/** d(wlb·LB + wz·Z)/d(logits) for a seed g, as routerBackward's lbCoef and zCoef. */
export interface FusedAuxGradient {
  lbCoef: Float64Array | null;
  zCoef: number;
}

/** The two losses' values, their weighted total, and its gradient coefficients for a seed of g. */
export function fusedAuxLossTerms(s: FusedRouterState, o: FusedAuxLossOptions): { lb: number | null; z: number | null; value: number; gradient: (g: number) => FusedAuxGradient } | null {
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

export function fusedRouterAuxLoss(s: FusedRouterState, o: FusedAuxLossOptions): FusedAuxLosses {
  const terms = fusedAuxLossTerms(s, o);
  if (!terms) return { total: null, lb: null, z: null };
  const { numTokens: T, numExperts: E, topK: K, logits } = s;
  const b = logits.backend;
  const like = (n: number): FloatArray => floatArrayLike(s.scores, n);
  const out = like(1);
  out[0] = terms.value;
  const total = makeOutput(b, out, [], {
    name: 'fusedRouterAuxLoss',
    inputs: [logits],
    backward: (g) => {
      const { lbCoef, zCoef } = terms.gradient(g.item());
      const dlogits = like(T * E);
      s.kernels.routerBackward(s.scores, s.lse, s.ids, null, T, E, K, false, 1, lbCoef, zCoef, dlogits);
      return [new Tensor(dlogits, logits.shape, b)];
    },
  });
  return { total, lb: terms.lb, z: terms.z };
}
