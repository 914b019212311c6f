// The load-balancing loss of the 'device' path: from the router's [E] counts tensor (made on
// the device) instead of the top-k ids read on the host; equal to losses.ts's
// loadBalancingLoss for 'local-batch' granularity without a mask or accumulated frequencies.
import type { Tensor } from '../../tensor/tensor.js';
import { div, mul } from '../../ops/elementwise.js';
import { sum } from '../../ops/reduce.js';
import type { LbConvention } from '../config.js';

/** c·E·Σ_e f_e·P_e with f_e = counts_e / T, P_e = mean_t scores[t, e]; c = 1 ('top-k') or 1/K ('one'). scores [T, E], counts [E]. */
export function loadBalancingLossFromCounts(
  scores: Tensor,
  counts: Tensor,
  topK: number,
  opts: { convention: LbConvention; normalizeScores: boolean },
): Tensor {
  const [T, E] = scores.shape as [number, number];
  const c = (opts.convention === 'one' ? 1 / topK : 1) * E;
  const p = opts.normalizeScores ? div(scores, sum(scores, -1, true)) : scores;
  // Σ_e coef_e · Σ_t p[t, e] with coef_e = c · counts_e / T², as loadBalancingLoss orders it
  const coef = mul(counts.to(scores.dtype), c / Math.max(T * T, 1));
  return sum(mul(sum(p, 0), coef));
}
