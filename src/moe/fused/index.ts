// Fused native fast paths of the MoE block (see fused-experts.ts); MOEKIT_MOE_FUSED=0 turns
// them off. Each entry returns null when it does not apply, and callers then run the
// reference composition.
import type { Tensor } from '../../tensor/tensor.js';
import type { Dispatcher, RouterOutput } from '../contracts.js';
import { LocalDispatcher } from '../dispatch.js';
import type { ExpertBank } from '../experts.js';
import { fusedKernelsFor, fusedSwigluExperts } from './fused-experts.js';
import type { FloatArray, MoeNativeKernels } from './native-moe.js';
import { planRoutes } from './route-plan.js';

export { fusedKernelsFor, fusedSwigluExperts, type FusedRouting } from './fused-experts.js';
export { fusedMoeEnabled, moeKernels, type MoeNativeKernels } from './native-moe.js';

/**
 * dispatch -> experts -> combine as one fused node, when the dispatcher is the plain
 * LocalDispatcher with weights on the output, and the bank / backend / dtypes are supported.
 */
export function tryFusedMoE(x2: Tensor, routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>, dispatcher: Dispatcher, bank: ExpertBank): { y: Tensor; droppedSlots: number } | null {
  const { topkIds, topkWeights } = routing;
  if (x2.ndim !== 2 || topkIds.ndim !== 2 || topkIds.shape[0] !== x2.shape[0] || topkWeights.shape.join() !== topkIds.shape.join()) return null;
  const fused = fusedDispatch(x2, dispatcher, bank, [topkWeights]);
  if (!fused) return null;
  const { k, local } = fused;
  const [T, K] = topkIds.shape as [number, number];
  const plan = planRoutes(k, topkIds.dataSync() as Int32Array, T, K, bank.numExperts, local.capacity(T, K), topkWeights.storage as FloatArray);
  const y = fusedSwigluExperts(k, x2, { numTokens: T, topK: K, plan, topkWeights }, bank, bank.cfg);
  return { y, droppedSlots: plan.droppedSlots };
}

/**
 * The kernels and the dispatcher, when it is the plain LocalDispatcher with weights on the output
 * and the fused experts cover the bank on x2 (extra: other tensors that must share x2's backend
 * and dtype); else null.
 */
export function fusedDispatch(x2: Tensor, dispatcher: Dispatcher, bank: ExpertBank, extra: Tensor[]): { k: MoeNativeKernels; local: LocalDispatcher } | null {
  if (!(dispatcher instanceof LocalDispatcher) || dispatcher.constructor !== LocalDispatcher || dispatcher.cfg.weightsOn !== 'output') return null;
  if (x2.ndim !== 2 || dispatcher.numExperts !== bank.numExperts || x2.shape[1] !== bank.hiddenSize) return null;
  const k = fusedKernelsFor(x2, bank, bank.cfg, extra);
  return k ? { k, local: dispatcher } : null;
}
