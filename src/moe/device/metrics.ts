// MoELayer's metrics on the 'device' path: the forward keeps the tensors they come from
// (counts, scores, kept slots, the aux losses' values) and `await layer.readMetrics()` reads
// them when a caller logs, so a forward never waits for the GPU.
import type { Tensor } from '../../tensor/tensor.js';
import { type MoEMetrics, countMetrics, meanRowEntropy } from '../metrics.js';

export interface PendingMetrics {
  counts: Tensor;
  scores: Tensor;
  /** Scalar: slots kept after capacity. */
  keptSlots: Tensor;
  numTokens: number;
  topK: number;
  numExperts: number;
  lb: Tensor | null;
  z: Tensor | null;
  /** The loss weights, or null when this forward computed no aux losses. */
  weights: { lb: number; z: number } | null;
}

/** The metrics of one forward from its pending tensors (reads them, asynchronously). */
export async function readPendingMetrics(p: PendingMetrics): Promise<MoEMetrics & { droppedSlots: number }> {
  const one = async (t: Tensor | null) => (t ? (await t.data())[0]! : null);
  const [counts, scores, kept, lb, z] = await Promise.all([p.counts.data(), p.scores.data(), one(p.keptSlots), one(p.lb), one(p.z)]);
  const slots = p.numTokens * p.topK;
  const droppedSlots = slots - kept!;
  const w = p.weights;
  return {
    tokensPerExpert: Int32Array.from(counts),
    ...countMetrics(counts),
    routerEntropy: meanRowEntropy(scores, p.numTokens, p.numExperts),
    droppedFraction: slots > 0 ? droppedSlots / slots : 0,
    lbLoss: lb,
    lbLossScaled: w ? (lb ?? 0) * w.lb : null,
    zLoss: z,
    zLossScaled: w ? (z ?? 0) * w.z : null,
    droppedSlots,
  };
}
