// dispatch -> experts -> combine on the 'device' path: LocalDispatcher's semantics (stable
// sort by expert, a capacity keeping each expert's first slots, weights on the output or the
// input) with the slot plan made and kept on the device (Backend.deviceMoe.planRoutes). The
// rows are sized for the worst case, T·K; padding rows past the last segment read token 0,
// have weight 0 and come out of the grouped GEMMs as 0, so they add nothing and get no
// gradient. Every step is an engine op or groupedMatmulOnDevice, so autograd needs no new node.
import type { DeviceMoeKernels } from '../../backend/moe.js';
import { Tensor } from '../../tensor/tensor.js';
import { mul } from '../../ops/elementwise.js';
import { indexAdd, indexSelect } from '../../ops/indexing.js';
import { sum } from '../../ops/reduce.js';
import { reshape } from '../../ops/shape.js';
import type { RouterOutput } from '../contracts.js';
import type { LocalDispatcher } from '../dispatch.js';
import type { ExpertBank } from '../experts.js';
import { fullLike } from '../tensors.js';

export interface DeviceExpertsResult {
  /** [T, H] the routed experts' combined output. */
  y: Tensor;
  /** Scalar: slots kept (T·K minus the dropped ones), on the device. */
  keptSlots: Tensor;
}

/**
 * The routed experts on x2 [T, H] for routing [T, K]; slotScale [T, K] (or null) scales each
 * slot's output before the combine (the topology's coefficients when weights went on the input).
 */
export function deviceRoutedExperts(
  k: DeviceMoeKernels,
  dispatcher: LocalDispatcher,
  x2: Tensor,
  routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>,
  bank: ExpertBank,
  slotScale: Tensor | null,
): DeviceExpertsResult {
  const { topkIds, topkWeights } = routing;
  const [T, K] = topkIds.shape as [number, number];
  const H = x2.shape[1]!;
  const E = dispatcher.numExperts;
  const S = T * K;
  const be = x2.backend;
  const plan = k.planRoutes(topkIds.storage, T, K, E, dispatcher.capacity(T, K));
  const i32 = (s: typeof plan.seg, n: number) => new Tensor(s, [n], be);
  const rowSlots = i32(plan.rowSlots, S);
  const rowTokens = i32(plan.rowTokens, S);
  const rowValid = new Tensor(plan.rowValid, [S], be).to(x2.dtype);
  const rowWeights = mul(indexSelect(reshape(topkWeights, [S]), 0, rowSlots).to(x2.dtype), rowValid);
  const column = (v: Tensor) => reshape(v, [S, 1]);

  let rows = indexSelect(x2, 0, rowTokens);
  if (dispatcher.cfg.weightsOn === 'input') rows = mul(rows, column(rowWeights));
  let out = bank.forward(rows, {
    numExperts: E,
    numRows: S,
    segOffsets: new Int32Array(0),
    rowsPerExpert: new Int32Array(0),
    rowExperts: i32(plan.rowExperts, S),
    deviceSegOffsets: i32(plan.seg, E + 1),
  });
  if (slotScale) out = mul(out, column(indexSelect(reshape(slotScale, [S]), 0, rowSlots).to(out.dtype)));
  // padding rows carry expert biases: the weight (or validity) zeroes them before the combine
  const contrib = mul(out, column(dispatcher.cfg.weightsOn === 'output' ? rowWeights : rowValid));
  const y = indexAdd(fullLike(out, [T, H], 0), 0, rowTokens, contrib);
  return { y, keptSlots: sum(rowValid) };
}
