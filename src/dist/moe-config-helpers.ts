// Diffulex's config helpers (diffulex.moe.config): read MoE settings from a model config whose
// attribute names vary by family (HF configs), first non-null attribute wins.

export type ModelConfigLike = Record<string, unknown>;

function first(cfg: ModelConfigLike, keys: readonly string[]): unknown {
  for (const k of keys) if (cfg[k] !== undefined && cfg[k] !== null) return cfg[k];
  return undefined;
}

function intOf(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`model config: ${name} must be an integer (got ${JSON.stringify(v)})`);
  return v;
}

/** num_experts | n_routed_experts | num_local_experts, default 0. */
export function getNumExperts(cfg: ModelConfigLike): number {
  const v = first(cfg, ['num_experts', 'n_routed_experts', 'num_local_experts']);
  return v === undefined ? 0 : intOf('num_experts', v);
}

/** num_experts_per_tok | moe_top_k | top_k, default 2. */
export function getNumExpertsPerTok(cfg: ModelConfigLike): number {
  const v = first(cfg, ['num_experts_per_tok', 'moe_top_k', 'top_k']);
  return v === undefined ? 2 : intOf('num_experts_per_tok', v);
}

/** moe_intermediate_size | expert_intermediate_size | intermediate_size; an error when none is set. */
export function getMoeIntermediateSize(cfg: ModelConfigLike): number {
  const v = first(cfg, ['moe_intermediate_size', 'expert_intermediate_size', 'intermediate_size']);
  if (v === undefined) throw new Error('model config: none of moe_intermediate_size, expert_intermediate_size, intermediate_size is set');
  return intOf('moe_intermediate_size', v);
}

export function getNormTopkProb(cfg: ModelConfigLike): boolean {
  const v = cfg['norm_topk_prob'];
  return v === undefined || v === null ? true : Boolean(v);
}

export function getMlpOnlyLayers(cfg: ModelConfigLike): number[] {
  const v = cfg['mlp_only_layers'];
  return Array.isArray(v) ? v.map((x) => intOf('mlp_only_layers[]', x)) : [];
}

export function getFirstKDenseReplace(cfg: ModelConfigLike): number | null {
  const v = cfg['first_k_dense_replace'];
  return v === undefined || v === null ? null : intOf('first_k_dense_replace', v);
}

export function getDecoderSparseStep(cfg: ModelConfigLike): number {
  const v = cfg['decoder_sparse_step'];
  return v === undefined || v === null ? 1 : intOf('decoder_sparse_step', v);
}

/** Diffulex is_moe_layer: E > 0, not in mlp_only_layers, past first_k_dense_replace when set, else every step-th layer. */
export function isMoeLayer(cfg: ModelConfigLike, layerIdx: number): boolean {
  if (getNumExperts(cfg) <= 0) return false;
  if (getMlpOnlyLayers(cfg).includes(layerIdx)) return false;
  const firstK = getFirstKDenseReplace(cfg);
  if (firstK !== null) return layerIdx >= firstK;
  const step = getDecoderSparseStep(cfg);
  if (step <= 0) return false;
  return (layerIdx + 1) % step === 0;
}
