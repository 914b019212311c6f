// Named presets reproducing the routers and expert banks of well-known MoE models, and a
// builder from a plain HF config.json object (spec/hf-moe.md).
import { type MoEConfig, type MoEConfigInput, moeConfig } from './config.js';
import { type HfConfig, getMoeIntermediateSize, getNumExperts, getNumExpertsPerTok } from './hf-config.js';
import { ConfigError } from './validate.js';

export const PRESETS = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek_v2', 'deepseek_v3', 'gpt_oss', 'granitemoe', 'llama4'] as const;
export type PresetName = (typeof PRESETS)[number];

const num = (c: HfConfig, k: string, d: number): number => (typeof c[k] === 'number' ? (c[k] as number) : d);

/** The MoE block of model_type `name` with the sizes and options of an HF config (missing keys take HF defaults). */
export function presetFromHf(name: PresetName, c: HfConfig): MoEConfig {
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
      input = { ...base, router: { ...base.router, renormalize: renorm(false) }, losses: { ...hfLosses, zLossWeight: num(c, 'router_z_loss_coef', 0) } };
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
            ? { numGroups: num(c, 'n_group', 1), topkGroups: num(c, 'topk_group', 1), groupScore: v3 ? 'top2-sum' : 'max', maskValue: 'zero' }
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
  }
  return moeConfig(input);
}

/** Picks the preset from `model_type` (the text part of `architectures` is not consulted). */
export function moeConfigFromHf(c: HfConfig): MoEConfig {
  const t = c['model_type'];
  const name = t === 'llama4_text' ? 'llama4' : t;
  if (!PRESETS.includes(name as PresetName)) throw new ConfigError('model_type', t, `one of ${PRESETS.join(', ')}`);
  return presetFromHf(name as PresetName, c);
}
