// A whole decoder-only model as the accounting sees it: one normalised description built from
// an HF config.json of any supported model_type (the keys differ per family; DBRX nests its
// FFN, multimodal Llama-4 nests the text model under text_config).
import { type HfConfig, getMoeIntermediateSize, getNumExperts, getNumExpertsPerTok, hfTextConfig, isMoeLayer } from '../moe/hf-config.js';
import { ConfigError } from '../moe/validate.js';
import { isRecord } from '../moe/validate.js';

export type AttentionKind = 'MHA' | 'GQA' | 'MQA' | 'MLA';
export type NormKind = 'rmsnorm' | 'layernorm' | 'layernorm-no-bias';

/** DeepSeek multi-head latent attention (q_lora_rank null: a plain q_proj). */
export interface MlaSpec {
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
}

export interface AttentionSpec {
  kind: AttentionKind;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Biases on q, k, v (Qwen2, GPT-OSS, Phi-MoE). */
  qkvBias: boolean;
  oBias: boolean;
  /** Learned q/k norms: 'per-head' [head_dim] (Qwen3), 'full' [heads·head_dim] (OLMoE). */
  qkNorm: 'none' | 'per-head' | 'full';
  /** One learned attention-sink logit per head (GPT-OSS). */
  sinks: boolean;
  mla: MlaSpec | null;
}

export interface DenseFfnSpec {
  kind: 'dense';
  intermediateSize: number;
}

export interface MoEFfnSpec {
  kind: 'moe';
  numExperts: number;
  topK: number;
  expertIntermediateSize: number;
  /** Expert biases (GPT-OSS: gate_up [2I] and down [H] per expert). */
  expertBias: boolean;
  routerBias: boolean;
  /** DeepSeek-V3's e_score_correction_bias [E] (selection only, still a stored parameter). */
  scoreCorrectionBias: boolean;
  /** Width of the always-on shared expert(s) together; 0 = none. */
  sharedIntermediateSize: number;
  /** Qwen2-MoE's sigmoid gate Linear(H, 1) on the shared expert. */
  sharedGate: boolean;
  /** Routing as the model card names it (softmax top-k, sigmoid + group limit, sparsemixer, ...). */
  routing: string;
}

export type FfnSpec = DenseFfnSpec | MoEFfnSpec;

/** Parameters outside the decoder (e.g. a vision tower); counted in total, never in active. */
export interface ExtraSpec {
  name: string;
  params: number;
}

export interface ModelSpec {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  tieEmbeddings: boolean;
  lmHeadBias: boolean;
  norm: NormKind;
  attention: AttentionSpec;
  layers: FfnSpec[];
  extras: ExtraSpec[];
  /** The HF config the text model was read from (text_config for multimodal Llama-4). */
  text: HfConfig;
  /** What the counts leave out on purpose (e.g. DeepSeek-V3's multi-token-prediction module). */
  notes: string[];
}

export const SUPPORTED_MODEL_TYPES = [
  'mixtral',
  'qwen2_moe',
  'qwen3_moe',
  'olmoe',
  'deepseek_v2',
  'deepseek_v3',
  'gpt_oss',
  'granitemoe',
  'llama4',
  'llama4_text',
  'dbrx',
  'phimoe',
] as const;

const intKey = (c: HfConfig, k: string, dflt?: number): number => {
  const v = c[k] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw new ConfigError(k, c[k], dflt === undefined ? 'an integer >= 0 (required)' : 'an integer >= 0');
  return v;
};
const boolKey = (c: HfConfig, k: string, dflt: boolean): boolean => {
  const v = c[k] ?? dflt;
  if (typeof v !== 'boolean') throw new ConfigError(k, v, 'true or false');
  return v;
};

function attentionKind(heads: number, kv: number): AttentionKind {
  if (kv === heads) return 'MHA';
  return kv === 1 ? 'MQA' : 'GQA';
}

function standardAttention(c: HfConfig, H: number, opts: Partial<AttentionSpec> = {}): AttentionSpec {
  const numHeads = intKey(c, 'num_attention_heads');
  const numKvHeads = intKey(c, 'num_key_value_heads', numHeads);
  const headDim = intKey(c, 'head_dim', Math.trunc(H / numHeads));
  const bias = boolKey(c, 'attention_bias', false);
  return {
    kind: attentionKind(numHeads, numKvHeads),
    numHeads,
    numKvHeads,
    headDim,
    qkvBias: bias,
    oBias: bias,
    qkNorm: 'none',
    sinks: false,
    mla: null,
    ...opts,
  };
}

/** Grok-1's HF ports carry no model_type and no architecture keys moekit reads: say what is missing. */
function grokHint(c: HfConfig): string {
  const looksGrok =
    (Array.isArray(c['architectures']) && String(c['architectures'][0]).toLowerCase().includes('grok')) || 'widening_factor' in c;
  return looksGrok
    ? " (this looks like Grok-1: its config has no model_type, and moekit does not know Grok-1's layer names, attention output multiplier or FFN width; convert it to a mixtral-style config.json with model_type 'mixtral', intermediate_size and num_local_experts)"
    : '';
}

/** Normalise an HF config.json of a supported model_type into a ModelSpec. */
export function modelSpecFromHf(config: HfConfig): ModelSpec {
  const modelType = config['model_type'];
  if (typeof modelType !== 'string' || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new ConfigError('model_type', modelType, `one of ${SUPPORTED_MODEL_TYPES.join(', ')}${grokHint(config)}`);
  }
  if (modelType === 'dbrx') return dbrxSpec(config);
  const c = hfTextConfig(config);
  const H = intKey(c, 'hidden_size');
  const L = intKey(c, 'num_hidden_layers');
  const V = intKey(c, 'vocab_size');
  let attention = standardAttention(c, H);
  let norm: NormKind = 'rmsnorm';
  let lmHeadBias = false;
  let tieDefault = false;
  const moe: Omit<MoEFfnSpec, 'numExperts' | 'topK' | 'expertIntermediateSize'> = {
    kind: 'moe',
    expertBias: false,
    routerBias: false,
    scoreCorrectionBias: false,
    sharedIntermediateSize: 0,
    sharedGate: false,
    routing: 'softmax, top-k, renormalised',
  };
  let denseWidth = typeof c['intermediate_size'] === 'number' ? (c['intermediate_size'] as number) : 0;
  const extras: ExtraSpec[] = [];
  switch (modelType) {
    case 'mixtral':
      break;
    case 'qwen2_moe':
      attention = standardAttention(c, H, { qkvBias: boolKey(c, 'qkv_bias', true), oBias: false });
      moe.sharedIntermediateSize = intKey(c, 'shared_expert_intermediate_size', 0);
      moe.sharedGate = moe.sharedIntermediateSize > 0;
      moe.routing = `softmax, top-k${c['norm_topk_prob'] ? ', renormalised' : ''}, sigmoid-gated shared expert`;
      break;
    case 'qwen3_moe':
      attention = standardAttention(c, H, { qkNorm: 'per-head' });
      moe.routing = `softmax, top-k${c['norm_topk_prob'] ? ', renormalised' : ''}`;
      break;
    case 'olmoe':
      attention = standardAttention(c, H, { qkNorm: 'full' });
      moe.routing = `softmax, top-k${c['norm_topk_prob'] ? ', renormalised' : ''}`;
      break;
    case 'deepseek_v2':
    case 'deepseek_v3': {
      const heads = intKey(c, 'num_attention_heads');
      const mla: MlaSpec = {
        qLoraRank: c['q_lora_rank'] == null ? null : intKey(c, 'q_lora_rank'),
        kvLoraRank: intKey(c, 'kv_lora_rank'),
        qkNopeHeadDim: intKey(c, 'qk_nope_head_dim'),
        qkRopeHeadDim: intKey(c, 'qk_rope_head_dim'),
        vHeadDim: intKey(c, 'v_head_dim'),
      };
      attention = {
        kind: 'MLA',
        numHeads: heads,
        numKvHeads: heads,
        headDim: mla.qkNopeHeadDim + mla.qkRopeHeadDim,
        qkvBias: false,
        oBias: false,
        qkNorm: 'none',
        sinks: false,
        mla,
      };
      moe.sharedIntermediateSize = getMoeIntermediateSize(c) * intKey(c, 'n_shared_experts', 0);
      moe.scoreCorrectionBias = modelType === 'deepseek_v3';
      moe.routing =
        modelType === 'deepseek_v3'
          ? 'sigmoid + correction bias, group-limited top-k (top-2 sum)'
          : `softmax, ${c['topk_method'] ?? 'greedy'} top-k`;
      break;
    }
    case 'gpt_oss':
      attention = standardAttention(c, H, { sinks: true });
      moe.expertBias = true;
      moe.routerBias = true;
      moe.routing = 'top-k of logits (+ bias), softmax over the k';
      break;
    case 'granitemoe':
      tieDefault = true;
      moe.routing = 'top-k of logits, softmax over the k';
      break;
    case 'llama4':
    case 'llama4_text':
      denseWidth = intKey(c, 'intermediate_size_mlp', denseWidth);
      moe.sharedIntermediateSize = intKey(c, 'intermediate_size');
      moe.routing = 'top-k of logits, sigmoid, scales the expert input; shared expert';
      if (modelType === 'llama4') {
        const vision = config['vision_config'];
        if (isRecord(vision)) extras.push({ name: 'vision tower + projector', params: llama4VisionParams(vision, H) });
      }
      break;
    case 'phimoe':
      attention = standardAttention(c, H, { qkvBias: boolKey(c, 'attention_bias', true), oBias: boolKey(c, 'attention_bias', true) });
      norm = 'layernorm';
      lmHeadBias = boolKey(c, 'lm_head_bias', true);
      moe.routing = `sparsemixer top-2 (jitter_eps ${c['router_jitter_noise'] ?? 0.01})`;
      break;
  }
  const E = getNumExperts(c);
  const K = getNumExpertsPerTok(c);
  const Ie = E > 0 ? getMoeIntermediateSize(c) : 0;
  const layers: FfnSpec[] = [];
  for (let i = 0; i < L; i++) {
    if (isMoeLayer(c, i)) layers.push({ ...moe, numExperts: E, topK: K, expertIntermediateSize: Ie });
    else {
      if (denseWidth <= 0) throw new ConfigError('intermediate_size', c['intermediate_size'], `an integer >= 1 (layer ${i} is dense)`);
      layers.push({ kind: 'dense', intermediateSize: denseWidth });
    }
  }
  return {
    modelType,
    vocabSize: V,
    hiddenSize: H,
    numLayers: L,
    tieEmbeddings: boolKey(c, 'tie_word_embeddings', tieDefault),
    lmHeadBias,
    norm,
    attention,
    layers,
    extras,
    text: c,
    notes: mtpNote(c),
  };
}

/** DeepSeek-V3's num_nextn_predict_layers MTP module(s) ship in the checkpoint but are not part of the model counted here (nor in its published size). */
function mtpNote(c: HfConfig): string[] {
  const n = c['num_nextn_predict_layers'];
  return typeof n === 'number' && n > 0
    ? [`num_nextn_predict_layers = ${n}: the multi-token-prediction module(s) are not counted (as in the published size)`]
    : [];
}

/** DBRX: d_model / n_heads / n_layers, attn_config.kv_n_heads, ffn_config.{ffn_hidden_size, moe_num_experts, moe_top_k}; LayerNorm without bias. */
function dbrxSpec(c: HfConfig): ModelSpec {
  const attn = isRecord(c['attn_config']) ? c['attn_config'] : {};
  const ffn = c['ffn_config'];
  if (!isRecord(ffn)) throw new ConfigError('ffn_config', ffn, 'an object with ffn_hidden_size, moe_num_experts, moe_top_k');
  const H = intKey(c, 'd_model');
  const heads = intKey(c, 'n_heads');
  const kv = intKey(attn, 'kv_n_heads', heads);
  const E = intKey(ffn, 'moe_num_experts');
  const K = intKey(ffn, 'moe_top_k');
  const I = intKey(ffn, 'ffn_hidden_size');
  const L = intKey(c, 'n_layers');
  const moe: MoEFfnSpec = {
    kind: 'moe',
    numExperts: E,
    topK: K,
    expertIntermediateSize: I,
    expertBias: false,
    routerBias: false,
    scoreCorrectionBias: false,
    sharedIntermediateSize: 0,
    sharedGate: false,
    routing: `softmax, top-k, ${ffn['moe_normalize_expert_weights'] === null ? 'no renormalisation' : `L${ffn['moe_normalize_expert_weights'] ?? 1}-renormalised`}`,
  };
  return {
    modelType: 'dbrx',
    vocabSize: intKey(c, 'vocab_size'),
    hiddenSize: H,
    numLayers: L,
    tieEmbeddings: boolKey(c, 'tie_word_embeddings', false),
    lmHeadBias: false,
    norm: 'layernorm-no-bias',
    attention: {
      kind: attentionKind(heads, kv),
      numHeads: heads,
      numKvHeads: kv,
      headDim: H / heads,
      qkvBias: false,
      oBias: false,
      qkNorm: 'none',
      sinks: false,
      mla: null,
    },
    layers: Array.from({ length: L }, () => ({ ...moe })),
    extras: [],
    text: c,
    notes: [],
  };
}

/**
 * Llama-4's vision tower (transformers Llama4VisionModel) and multi-modal projector:
 * unfold-conv patch embedding (no bias), class embedding, positional embedding over
 * (image/patch)^2 + 1 positions, pre/post LayerNorms, L encoder layers (q/k/v/o with bias,
 * fc1/fc2 with bias, two LayerNorms), the pixel-shuffle MLP (fc1 intermediate -> projector_input,
 * fc2 projector_output -> projector_output, no bias) and Linear(vision_output_dim, H) without bias.
 */
export function llama4VisionParams(v: HfConfig, textHidden: number): number {
  const h = intKey(v, 'hidden_size');
  const I = intKey(v, 'intermediate_size');
  const L = intKey(v, 'num_hidden_layers');
  const p = intKey(v, 'patch_size');
  const img = intKey(v, 'image_size');
  const ch = intKey(v, 'num_channels', 3);
  const pin = intKey(v, 'projector_input_dim');
  const pout = intKey(v, 'projector_output_dim');
  const out = intKey(v, 'vision_output_dim');
  const positions = (img / p) ** 2 + 1;
  const layer = 4 * (h * h + h) + (h * I + I) + (I * h + h) + 2 * 2 * h;
  return ch * p * p * h + h + positions * h + 2 * 2 * h + L * layer + I * pin + pout * pout + out * textHidden;
}
