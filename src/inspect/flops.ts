// FLOPs per token, two ways side by side: OLMo-core's num_flops_per_token (training:
// 6·N_active_non_embedding + 12·L·h·(d/h)·seq) and the plain 6N rule, plus a forward count
// that follows the model's real head dims (MLA's q/k head is nope + rope, v its own).
import type { ModelSpec } from './model-spec.js';
import type { ModelParamCounts } from './params.js';

export interface FlopsPerToken {
  seqLen: number;
  /** 2·N_active_non_embedding + attention scores and mixing 2·L·h·seq·(d_qk + d_v) (no causal discount). */
  forward: number;
  /** 3 × forward (backward costs twice the forward). */
  training: number;
  /** OLMo-core Transformer.num_flops_per_token(seq_len), training FLOPs. */
  olmoCore: number;
  /** 6·N_active_non_embedding (Kaplan et al.'s rule, attention ignored), training FLOPs. */
  sixN: number;
}

export function flopsPerToken(spec: ModelSpec, counts: ModelParamCounts, seqLen: number): FlopsPerToken {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`seqLen = ${seqLen} is invalid: expected an integer >= 1`);
  const a = spec.attention;
  const L = spec.numLayers;
  const N = counts.activeNonEmbedding;
  const dv = a.mla ? a.mla.vHeadDim : a.headDim;
  const forward = 2 * N + 2 * L * a.numHeads * seqLen * (a.headDim + dv);
  const q = Math.trunc(spec.hiddenSize / a.numHeads);
  return { seqLen, forward, training: 3 * forward, olmoCore: 6 * N + 12 * L * a.numHeads * q * seqLen, sixN: 6 * N };
}
