// The contracts between router, dispatcher and experts (after Diffulex's RouterMetadata,
// DispatchMetadata and ExpertExecutionMetadata), so dispatchers can be swapped freely.
import type { MoeKernels, RouterShape } from '../backend/moe.js';
import type { Storage } from '../backend/types.js';
import { Tensor } from '../tensor/tensor.js';

/** What a router hands on. T tokens, E experts, K slots per token; slot s = t·K + k. */
export interface RouterOutput {
  /** [T, E] router logits (fp32 or wider, differentiable); z-loss reads these. */
  logits: Tensor;
  /** [T, E] score function of the logits (softmax | sigmoid), differentiable; LB loss reads these. */
  scores: Tensor;
  /** [T, K] i32 chosen experts, per token in descending order of selection score. */
  topkIds: Tensor;
  /** [T, K] combine weights (never include a selection bias), differentiable. */
  topkWeights: Tensor;
  /** [E] i32 number of slots routed to each expert (before any capacity drop). */
  counts: Tensor;
  /** [T, G] the group scores a group-limited router ranked the groups by (DeepSeek-V3), else absent; not differentiable. */
  groupScores?: Tensor;
  /** Set when the backend's router pass kernel made this output: what it saved (the aux losses, metrics and the layer node read it). */
  pass?: RouterPassState;
}

/** The router pass kernel's forward results (kernel-path/router-pass.ts). */
export interface RouterPassState extends RouterShape {
  readonly kernels: MoeKernels;
  readonly logits: Tensor;
  readonly scores: Storage;
  readonly ids: Int32Array;
  readonly lse: Storage;
  readonly counts: Int32Array;
  /** [E] Σ_t scores[t, e]. */
  readonly scoreSums: Float64Array;
  /** Mean over tokens of the entropy of the scores (metrics.ts meanRowEntropy). */
  readonly entropy: number;
  /** Mean over tokens of logsumexp(logits)², the unweighted z-loss. */
  readonly zLoss: number;
}

/**
 * Diffulex's RouterMetadata (frozen): what an expert-parallel dispatcher needs of the routing.
 * Build one from a router's output with RouterMetadata.fromTopkOutput, or an empty one (0 tokens)
 * for an idle rank that must still join the collectives with RouterMetadata.empty.
 */
export interface RouterMetadata {
  /** [T, E] */
  readonly routerLogits: Tensor;
  /** [T, K] i32 */
  readonly topkIds: Tensor;
  /** [T, K] */
  readonly topkWeights: Tensor;
}

export const RouterMetadata = {
  /** 0 tokens: logits [0, E] and weights [0, K] in `hidden`'s dtype and backend, ids [0, K] i32 filled with -1. */
  empty(hidden: Tensor, numExperts: number, topK: number): RouterMetadata {
    if (!Number.isInteger(numExperts) || numExperts < 1)
      throw new RangeError(`RouterMetadata.empty: numExperts = ${numExperts} is invalid: expected an integer >= 1`);
    if (!Number.isInteger(topK) || topK < 1)
      throw new RangeError(`RouterMetadata.empty: topK = ${topK} is invalid: expected an integer >= 1`);
    const b = hidden.backend;
    return Object.freeze({
      routerLogits: new Tensor(b.full(hidden.dtype, 0, 0), [0, numExperts], b),
      topkIds: new Tensor(b.full('i32', 0, -1), [0, topK], b),
      topkWeights: new Tensor(b.full(hidden.dtype, 0, 0), [0, topK], b),
    });
  },
  /** From a router's output (moekit's RouterOutput, or Diffulex's TopKOutput fields weights / ids / routerLogits). */
  fromTopkOutput(
    out: Pick<RouterOutput, 'logits' | 'topkIds' | 'topkWeights'> | { weights: Tensor; ids: Tensor; routerLogits: Tensor },
  ): RouterMetadata {
    return 'routerLogits' in out
      ? Object.freeze({ routerLogits: out.routerLogits, topkIds: out.ids, topkWeights: out.weights })
      : Object.freeze({ routerLogits: out.logits, topkIds: out.topkIds, topkWeights: out.topkWeights });
  },
};

/** How dispatch laid the slots out; combine and the metrics read it. S = kept slots. */
export interface DispatchMetadata {
  numTokens: number;
  topK: number;
  numExperts: number;
  /** [S] i32 slot ids (t·K + k) in expert-contiguous order (a stable sort by expert id). */
  sortedSlots: Tensor;
  /** [S] i32 token of each dispatched row. */
  rowTokens: Tensor;
  /** [S] i32 expert of each dispatched row. */
  rowExperts: Tensor;
  /** [S] combine weight of each row (differentiable; taken from topkWeights). */
  rowWeights: Tensor;
  /** Slots dropped by capacity, ascending (empty when dropless). */
  droppedSlots: Int32Array;
  /** Per-expert capacity, or null when dropless. */
  capacity: number | null;
  /** Whether rows were scaled by their weight at dispatch (Llama-4) instead of at combine. */
  weightsOn: 'output' | 'input';
}

/** What an expert bank needs to run its rows: one contiguous segment per expert. */
export interface ExpertExecutionMetadata {
  numExperts: number;
  numRows: number;
  /** E+1 row offsets: expert e owns rows [segOffsets[e], segOffsets[e+1]). */
  segOffsets: Int32Array;
  /** [E] rows per expert (after drops). */
  rowsPerExpert: Int32Array;
  /** [S] i32 expert of each row (for per-expert biases). */
  rowExperts: Tensor;
  /**
   * On the execution plan's 'device' path: the [E+1] i32 offsets as a device tensor; the rows
   * are then sized for the worst case (rows past the last offset are padding) and segOffsets /
   * rowsPerExpert are empty.
   */
  deviceSegOffsets?: Tensor;
}

export interface DispatchResult {
  /** [S, H] the inputs of the kept slots, expert-contiguous. */
  rows: Tensor;
  meta: DispatchMetadata;
  exec: ExpertExecutionMetadata;
}

/** Local, capacity-limited and (later) expert-parallel dispatchers implement this. */
export interface Dispatcher {
  /** x [T, H] and the router's choice -> expert-contiguous rows. */
  dispatch(x: Tensor, routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>): DispatchResult;
  /** Expert outputs [S, H'] back to tokens [T, H'] (weighted unless weights went on the input). */
  combine(rowOutputs: Tensor, meta: DispatchMetadata): Tensor;
}
