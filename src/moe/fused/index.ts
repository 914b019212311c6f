// Fused native fast paths of the MoE block (see fused-experts.ts); MOEKIT_MOE_FUSED=0 turns
// them off. Each entry returns null when it does not apply, and callers then run the
// reference composition.
import type { Tensor } from '../../tensor/tensor.js';
import type { Dispatcher, RouterOutput } from '../contracts.js';
import { LocalDispatcher } from '../dispatch.js';
import type { ExpertBank } from '../experts.js';
import { fusedKernelsFor, fusedSwigluExperts } from './fused-experts.js';

export { fusedKernelsFor, fusedSwigluExperts, type FusedRouting } from './fused-experts.js';
export { fusedMoeEnabled, moeKernels, type MoeNativeKernels } from './native-moe.js';

/**
 * dispatch -> experts -> combine as one fused node, when the dispatcher is the plain
 * LocalDispatcher with weights on the output, and the bank / backend / dtypes are supported.
 */
export function tryFusedMoE(x2: Tensor, routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>, dispatcher: Dispatcher, bank: ExpertBank): { y: Tensor; droppedSlots: Int32Array } | null {
  if (!(dispatcher instanceof LocalDispatcher) || dispatcher.constructor !== LocalDispatcher || dispatcher.cfg.weightsOn !== 'output') return null;
  const { topkIds, topkWeights } = routing;
  if (x2.ndim !== 2 || topkIds.ndim !== 2 || topkIds.shape[0] !== x2.shape[0] || topkWeights.shape.join() !== topkIds.shape.join()) return null;
  if (dispatcher.numExperts !== bank.numExperts || x2.shape[1] !== bank.hiddenSize) return null;
  const k = fusedKernelsFor(x2, bank, bank.cfg, [topkWeights]);
  if (!k) return null;
  const [T, K] = topkIds.shape as [number, number];
  const plan = dispatcher.plan(topkIds);
  const y = fusedSwigluExperts(k, x2, plan.segOffsets, { numTokens: T, topK: K, segOffsets: plan.segOffsets, sortedSlots: plan.sortedSlots, topkWeights }, bank, bank.cfg);
  return { y, droppedSlots: plan.droppedSlots };
}
