// OLMo-core's router losses with its loss_div_factor (olmo_core/nn/moe/loss.py): the divisor
// that replaces the local token count B·S, e.g. the number of real tokens across micro-batches.
//   load balancing, local_batch: (E/K) · Σ_e c_e · mean_t(scores[t, e]) / div
//   load balancing, instance:    (E/K) · Σ_b Σ_e c_{b,e} · mean_{t in b}(scores[t, e]) / div
//   router z-loss:               Σ_t logsumexp(logits_t)² / div
// (sigmoid routers' scores are renormalised per token for the LB loss). With div = B·S these are
// moekit's 'one'-convention loss and zLoss, so the functions rescale those by B·S / div.
import { mul } from '../../ops/elementwise.js';
import type { Tensor } from '../../tensor/tensor.js';
import { loadBalancingLoss, zLoss } from '../losses.js';

export interface OlmoCoreLbOptions {
  granularity?: 'local_batch' | 'instance';
  /** Sequences B in the batch (T = B·S); needed for 'instance'. */
  batchSize?: number;
  /** Divisor in place of B·S (OLMo-core loss_div_factor); default B·S. */
  lossDivFactor?: number | null;
  /** The router's gating is sigmoid (scores renormalised per token for this loss). */
  sigmoid?: boolean;
}

function divisorScale(T: number, lossDivFactor: number | null | undefined): number {
  if (lossDivFactor == null) return 1;
  if (!(lossDivFactor > 0) || !Number.isFinite(lossDivFactor))
    throw new RangeError(`lossDivFactor = ${lossDivFactor} is invalid: expected a finite number > 0`);
  return T / lossDivFactor;
}

/** scores [T, E], topkIds [T, K] i32; differentiable in scores. */
export function olmoCoreLoadBalancingLoss(scores: Tensor, topkIds: Tensor, opts: OlmoCoreLbOptions = {}): Tensor {
  const T = scores.shape[0]!;
  const lb = loadBalancingLoss(scores, topkIds, {
    convention: 'one',
    granularity: opts.granularity === 'instance' ? 'instance' : 'local-batch',
    batchSize: opts.batchSize,
    normalizeScores: opts.sigmoid ?? false,
  });
  return mul(lb, divisorScale(T, opts.lossDivFactor));
}

/** logits [T, E]; differentiable. */
export function olmoCoreRouterZLoss(logits: Tensor, lossDivFactor?: number | null): Tensor {
  return mul(zLoss(logits), divisorScale(logits.shape[0]!, lossDivFactor));
}
