// One layer's routing in one forward, as the recorder keeps it and a recording file holds it
// (recording-file.ts), and the recording's JSON index. No Node imports: the dashboard page reads indexes too.

export interface RoutingRecord {
  /** The layer's module name in the model ('' for a model that is itself the layer). */
  layer: string;
  /** The layer's forward count since the recorder attached (0-based). */
  call: number;
  /** The recorder's step when it ran (set by the training loop), or null. */
  step: number | null;
  numTokens: number;
  topK: number;
  numExperts: number;
  /** Tokens whose choice is kept (the first ones): numTokens unless the recorder samples tokens; only whole records replay. */
  tokensKept: number;
  /** [tokensKept, topK] chosen experts, per token in selection order (-1: an empty expert-choice slot). */
  ids: Int32Array;
  /** [tokensKept, topK] their combine weights, in the layer's dtype. */
  weights: Float32Array | Float64Array;
  /** [numExperts] slots routed to each expert (before capacity drops). */
  counts: Int32Array;
  droppedSlots: number;
  /** Mean over tokens of the router's score entropy (nats). */
  routerEntropy: number;
  /** Entropy of the slot counts over experts (log numExperts at balance). */
  usageEntropy: number;
  /** max(counts) / mean(counts). */
  loadImbalance: number;
  deadExperts: number;
  /** The aux-loss-free selection bias in effect (DeepSeek-V3 style), or null. */
  bias: Float32Array | null;
}

export const RECORDING_FORMAT = 'moekit-routing-recording';

export type RoutingRecordScalars = Omit<RoutingRecord, 'ids' | 'weights' | 'counts' | 'bias'>;

export interface RoutingRecordingIndex {
  format: typeof RECORDING_FORMAT;
  version: 1;
  /** The tensor file, next to the index. */
  tensors: string;
  records: (RoutingRecordScalars & { counts: number[]; hasBias: boolean })[];
}
