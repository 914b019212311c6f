// The slot plan of a routed fused call in one native pass (moePlanRoutes): dispatch.ts's
// planSlots (which stays the spec; test/moe-fused.test.ts holds the two together) plus the
// per-row maps the fused kernels read.
import { uninitializedFloatArrayLike } from '../../backend/types.js';
import type { FloatArray, MoeNativeKernels } from './native-moe.js';

export interface RoutePlan {
  /** E+1 offsets of the sorted rows. */
  segOffsets: Int32Array;
  /** [S] slot (t·K + k) of each sorted row. */
  sortedSlots: Int32Array;
  /** [S] token of each sorted row. */
  rowTokens: Int32Array;
  /** [T·K] sorted row of each slot, -1 when the slot was dropped. */
  slotRows: Int32Array;
  /** [S] combine weight of each sorted row. */
  rowWeights: FloatArray;
  /** Slots over their expert's capacity. */
  droppedSlots: number;
}

/** ids, weights: [T, K] flat; capacity null: dropless. */
export function planRoutes(k: MoeNativeKernels, ids: Int32Array, T: number, K: number, E: number, capacity: number | null, weights: FloatArray): RoutePlan {
  const n = T * K;
  const segOffsets = new Int32Array(E + 1);
  const sortedSlots = new Int32Array(n);
  const rowTokens = new Int32Array(n);
  const slotRows = new Int32Array(n);
  const rowWeights = uninitializedFloatArrayLike(weights, n);
  const S = k.moePlanRoutes(ids, T, K, E, capacity ?? -1, weights, segOffsets, sortedSlots, rowTokens, slotRows, rowWeights);
  return {
    segOffsets,
    sortedSlots: sortedSlots.subarray(0, S),
    rowTokens: rowTokens.subarray(0, S),
    slotRows,
    rowWeights: rowWeights.subarray(0, S),
    droppedSlots: n - S,
  };
}
