// Diffulex's dispatcher contracts (diffulex.moe.metadata / dispatcher), field for field.
// moekit's own DispatchMetadata (src/moe/contracts.ts) describes the LOCAL slot layout; the
// cross-rank record Diffulex calls DispatchMetadata is TokenDispatchMetadata here.
import type { DType } from '../backend/types.js';
import type { Tensor } from '../tensor/tensor.js';
import type { DispatchMetadata, ExpertExecutionMetadata, RouterOutput } from '../moe/contracts.js';
import { fullLike } from '../moe/tensors.js';

/** Diffulex DispatcherStage: INITIAL -> AFTER_DISPATCH_A -> AFTER_DISPATCH_B -> AFTER_COMBINE_A -> INITIAL. */
export const DispatcherStage = {
  INITIAL: 'INITIAL',
  AFTER_DISPATCH_A: 'AFTER_DISPATCH_A',
  AFTER_DISPATCH_B: 'AFTER_DISPATCH_B',
  AFTER_COMBINE_A: 'AFTER_COMBINE_A',
} as const;
export type DispatcherStage = (typeof DispatcherStage)[keyof typeof DispatcherStage];

/** Diffulex's forward phase (a DeepEP dispatcher picks its mode from it; the naive one ignores it). */
export type ForwardPhase = 'prefill' | 'decode' | 'mixed';

/** Diffulex DeepEPMode; AUTO means LOW_LATENCY in decode, NORMAL otherwise. */
export type DeepEPMode = 'NORMAL' | 'LOW_LATENCY' | 'AUTO';

/** The DeepEP mode a phase runs in (Diffulex: AUTO resolves by phase). */
export function resolveDeepEPMode(mode: DeepEPMode, phase: ForwardPhase): Exclude<DeepEPMode, 'AUTO'> {
  if (mode !== 'AUTO') return mode;
  return phase === 'decode' ? 'LOW_LATENCY' : 'NORMAL';
}

/** Diffulex's RouterMetadata: what a router hands to a dispatcher. */
export interface RouterMetadata {
  /** [T, E] */
  routerLogits: Tensor;
  /** [T, K] i32 */
  topkIds: Tensor;
  /** [T, K] */
  topkWeights: Tensor;
}

/** RouterMetadata.empty(h, E, k): no tokens (a rank with nothing to route); ids are -1 where rows exist. */
export function emptyRouterMetadata(like: Tensor, numExperts: number, topK: number, numTokens = 0): RouterMetadata {
  return {
    routerLogits: fullLike(like, [numTokens, numExperts], 0),
    topkIds: fullLike(like, [numTokens, topK], -1, 'i32'),
    topkWeights: fullLike(like, [numTokens, topK], 0),
  };
}

/** RouterMetadata.from_topk_output: moekit's RouterOutput as Diffulex's metadata. */
export function routerMetadataFrom(r: Pick<RouterOutput, 'logits' | 'topkIds' | 'topkWeights'>): RouterMetadata {
  return { routerLogits: r.logits, topkIds: r.topkIds, topkWeights: r.topkWeights };
}

/** Diffulex's DispatchMetadata: what dispatch hands to combine. S = slots this rank sent, R = slots it received. */
export interface TokenDispatchMetadata extends Pick<DispatchMetadata, 'numTokens'> {
  hiddenSize: number;
  dtype: DType;
  /** The backend name (Diffulex: device). */
  device: string;
  /** [ep] slots this rank sent to each rank. */
  sendSplits: Int32Array;
  /** [ep] slots each rank sent to this one. */
  recvSplits: Int32Array;
  /** [R, H] the received rows (differentiable). */
  recvHiddenStates: Tensor;
  /** [R] i32 expert of each received slot, local to this rank (id mod numLocalExperts). */
  recvLocalExpert: Tensor;
  /** [R] i32 token index of each received slot in its SENDER's local batch. */
  recvTokenIndices: Tensor;
  /** [R] routing weight of each received slot (differentiable). */
  recvWeights: Tensor;
  totalRecvSlots: number;
  /** False: this rank sent nothing (it still joined every collective). */
  activeDispatch: boolean;
  /** Tokens this rank dispatched (0 when inactive). */
  numLocalTokens: number;
  /** [S] i32 token of each sent slot, in send order. */
  localTokenIndices: Tensor;
}

/** Diffulex's DispatcherOutput. */
export interface DispatcherOutput {
  metadata: TokenDispatchMetadata;
  recvHiddenStates: Tensor;
  recvLocalExpertIds: Tensor;
  recvWeights: Tensor;
}

/**
 * Diffulex's ExpertExecutionMetadata. The fields moekit's ExpertExecutionMetadata already has are
 * Diffulex's under other names: numRows = num_slots, segOffsets = seg_indptr,
 * rowsPerExpert = num_recv_tokens_per_expert, rowExperts = packed_local_expert_ids.
 */
export interface ExpertParallelExecutionMetadata extends ExpertExecutionMetadata {
  /** [numRows] i32 received-slot index of each packed row (the rows are expert-contiguous). */
  packedTokenIds: Tensor;
  /** [numRows] routing weight of each packed row. */
  packedWeights: Tensor;
  /** [numRows] i32 same as packedTokenIds: the permutation from received to packed order. */
  sortedSlotIds: Int32Array;
  /** Expert of each block of `blockSize` padded rows (aligned GEMM kernels); empty when disableAlignedMetadata. */
  expertBlockIds: Int32Array;
  /** Rows after padding each expert to a block multiple; numRows when disableAlignedMetadata. */
  numTokensPostPadded: number;
  disableAlignedMetadata: boolean;
}

/** Diffulex's TokenDispatcher: dispatch = dispatchA + dispatchB, combine = combineA + combineB. */
export interface TokenDispatcher {
  readonly stage: DispatcherStage;
  setForwardPhase(phase: ForwardPhase): void;
  /** hidden [T, H], topkIds [T, K] i32 global expert ids, topkWeights [T, K]. Collective. */
  dispatch(hidden: Tensor, topkIds: Tensor, topkWeights: Tensor, activeDispatch?: boolean): DispatcherOutput;
  /** slotOutputs [R, H] (already weighted) -> [T, H] of this rank's tokens. Collective. */
  combine(slotOutputs: Tensor, metadata: TokenDispatchMetadata): Tensor;
}
