// Reference sort-based dispatch: histogram of expert ids, STABLE sort of the T·K slots,
// gather into expert-contiguous rows, and a weighted scatter-add back (combine).
// Dropless by default; with a capacity factor each expert keeps its first `capacity` slots in
// sorted (= slot) order and drops the rest (OLMo-core), whatever their weights.
import type { Tensor } from '../tensor/tensor.js';
import { shapeToString } from '../tensor/shape.js';
import { mul } from '../ops/elementwise.js';
import { indexAdd, indexSelect } from '../ops/indexing.js';
import { reshape } from '../ops/shape.js';
import type { DispatchConfig } from './config.js';
import { arrayLike, fullLike } from './tensors.js';
import type { DispatchMetadata, DispatchResult, Dispatcher, ExpertExecutionMetadata, RouterOutput } from './contracts.js';

/** OLMo-core's capacity: multiple·ceil(int(cf·K·T/E) / multiple). */
export function expertCapacity(capacityFactor: number, topK: number, numTokens: number, numExperts: number, multiple = 8): number {
  const raw = Math.trunc((capacityFactor * topK * numTokens) / numExperts);
  return multiple * Math.ceil(raw / multiple);
}

/** The slot layout alone (index math, no tensors): what dispatch and the fused kernels share. */
export interface SlotPlan {
  /** Kept slots in expert-contiguous order. */
  sortedSlots: Int32Array;
  /** E+1 offsets into sortedSlots. */
  segOffsets: Int32Array;
  rowsPerExpert: Int32Array;
  droppedSlots: Int32Array;
}

/**
 * Counting sort of the slots by expert id: stable, so within an expert slots keep ascending
 * slot order (token-major); a capacity keeps the first `capacity` of each expert.
 */
export function planSlots(ids: ArrayLike<number>, numExperts: number, capacity: number | null): SlotPlan {
  const n = ids.length;
  const counts = new Int32Array(numExperts);
  for (let s = 0; s < n; s++) {
    const e = ids[s]!;
    if (!(e >= 0 && e < numExperts)) throw new RangeError(`dispatch: expert id ${e} at slot ${s} is outside [0, ${numExperts})`);
    counts[e]!++;
  }
  const rowsPerExpert = counts.map((c) => (capacity === null ? c : Math.min(c, capacity)));
  const segOffsets = new Int32Array(numExperts + 1);
  for (let e = 0; e < numExperts; e++) segOffsets[e + 1] = segOffsets[e]! + rowsPerExpert[e]!;
  const sortedSlots = new Int32Array(segOffsets[numExperts]!);
  const dropped: number[] = [];
  const fill = new Int32Array(numExperts);
  for (let s = 0; s < n; s++) {
    const e = ids[s]!;
    if (fill[e]! < rowsPerExpert[e]!) sortedSlots[segOffsets[e]! + fill[e]!++] = s;
    else dropped.push(s);
  }
  return { sortedSlots, segOffsets, rowsPerExpert, droppedSlots: Int32Array.from(dropped) };
}

export class LocalDispatcher implements Dispatcher {
  constructor(
    readonly numExperts: number,
    readonly cfg: DispatchConfig,
    /** A per-expert capacity set by whoever planned the tokens (a parallel plan: over all ranks' tokens); default: from cfg and T. */
    readonly fixedCapacity?: number | null,
  ) {}

  /** Per-expert capacity for T tokens with K slots each (null when dropless). */
  capacity(T: number, K: number): number | null {
    if (this.fixedCapacity !== undefined) return this.fixedCapacity;
    return this.cfg.capacityFactor === null
      ? null
      : expertCapacity(this.cfg.capacityFactor, K, T, this.numExperts, this.cfg.capacityMultiple);
  }

  /** The slot layout dispatch uses for these [T, K] expert ids (the fused kernels share it). */
  plan(topkIds: Tensor): SlotPlan {
    const [T, K] = topkIds.shape as [number, number];
    return planSlots(topkIds.dataSync(), this.numExperts, this.capacity(T, K));
  }

  dispatch(x: Tensor, routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>): DispatchResult {
    const { topkIds, topkWeights } = routing;
    if (x.ndim !== 2 || topkIds.ndim !== 2 || topkIds.shape[0] !== x.shape[0] || topkWeights.shape.join() !== topkIds.shape.join()) {
      throw new RangeError(
        `dispatch: x ${shapeToString(x.shape)}, topkIds ${shapeToString(topkIds.shape)}, topkWeights ${shapeToString(topkWeights.shape)} must be [T, H], [T, K], [T, K]`,
      );
    }
    const [T, K] = topkIds.shape as [number, number];
    const E = this.numExperts;
    const capacity = this.capacity(T, K);
    const plan = this.plan(topkIds);

    const S = plan.sortedSlots.length;
    const tok = new Int32Array(S);
    const exp = new Int32Array(S);
    for (let e = 0; e < E; e++) {
      for (let r = plan.segOffsets[e]!; r < plan.segOffsets[e + 1]!; r++) {
        tok[r] = Math.floor(plan.sortedSlots[r]! / K);
        exp[r] = e;
      }
    }
    const i32 = (a: Int32Array) => arrayLike(x, a);
    const sortedSlots = i32(plan.sortedSlots);
    const rowTokens = i32(tok);
    const rowExperts = i32(exp);
    const rowWeights = indexSelect(reshape(topkWeights, [T * K]), 0, sortedSlots);

    let rows = indexSelect(x, 0, rowTokens);
    if (this.cfg.weightsOn === 'input') rows = mul(rows, reshape(rowWeights.to(rows.dtype), [S, 1]));

    const meta: DispatchMetadata = {
      numTokens: T,
      topK: K,
      numExperts: E,
      sortedSlots,
      rowTokens,
      rowExperts,
      rowWeights,
      droppedSlots: plan.droppedSlots,
      capacity,
      weightsOn: this.cfg.weightsOn,
    };
    const exec: ExpertExecutionMetadata = {
      numExperts: E,
      numRows: S,
      segOffsets: plan.segOffsets,
      rowsPerExpert: plan.rowsPerExpert,
      rowExperts,
    };
    return { rows, meta, exec };
  }

  combine(rowOutputs: Tensor, meta: DispatchMetadata): Tensor {
    const S = meta.rowTokens.size;
    if (rowOutputs.ndim !== 2 || rowOutputs.shape[0] !== S) {
      throw new RangeError(`combine: rowOutputs must be [S=${S}, H] (got ${shapeToString(rowOutputs.shape)})`);
    }
    const H = rowOutputs.shape[1]!;
    const contrib = meta.weightsOn === 'output' ? mul(rowOutputs, reshape(meta.rowWeights.to(rowOutputs.dtype), [S, 1])) : rowOutputs;
    return indexAdd(fullLike(rowOutputs, [meta.numTokens, H], 0), 0, meta.rowTokens, contrib);
  }
}
