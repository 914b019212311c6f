// Whole-model parameter counts from a ModelSpec: every stored tensor, by part, and the
// parameters one token uses (all but the experts it is not routed to).
import type { AttentionSpec, FfnSpec, ModelSpec, MoEFfnSpec, NormKind } from './model-spec.js';

export interface ParamBreakdown {
  embedding: number;
  attention: number;
  norms: number;
  denseMlp: number;
  /** Router weights (+ router bias, + DeepSeek-V3's e_score_correction_bias). */
  router: number;
  /** Routed experts (for `active`: only the top-k of each MoE layer). */
  experts: number;
  sharedExperts: number;
  /** Output projection (0 when tied to the embedding); its bias where the model has one. */
  head: number;
  /** Outside the decoder (vision tower); in total only. */
  extra: number;
}

export interface ModelParamCounts {
  total: number;
  /** Parameters one text token uses: all but the routed experts it does not go to. */
  active: number;
  /** active without the input embedding table (OLMo-core num_active_non_embedding_params: minus V·H once). */
  activeNonEmbedding: number;
  /** total without the input embedding table (OLMo-core num_non_embedding_params). */
  totalNonEmbedding: number;
  byPart: { total: ParamBreakdown; active: ParamBreakdown };
  /** Per decoder layer: [total, active] of its attention + norms + FFN. */
  perLayer: { total: number; active: number }[];
}

export const normParams = (kind: NormKind, width: number): number => (kind === 'layernorm' ? 2 * width : width);

export function attentionParams(a: AttentionSpec, H: number, norm: NormKind): number {
  if (a.mla) {
    const m = a.mla;
    const qHead = m.qkNopeHeadDim + m.qkRopeHeadDim;
    const q =
      m.qLoraRank === null ? H * a.numHeads * qHead : H * m.qLoraRank + normParams(norm, m.qLoraRank) + m.qLoraRank * a.numHeads * qHead;
    const kv =
      H * (m.kvLoraRank + m.qkRopeHeadDim) + normParams(norm, m.kvLoraRank) + m.kvLoraRank * a.numHeads * (m.qkNopeHeadDim + m.vHeadDim);
    return q + kv + a.numHeads * m.vHeadDim * H;
  }
  const q = a.numHeads * a.headDim;
  const kv = a.numKvHeads * a.headDim;
  let n = H * q + 2 * H * kv + q * H;
  if (a.qkvBias) n += q + 2 * kv;
  if (a.oBias) n += H;
  if (a.qkNorm === 'per-head') n += 2 * a.headDim;
  if (a.qkNorm === 'full') n += q + kv;
  if (a.sinks) n += a.numHeads;
  return n;
}

/** One routed expert: gated MLP 3·H·I, plus GPT-OSS's biases (2I + H). */
export const expertParams = (m: MoEFfnSpec, H: number): number =>
  3 * H * m.expertIntermediateSize + (m.expertBias ? 2 * m.expertIntermediateSize + H : 0);
export const routerParams = (m: MoEFfnSpec, H: number): number =>
  m.numExperts * H + (m.routerBias ? m.numExperts : 0) + (m.scoreCorrectionBias ? m.numExperts : 0);
export const sharedParams = (m: MoEFfnSpec, H: number): number =>
  m.sharedIntermediateSize > 0 ? 3 * H * m.sharedIntermediateSize + (m.sharedGate ? H : 0) : 0;

const zero = (): ParamBreakdown => ({
  embedding: 0,
  attention: 0,
  norms: 0,
  denseMlp: 0,
  router: 0,
  experts: 0,
  sharedExperts: 0,
  head: 0,
  extra: 0,
});
const sumParts = (b: ParamBreakdown): number => Object.values(b).reduce((s, v) => s + v, 0);

export function countModelParams(spec: ModelSpec): ModelParamCounts {
  const H = spec.hiddenSize;
  const total = zero();
  const active = zero();
  const both = (k: keyof ParamBreakdown, t: number, a = t) => {
    total[k] += t;
    active[k] += a;
  };
  const embedding = spec.vocabSize * H;
  both('embedding', embedding);
  both('head', (spec.tieEmbeddings ? 0 : embedding) + (spec.lmHeadBias ? spec.vocabSize : 0));
  both('norms', normParams(spec.norm, H));
  both(
    'extra',
    spec.extras.reduce((s, e) => s + e.params, 0),
    0,
  );
  const attn = attentionParams(spec.attention, H, spec.norm);
  const layerNorms = 2 * normParams(spec.norm, H);
  const perLayer = spec.layers.map((f: FfnSpec) => {
    both('attention', attn);
    both('norms', layerNorms);
    if (f.kind === 'dense') {
      const d = 3 * H * f.intermediateSize;
      both('denseMlp', d);
      return { total: attn + layerNorms + d, active: attn + layerNorms + d };
    }
    const r = routerParams(f, H);
    const e = expertParams(f, H);
    const s = sharedParams(f, H);
    both('router', r);
    both('experts', e * f.numExperts, e * f.topK);
    both('sharedExperts', s);
    return { total: attn + layerNorms + r + s + e * f.numExperts, active: attn + layerNorms + r + s + e * f.topK };
  });
  const t = sumParts(total);
  const a = sumParts(active);
  return { total: t, active: a, activeNonEmbedding: a - embedding, totalNonEmbedding: t - embedding, byPart: { total, active }, perLayer };
}
