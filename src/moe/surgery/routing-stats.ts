// How a layer routes a sample of inputs: slots and summed routing weight per expert.
import { noGrad } from '../../tensor/autograd.js';
import type { Tensor } from '../../tensor/tensor.js';
import { reshape } from '../../ops/shape.js';
import type { MoELayer } from '../layer.js';
import { route } from '../router.js';

export interface RoutingStats {
  /** [E] slots routed to each expert. */
  counts: Float64Array;
  /** [E] sum of the routing weights each expert received. */
  weightSums: Float64Array;
  tokens: number;
}

/** Route every input ([..., H]) through the layer's router (no jitter, no gradient) and tally. */
export function collectRoutingStats(layer: MoELayer, inputs: readonly Tensor[]): RoutingStats {
  const E = layer.cfg.router.numExperts;
  const stats: RoutingStats = { counts: new Float64Array(E), weightSums: new Float64Array(E), tokens: 0 };
  noGrad(() => {
    for (const x of inputs) {
      const x2 = reshape(x, [-1, layer.cfg.hiddenSize]);
      const r = route(x2, layer.routerWeight, layer.routerBias, layer.cfg.router, { selectionBias: layer.selectionBias?.bias ?? null });
      const ids = r.topkIds.dataSync();
      const w = r.topkWeights.dataSync();
      for (let i = 0; i < ids.length; i++) {
        const e = ids[i]!;
        if (e < 0) continue; // expert choice: an empty slot
        stats.counts[e]!++;
        stats.weightSums[e]! += w[i]!;
      }
      stats.tokens += x2.shape[0]!;
    }
  });
  return stats;
}
