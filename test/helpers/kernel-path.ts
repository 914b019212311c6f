// The experts node on a routing, as MoELayer's 'kernels' path runs it, when the execution plan
// lets the backend's kernels cover the bank on x (else null).
import type { Tensor } from '../../src/tensor/tensor.js';
import type { RouterOutput } from '../../src/moe/contracts.js';
import type { LocalDispatcher } from '../../src/moe/dispatch.js';
import type { ExpertBank } from '../../src/moe/experts.js';
import { bankKernels } from '../../src/moe/execution/plan.js';
import { routedExperts } from '../../src/moe/kernel-path/layer-node.js';

export function kernelExperts(
  x: Tensor,
  routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>,
  disp: LocalDispatcher,
  bank: ExpertBank,
): { y: Tensor; droppedSlots: number } | null {
  const k = bankKernels(x, bank, bank.cfg);
  return k ? routedExperts(k, x, routing, disp, bank) : null;
}
