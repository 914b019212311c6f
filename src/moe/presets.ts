// Named presets reproducing the routers and expert banks of well-known MoE models, and a
// builder from a plain HF config.json object (spec/hf-moe.md).
import { type MoEConfig, type MoEConfigInput, moeConfig } from './config.js';
import { type HfConfig, getMoeIntermediateSize, getNumExperts, getNumExpertsPerTok, normalizeHfConfig } from './hf-config.js';
import { ConfigError, isRecord } from './validate.js';

export const PRESETS = [
  'mixtral',
  'qwen2_moe',
  'qwen3_moe',
  'olmoe',
  'deepseek_v2',
  'deepseek_v3',
  'gpt_oss',
  'granitemoe',
  'llama4',
  'dbrx',
  'phimoe',
] as const;
export type PresetName = (typeof PRESETS)[number];

const num = (c: HfConfig, k: string, d: number): number => (typeof c[k] === 'number' ? (c[k] as number) : d);

export interface PresetFromHfOptions {
  /**
   * DeepSeek-V3's masked groups: 'neg-inf' (default: transformers 5.x, the official inference
   * code, vLLM, SGLang) or 'zero' (transformers <= 4.57); they differ when biased scores < 0.
   */
  groupMaskValue?: 'zero' | 'neg-inf';
}

/**
 * The MoE block of model_type `name` with the sizes and options of an HF config (missing keys
 * take HF defaults). DBRX's nested config and multimodal Llama-4's text_config are read too.
 */
export function presetFromHf(name: PresetName, config: HfConfig, opts: PresetFromHfOptions = {}): MoEConfig {
  const c = normalizeHfConfig(config);
  const hiddenSize = num(c, 'hidden_size', NaN);
  const numExperts = getNumExperts(c);
  const topK = getNumExpertsPerTok(c);
  const I = getMoeIntermediateSize(c);
  const renorm = (dflt: boolean) => ((c['norm_topk_prob'] ?? dflt) === true ? 'sum' : 'none') as 'sum' | 'none';
  const hfLosses = { lbWeight: num(c, 'router_aux_loss_coef', 0), lbConvention: 'top-k' as const };
  const base = { hiddenSize, router: { numExperts, topK }, experts: { intermediateSize: I }, losses: hfLosses };
  let input: MoEConfigInput;
  switch (name) {
    case 'mixtral':
      input = { ...base, router: { ...base.router, renormalize: 'sum', jitterEps: num(c, 'router_jitter_noise', 0) } };
      break;
    case 'qwen2_moe':
      input = {
        ...base,
        router: { ...base.router, renormalize: renorm(false) },
        shared: { intermediateSize: num(c, 'shared_expert_intermediate_size', NaN), gate: 'sigmoid' },
      };
      break;
    case 'qwen3_moe':
      input = { ...base, router: { ...base.router, renormalize: renorm(false) } };
      break;
    case 'olmoe':
      input = {
        ...base,
        router: { ...base.router, renormalize: renorm(false) },
        losses: { ...hfLosses, zLossWeight: num(c, 'router_z_loss_coef', 0) },
      };
      break;
    case 'deepseek_v2':
    case 'deepseek_v3': {
      const v3 = name === 'deepseek_v3';
      const grouped = v3 || c['topk_method'] === 'group_limited_greedy';
      input = {
        ...base,
        router: {
          ...base.router,
          scoreFunc: v3 ? 'sigmoid' : 'softmax',
          renormalize: renorm(v3),
          scalingFactor: num(c, 'routed_scaling_factor', 1),
          selectionBias: v3 ? { gamma: 0.001, rule: 'sign' } : null,
          groupLimit: grouped
            ? {
                numGroups: num(c, 'n_group', 1),
                topkGroups: num(c, 'topk_group', 1),
                groupScore: v3 ? 'top2-sum' : 'max',
                maskValue: v3 ? (opts.groupMaskValue ?? 'neg-inf') : 'zero',
              }
            : null,
        },
        shared: num(c, 'n_shared_experts', 0) > 0 ? { intermediateSize: I * num(c, 'n_shared_experts', 0) } : null,
      };
      break;
    }
    case 'gpt_oss':
      input = {
        ...base,
        router: { ...base.router, selectOn: 'logits', routerBias: true },
        experts: { intermediateSize: I, kind: 'gpt-oss', swigluLimit: num(c, 'swiglu_limit', 7), swigluAlpha: 1.702 },
      };
      break;
    case 'granitemoe':
      input = { ...base, router: { ...base.router, selectOn: 'logits' }, experts: { intermediateSize: I, layout: 'fused' } };
      break;
    case 'llama4':
      input = {
        ...base,
        router: { ...base.router, selectOn: 'logits', scoreFunc: 'sigmoid' },
        experts: { intermediateSize: I, layout: 'fused', orientation: 'in-out' },
        shared: { intermediateSize: I },
        dispatch: { weightsOn: 'input' },
      };
      break;
    case 'dbrx': {
      // softmax top-k, weights divided by their p-norm (moe_normalize_expert_weights; null: none)
      const p = c['moe_normalize_expert_weights'];
      input = {
        ...base,
        router: {
          ...base.router,
          renormalize: typeof p === 'number' ? 'pnorm' : 'none',
          renormP: typeof p === 'number' ? p : 1,
          jitterEps: num(c, 'router_jitter_noise', 0),
        },
      };
      break;
    }
    case 'phimoe':
      // router_jitter_noise is sparsemixer's eps; input_jitter_noise jitters the router input in training
      input = {
        ...base,
        router: {
          ...base.router,
          sparseMixer: { jitterEps: num(c, 'router_jitter_noise', 0.01) },
          jitterEps: num(c, 'input_jitter_noise', 0),
        },
      };
      break;
  }
  return moeConfig(input);
}

/** The preset of an HF config's `model_type` ('llama4_text' and 'llama4' -> 'llama4'). */
export function presetNameFromHf(c: HfConfig): PresetName {
  if (!isRecord(c)) throw new ConfigError('config', c, 'an object (a Hugging Face config.json)');
  const t = c['model_type'];
  const name = t === 'llama4_text' ? 'llama4' : t;
  if (!PRESETS.includes(name as PresetName)) {
    const grok =
      t === undefined &&
      ('widening_factor' in c ||
        JSON.stringify(c['architectures'] ?? '')
          .toLowerCase()
          .includes('grok'));
    const hint = grok
      ? " (this looks like Grok-1, whose config has no model_type: moekit does not know its layer names, attention output multiplier or router; write a mixtral-style config.json with model_type 'mixtral', num_local_experts and intermediate_size)"
      : '';
    throw new ConfigError('model_type', t, `one of ${PRESETS.join(', ')}${hint}`);
  }
  return name as PresetName;
}

/** Picks the preset from `model_type` (the text part of `architectures` is not consulted). */
export function moeConfigFromHf(c: HfConfig, opts: PresetFromHfOptions = {}): MoEConfig {
  return presetFromHf(presetNameFromHf(c), c, opts);
}

// ---------------------------------------------------------------- OLMo-core native presets

export const OLMO_CORE_PRESETS = ['smallmoe', 'olmoe_1B_7B'] as const;
export type OlmoCorePresetName = (typeof OLMO_CORE_PRESETS)[number];

/**
 * OLMo-core's MoE blocks (olmo_core.nn.moe, TransformerConfig presets), for model width d:
 * - smallmoe: 32 experts top-4, expert hidden 0.5·d, shared MLP 2·d (mixed OLMo-style:
 *   shared/(K+1) + routed·K/(K+1)), lb 0.01, z 0.001, capacity factor 1.2 (OLMo-core's MoE default;
 *   capacity rounded to a multiple of 8).
 * - olmoe_1B_7B: dropless, 64 experts top-8, expert hidden 1024 (d = 2048), lb 0.01, z 0.001.
 * Both: softmax router, no renormalisation, OLMo LB convention (= 1 at balance), losses scaled
 * by the number of MoE layers. `d` defaults to the preset's own width (768 and 2048).
 */
export function olmoCorePreset(name: OlmoCorePresetName, d?: number): MoEConfig {
  const losses = {
    lbWeight: 0.01,
    zLossWeight: 0.001,
    lbConvention: 'one' as const,
    lbGranularity: 'local-batch' as const,
    scaleByNumLayers: true,
  };
  switch (name) {
    case 'smallmoe': {
      const dm = d ?? 768;
      return moeConfig({
        hiddenSize: dm,
        router: { numExperts: 32, topK: 4 },
        experts: { intermediateSize: Math.trunc(0.5 * dm) },
        shared: { intermediateSize: 2 * dm, mix: 'olmo' },
        dispatch: { capacityFactor: 1.2 },
        losses,
      });
    }
    case 'olmoe_1B_7B': {
      const dm = d ?? 2048;
      return moeConfig({
        hiddenSize: dm,
        router: { numExperts: 64, topK: 8 },
        experts: { intermediateSize: Math.trunc(dm / 2) },
        dispatch: { capacityFactor: null },
        losses,
      });
    }
    default:
      throw new ConfigError('olmoCorePreset name', name, `one of ${OLMO_CORE_PRESETS.map((p) => `'${p}'`).join(', ')}`);
  }
}

export interface MoEParamCounts {
  /** Router weight (+ bias, + the selection bias: DeepSeek-V3's e_score_correction_bias) + all experts + the shared expert (+ its gate). */
  total: number;
  /** As total, with top_k experts instead of all of them (OLMo-core num_active_params). */
  active: number;
}

/**
 * Parameter counts as OLMo-core: router + 3·d·h·E + shared (a gated expert is 3·d·h, a GELU
 * MLP 2·d·h, plus biases where the bank has them); active counts top_k experts. A selection
 * bias counts as E parameters (HF stores DeepSeek-V3's e_score_correction_bias as one).
 */
export function moeParamCounts(cfg: MoEConfig): MoEParamCounts {
  const d = cfg.hiddenSize;
  const E = cfg.router.numExperts;
  const h = cfg.experts.intermediateSize;
  const router = E * d + (cfg.router.routerBias ? E : 0) + (cfg.router.selectionBias ? E : 0);
  const perExpert = (cfg.experts.kind === 'gelu' ? 2 : 3) * d * h + (cfg.experts.bias ? (cfg.experts.kind === 'gelu' ? h : 2 * h) + d : 0);
  const shared = cfg.shared ? 3 * d * cfg.shared.intermediateSize + (cfg.shared.gate === 'sigmoid' ? d : 0) : 0;
  const k = cfg.router.topK;
  return { total: router + perExpert * E + shared, active: router + perExpert * k + shared };
}
