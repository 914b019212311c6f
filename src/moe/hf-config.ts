// Reading plain Hugging Face config.json objects (Diffulex's helpers: first non-null key wins).
import { ConfigError } from './validate.js';

export type HfConfig = Record<string, unknown>;

function first(cfg: HfConfig, keys: readonly string[]): unknown {
  for (const k of keys) if (cfg[k] !== undefined && cfg[k] !== null) return cfg[k];
  return undefined;
}

function intAt(cfg: HfConfig, keys: readonly string[], dflt: number | undefined, min: number): number {
  const v = first(cfg, keys);
  if (v === undefined) {
    if (dflt === undefined) throw new ConfigError(keys.join(' | '), v, `one of these keys set to an integer >= ${min}`);
    return dflt;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new ConfigError(keys.find((k) => cfg[k] === v)!, v, `an integer >= ${min}`);
  return v;
}

export const getNumExperts = (c: HfConfig): number => intAt(c, ['num_experts', 'n_routed_experts', 'num_local_experts'], 0, 0);
export const getNumExpertsPerTok = (c: HfConfig): number =>
  intAt(c, ['num_experts_per_tok', 'moe_top_k', 'top_k', 'experts_per_token'], 2, 1);
export const getMoeIntermediateSize = (c: HfConfig): number =>
  intAt(c, ['moe_intermediate_size', 'expert_intermediate_size', 'intermediate_size'], undefined, 1);
export const getNormTopkProb = (c: HfConfig): boolean => (first(c, ['norm_topk_prob']) ?? true) === true;
export const getMlpOnlyLayers = (c: HfConfig): number[] => (first(c, ['mlp_only_layers']) as number[] | undefined) ?? [];
export const getFirstKDenseReplace = (c: HfConfig): number | null => (first(c, ['first_k_dense_replace']) as number | undefined) ?? null;
export const getDecoderSparseStep = (c: HfConfig): number => intAt(c, ['decoder_sparse_step'], 1, 0);
/** DeepSeek (vLLM): an MoE layer every moe_layer_freq layers from first_k_dense_replace on. */
export const getMoeLayerFreq = (c: HfConfig): number => intAt(c, ['moe_layer_freq'], 1, 1);

/**
 * Diffulex's is_moe_layer: which decoder layers hold an MoE block; plus vLLM's moe_layer_freq
 * for DeepSeek (i >= first_k_dense_replace and i % moe_layer_freq == 0) and Llama-4's
 * moe_layers list / interleave_moe_layer_step ((i+1) % step == 0) from transformers.
 */
export function isMoeLayer(c: HfConfig, layer: number): boolean {
  if (getNumExperts(c) <= 0) return false;
  if (getMlpOnlyLayers(c).includes(layer)) return false;
  const moeLayers = c['moe_layers'];
  if (Array.isArray(moeLayers)) return moeLayers.includes(layer);
  const k = getFirstKDenseReplace(c);
  if (k !== null || c['moe_layer_freq'] != null) return layer >= (k ?? 0) && layer % getMoeLayerFreq(c) === 0;
  const interleave = c['interleave_moe_layer_step'];
  if (typeof interleave === 'number') return interleave > 0 && (layer + 1) % interleave === 0;
  const step = getDecoderSparseStep(c);
  if (step <= 0) return false;
  return (layer + 1) % step === 0;
}

/** The text model's config: multimodal Llama-4 (model_type 'llama4') nests it under text_config. */
export function hfTextConfig(c: HfConfig): HfConfig {
  const t = c['text_config'];
  if (c['model_type'] !== 'llama4' || typeof t !== 'object' || t === null || Array.isArray(t)) return c;
  const text = t as HfConfig;
  return { ...text, model_type: 'llama4_text', tie_word_embeddings: c['tie_word_embeddings'] ?? text['tie_word_embeddings'] };
}

/**
 * A config in the flat keys the readers above use: Llama-4's text_config lifted, DBRX's
 * d_model / n_layers / n_heads / attn_config / ffn_config mapped onto hidden_size,
 * num_hidden_layers, num_attention_heads, num_key_value_heads, num_local_experts,
 * num_experts_per_tok, intermediate_size, router_jitter_noise and moe_normalize_expert_weights.
 */
export function normalizeHfConfig(c: HfConfig): HfConfig {
  if (c['model_type'] !== 'dbrx') return hfTextConfig(c);
  const ffn = c['ffn_config'];
  if (typeof ffn !== 'object' || ffn === null || Array.isArray(ffn))
    throw new ConfigError('ffn_config', ffn, 'an object with ffn_hidden_size, moe_num_experts, moe_top_k (DBRX)');
  const f = ffn as HfConfig;
  const attn = (typeof c['attn_config'] === 'object' && c['attn_config'] !== null ? c['attn_config'] : {}) as HfConfig;
  return {
    ...c,
    hidden_size: c['d_model'],
    num_hidden_layers: c['n_layers'],
    num_attention_heads: c['n_heads'],
    num_key_value_heads: attn['kv_n_heads'] ?? c['n_heads'],
    num_local_experts: f['moe_num_experts'],
    num_experts_per_tok: f['moe_top_k'] ?? 1,
    intermediate_size: f['ffn_hidden_size'],
    router_jitter_noise: f['moe_jitter_eps'] ?? 0,
    router_aux_loss_coef: c['router_aux_loss_coef'] ?? f['moe_loss_weight'] ?? 0,
    // transformers' DbrxFFNConfig default: L1-normalised top-k weights
    moe_normalize_expert_weights: f['moe_normalize_expert_weights'] === undefined ? 1 : f['moe_normalize_expert_weights'],
  };
}
