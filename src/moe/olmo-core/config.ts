// OLMo-core's MoE config surface (olmo_core.nn.moe.MoEConfig / MoERouterConfig) mapped onto
// moekit's MoEConfig, with OLMo-core's defaults: MoEType 'default' (capacity factor 1.2 when
// unset) | 'dropless' (no capacity), lb_loss_weight 0.01, scale_loss_by_num_layers true, top_k 1,
// softmax gating (sigmoid gating adds 1e-7 to the scores), the shared MLP mixed as
// shared/(K+1) + routed·K/(K+1); and its parameter and FLOP counts.
import { ConfigError } from '../validate.js';
import { type MoEConfig, moeConfig } from '../config.js';
import { moeParamCounts } from '../presets.js';

/** OLMo-core's MoEType: 'default' (MoE, capacity-limited, MoEMLP) | 'dropless' (DroplessMoE, DroplessMoEMLP). */
export type MoEType = 'default' | 'dropless';
export const MOE_TYPES: readonly MoEType[] = ['default', 'dropless'];
/** The capacity factor OLMo-core's MoE (MoEType 'default') uses when MoEConfig.capacity_factor is None. */
export const OLMO_CORE_DEFAULT_CAPACITY_FACTOR = 1.2;
/** OLMo-core adds this to sigmoid router scores. */
export const OLMO_CORE_SIGMOID_EPS = 1e-7;

export interface OlmoCoreRouterInput {
  topK?: number;
  jitterEps?: number | null;
  /** p of the p-norm the top-k weights are divided by (null: none). */
  normalizeExpertWeights?: number | null;
  uniformExpertAssignment?: boolean;
  /** Aux-loss-free balancing rate (null: off). */
  biasGamma?: number | null;
  gatingFunction?: 'softmax' | 'sigmoid';
}

export interface OlmoCoreMoEInput {
  name?: MoEType;
  numExperts: number;
  /** Expert width (OLMo-core MoEConfig.hidden_size). */
  hiddenSize: number;
  capacityFactor?: number | null;
  router?: OlmoCoreRouterInput;
  /** The shared MLP's width (FeedForwardConfig.hidden_size), or null. */
  sharedMlp?: { hiddenSize: number } | null;
  lbLossWeight?: number | null;
  lbLossGranularity?: 'local_batch' | 'instance';
  zLossWeight?: number | null;
  scaleLossByNumLayers?: boolean;
}

/** An OLMo-core MoEConfig built for model width dModel, as a moekit MoEConfig. */
export function olmoCoreMoEConfig(input: OlmoCoreMoEInput, dModel: number): MoEConfig {
  const name = input.name ?? 'default';
  if (!MOE_TYPES.includes(name)) throw new ConfigError('name', name, "'default' or 'dropless' (OLMo-core MoEType)");
  if (name === 'dropless' && input.capacityFactor != null) {
    throw new ConfigError(
      'capacityFactor',
      input.capacityFactor,
      "null for MoEType 'dropless' (OLMo-core's DroplessMoE takes no capacity factor)",
    );
  }
  const r = input.router ?? {};
  const gating = r.gatingFunction ?? 'softmax';
  const p = r.normalizeExpertWeights ?? null;
  return moeConfig({
    hiddenSize: dModel,
    router: {
      numExperts: input.numExperts,
      topK: r.topK ?? 1,
      scoreFunc: gating,
      scoreOffset: gating === 'sigmoid' ? OLMO_CORE_SIGMOID_EPS : 0,
      renormalize: p === null ? 'none' : 'pnorm',
      renormP: p ?? 1,
      jitterEps: r.jitterEps ?? 0,
      uniformAssignment: r.uniformExpertAssignment ?? false,
      selectionBias: r.biasGamma == null ? null : { gamma: r.biasGamma, rule: 'sign' },
    },
    experts: { intermediateSize: input.hiddenSize },
    shared: input.sharedMlp ? { intermediateSize: input.sharedMlp.hiddenSize, mix: 'olmo' } : null,
    dispatch: { capacityFactor: name === 'dropless' ? null : (input.capacityFactor ?? OLMO_CORE_DEFAULT_CAPACITY_FACTOR) },
    losses: {
      lbWeight: input.lbLossWeight === undefined ? 0.01 : (input.lbLossWeight ?? 0),
      lbConvention: 'one',
      lbGranularity: input.lbLossGranularity === 'instance' ? 'instance' : 'local-batch',
      zLossWeight: input.zLossWeight ?? 0,
      scaleByNumLayers: input.scaleLossByNumLayers ?? true,
    },
  });
}

/** OLMo-core MoEConfig.num_params / num_active_params (its score_bias is a buffer, not counted). */
export function olmoCoreNumParams(cfg: MoEConfig): { total: number; active: number } {
  const c = moeParamCounts(cfg);
  const buffer = cfg.router.selectionBias ? cfg.router.numExperts : 0;
  return { total: c.total - buffer, active: c.active - buffer };
}

/**
 * OLMo-core MoEBase.num_flops_per_token (training FLOPs of one token through the block):
 * 6·router params + 6·shared MLP params + 6·floor(expert params · top_k / num_experts).
 */
export function olmoCoreMoEFlopsPerToken(cfg: MoEConfig): number {
  const d = cfg.hiddenSize;
  const E = cfg.router.numExperts;
  const router = E * d;
  const shared = cfg.shared ? 3 * d * cfg.shared.intermediateSize : 0;
  const experts = 3 * d * cfg.experts.intermediateSize * E;
  return 6 * router + 6 * shared + 6 * Math.floor((experts * cfg.router.topK) / E);
}
