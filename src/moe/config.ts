// Typed, validated MoE configs (plain JSON data; builders turn them into modules).
// `parseX(partial)` fills defaults and validates; it accepts the JSON of a config it produced,
// so `parseMoEConfig(JSON.parse(JSON.stringify(cfg)))` round-trips.
import { ConfigError, bool, int, isRecord, num, oneOf, or, record } from './validate.js';

export type ScoreFunc = 'softmax' | 'sigmoid';
/**
 * 'scores': top-k over the scores (Mixtral, Qwen, OLMoE, DeepSeek).
 * 'logits': top-k over the logits, then the score function over the k (GPT-OSS, Granite:
 * softmax over the k; Llama-4: sigmoid of each of the k).
 */
export type SelectOn = 'scores' | 'logits';
export type Renormalize = 'none' | 'sum' | 'pnorm';
/**
 * 'token-choice': each token picks its top-k experts (every preset).
 * 'expert-choice' (Zhou et al. 2022): each expert picks its top-c tokens by score, with
 * c = round(capacityFactor · T · topK / E) clamped to [1, T]; a token gets 0..E experts.
 */
export type RouterKind = 'token-choice' | 'expert-choice';

/** Group-limited top-k (DeepSeek-V2 'group_limited_greedy': max; V3 'noaux_tc': top2-sum). */
export interface GroupLimitConfig {
  numGroups: number;
  topkGroups: number;
  groupScore: 'top2-sum' | 'max';
  /** What masked experts' selection scores become: HF uses 0.0, vLLM -inf (differ when biased scores < 0). */
  maskValue: 'zero' | 'neg-inf';
}

/** Auxiliary-loss-free balancing: a bias on the scores for selection only, updated per batch. */
export interface SelectionBiasConfig {
  /** Update rate γ in bias += γ·sign(mean(c) − c). */
  gamma: number;
  /** 'sign': OLMo-core / DeepSeek-V3; 'sign-centered': torchtitan (the update has zero mean). */
  rule: 'sign' | 'sign-centered';
}

/**
 * Phi-MoE's sparsemixer (top-2 only): expert 1 = argmax, expert 2 = argmax of the rest; each
 * weight is a softmax over the scores within a relative gap 2·jitterEps of that round's max
 * (|max − s| / max(|s|, max) <= 2·eps); training samples the experts (Gumbel) and uses
 * Heun's third-order estimator for the gradient (sparsemixer.ts).
 */
export interface SparseMixerConfig {
  jitterEps: number;
}

export interface RouterConfig {
  /** 'token-choice' (default) or 'expert-choice'. */
  kind: RouterKind;
  numExperts: number;
  /** Token choice: experts per token. Expert choice: the mean experts per token k in c = T·k/E. */
  topK: number;
  /** Expert choice only: multiplies the per-expert capacity c = round(cf·T·topK/E) (default 1). */
  capacityFactor: number;
  scoreFunc: ScoreFunc;
  selectOn: SelectOn;
  /** A learned bias on the logits (GPT-OSS). */
  routerBias: boolean;
  renormalize: Renormalize;
  /** p of the p-norm when renormalize is 'pnorm' (OLMo-core normalize_expert_weights). */
  renormP: number;
  /** Multiplies the final weights (DeepSeek routed_scaling_factor). */
  scalingFactor: number;
  /** Training only: the router input is multiplied by U(1-ε, 1+ε). 0 = off. */
  jitterEps: number;
  /** Benchmarking: slot i goes to expert i mod E, whatever the scores say (OLMo-core). */
  uniformAssignment: boolean;
  selectionBias: SelectionBiasConfig | null;
  groupLimit: GroupLimitConfig | null;
  /** Phi-MoE's sparsemixer selection and weights instead of top-k (null: top-k). */
  sparseMixer: SparseMixerConfig | null;
  /**
   * Diffulex's optimised (Triton) top-k path: NaN logits become -1e20 and all logits are
   * clamped to [-1e20, 1e20] before the score function (default false).
   */
  sanitizeLogits: boolean;
  /** Added to sigmoid scores (OLMo-core's sigmoid gating adds 1e-7); 0 for softmax routers. */
  scoreOffset: number;
}

const ROUTER_KEYS = [
  'kind',
  'capacityFactor',
  'numExperts',
  'topK',
  'scoreFunc',
  'selectOn',
  'routerBias',
  'renormalize',
  'renormP',
  'scalingFactor',
  'jitterEps',
  'uniformAssignment',
  'selectionBias',
  'groupLimit',
  'sparseMixer',
  'sanitizeLogits',
  'scoreOffset',
] as const;

export function parseRouterConfig(input: unknown, field = 'router'): RouterConfig {
  const r = record(field, input, ROUTER_KEYS);
  const f = (k: string) => `${field}.${k}`;
  const numExperts = int(f('numExperts'), r['numExperts'], 1);
  const topK = int(f('topK'), r['topK'], 1, numExperts, `at most numExperts = ${numExperts}`);
  const selectOn = oneOf(f('selectOn'), or(r['selectOn'], 'scores'), ['scores', 'logits'] as const);
  const selectionBias = parseSelectionBias(or(r['selectionBias'], null), f('selectionBias'));
  const groupLimit = parseGroupLimit(or(r['groupLimit'], null), f('groupLimit'), numExperts, topK);
  if (selectOn === 'logits' && (selectionBias || groupLimit)) {
    throw new ConfigError(f('selectOn'), selectOn, "'scores' when selectionBias or groupLimit is set (they act on scores)");
  }
  const kind = oneOf(f('kind'), or(r['kind'], 'token-choice'), ['token-choice', 'expert-choice'] as const);
  const capacityFactor = num(f('capacityFactor'), or(r['capacityFactor'], 1), { min: 0, minOpen: true });
  const renormalize = oneOf(f('renormalize'), or(r['renormalize'], 'none'), ['none', 'sum', 'pnorm'] as const);
  const uniformAssignment = bool(f('uniformAssignment'), or(r['uniformAssignment'], false));
  if (kind === 'expert-choice') {
    // experts choose tokens by score: the token-choice selection options have no meaning there
    const why = "unset for kind 'expert-choice' (experts pick their top-c tokens by score)";
    if (selectOn !== 'scores') throw new ConfigError(f('selectOn'), selectOn, `'scores' for kind 'expert-choice'`);
    if (selectionBias) throw new ConfigError(f('selectionBias'), r['selectionBias'], `null: ${why}`);
    if (groupLimit) throw new ConfigError(f('groupLimit'), r['groupLimit'], `null: ${why}`);
    if (uniformAssignment) throw new ConfigError(f('uniformAssignment'), true, `false: ${why}`);
    if (renormalize !== 'none')
      throw new ConfigError(
        f('renormalize'),
        renormalize,
        `'none' for kind 'expert-choice' (a token may get 0 experts; its weights are its scores)`,
      );
  }
  const sparseMixer = parseSparseMixer(or(r['sparseMixer'], null), f('sparseMixer'));
  if (sparseMixer) {
    const why = 'with sparseMixer (Phi-MoE: softmax scores, top-2 token choice, its own weights)';
    if (topK !== 2) throw new ConfigError(f('topK'), topK, `2 ${why}`);
    if (kind !== 'token-choice' || selectOn !== 'scores' || selectionBias || groupLimit || renormalize !== 'none' || uniformAssignment) {
      throw new ConfigError(
        f('sparseMixer'),
        r['sparseMixer'],
        `null, or kind 'token-choice', selectOn 'scores', renormalize 'none', no selectionBias / groupLimit / uniformAssignment ${why}`,
      );
    }
    if (r['scoreFunc'] !== undefined && r['scoreFunc'] !== 'softmax')
      throw new ConfigError(f('scoreFunc'), r['scoreFunc'], `'softmax' ${why}`);
  }
  const scoreFunc = oneOf(f('scoreFunc'), or(r['scoreFunc'], 'softmax'), ['softmax', 'sigmoid'] as const);
  const scoreOffset = num(f('scoreOffset'), or(r['scoreOffset'], 0), { min: 0 });
  if (scoreOffset !== 0 && (scoreFunc !== 'sigmoid' || kind !== 'token-choice'))
    throw new ConfigError(f('scoreOffset'), scoreOffset, "0 unless scoreFunc is 'sigmoid' on a token-choice router");
  return {
    kind,
    numExperts,
    topK,
    capacityFactor,
    scoreFunc,
    selectOn,
    routerBias: bool(f('routerBias'), or(r['routerBias'], false)),
    renormalize,
    renormP: num(f('renormP'), or(r['renormP'], 1), { min: 0, minOpen: true }),
    scalingFactor: num(f('scalingFactor'), or(r['scalingFactor'], 1), { min: 0, minOpen: true }),
    jitterEps: num(f('jitterEps'), or(r['jitterEps'], 0), { min: 0, max: 1, maxOpen: true }),
    uniformAssignment,
    selectionBias,
    groupLimit,
    sparseMixer,
    sanitizeLogits: bool(f('sanitizeLogits'), or(r['sanitizeLogits'], false)),
    scoreOffset,
  };
}

function parseSparseMixer(v: unknown, field: string): SparseMixerConfig | null {
  if (v === null) return null;
  const r = record(field, v, ['jitterEps']);
  return { jitterEps: num(`${field}.jitterEps`, or(r['jitterEps'], 0.01), { min: 0 }) };
}

function parseSelectionBias(v: unknown, field: string): SelectionBiasConfig | null {
  if (v === null) return null;
  const r = record(field, v, ['gamma', 'rule']);
  return {
    gamma: num(`${field}.gamma`, r['gamma'], { min: 0 }),
    rule: oneOf(`${field}.rule`, or(r['rule'], 'sign'), ['sign', 'sign-centered'] as const),
  };
}

function parseGroupLimit(v: unknown, field: string, numExperts: number, topK: number): GroupLimitConfig | null {
  if (v === null) return null;
  const r = record(field, v, ['numGroups', 'topkGroups', 'groupScore', 'maskValue']);
  const numGroups = int(`${field}.numGroups`, r['numGroups'], 1, numExperts);
  if (numExperts % numGroups !== 0) {
    throw new ConfigError(`${field}.numGroups`, numGroups, `a divisor of numExperts = ${numExperts}`);
  }
  const topkGroups = int(`${field}.topkGroups`, r['topkGroups'], 1, numGroups, `at most numGroups = ${numGroups}`);
  const perGroup = numExperts / numGroups;
  if (topK > topkGroups * perGroup) {
    throw new ConfigError(
      `${field}.topkGroups`,
      topkGroups,
      `at least ceil(topK / experts per group) = ${Math.ceil(topK / perGroup)} so topK = ${topK} experts can be chosen`,
    );
  }
  return {
    numGroups,
    topkGroups,
    groupScore: oneOf(`${field}.groupScore`, or(r['groupScore'], 'top2-sum'), ['top2-sum', 'max'] as const),
    maskValue: oneOf(`${field}.maskValue`, or(r['maskValue'], 'zero'), ['zero', 'neg-inf'] as const),
  };
}

// ---------------------------------------------------------------- experts, dispatch, losses

export type ExpertKind = 'swiglu' | 'gelu' | 'gpt-oss';
/** Where gate and up live in a fused projection: 'separate' tensors, 'fused' halves (gate first), 'interleaved' (even gate, odd up). */
export type GateUpLayout = 'separate' | 'fused' | 'interleaved';
/** Stacked weights [E, out, in] (PyTorch Linear, HF) or [E, in, out] (GPT-OSS, Llama-4, CT-MoE). */
export type Orientation = 'out-in' | 'in-out';

export interface ExpertConfig {
  kind: ExpertKind;
  intermediateSize: number;
  layout: GateUpLayout;
  orientation: Orientation;
  bias: boolean;
  /** GPT-OSS clamped SwiGLU: gate <= limit, |up| <= limit, glu = gate·σ(alpha·gate), out = (up+1)·glu. */
  swigluLimit: number;
  swigluAlpha: number;
}

export function parseExpertConfig(input: unknown, field = 'experts'): ExpertConfig {
  const r = record(field, input, ['kind', 'intermediateSize', 'layout', 'orientation', 'bias', 'swigluLimit', 'swigluAlpha']);
  const kind = oneOf(`${field}.kind`, or(r['kind'], 'swiglu'), ['swiglu', 'gelu', 'gpt-oss'] as const);
  const layout = oneOf(`${field}.layout`, or(r['layout'], kind === 'gpt-oss' ? 'interleaved' : 'separate'), [
    'separate',
    'fused',
    'interleaved',
  ] as const);
  if (kind === 'gelu' && layout !== 'separate')
    throw new ConfigError(`${field}.layout`, layout, "'separate' for a GELU MLP (it has no gate)");
  const bias = bool(`${field}.bias`, or(r['bias'], kind === 'gpt-oss'));
  if (bias && kind !== 'gelu' && layout === 'separate') {
    throw new ConfigError(
      `${field}.bias`,
      bias,
      "false for a gated bank with layout 'separate' (biases need layout 'fused' or 'interleaved')",
    );
  }
  return {
    kind,
    intermediateSize: int(`${field}.intermediateSize`, r['intermediateSize'], 1),
    layout,
    orientation: oneOf(`${field}.orientation`, or(r['orientation'], kind === 'gpt-oss' ? 'in-out' : 'out-in'), [
      'out-in',
      'in-out',
    ] as const),
    bias,
    swigluLimit: num(`${field}.swigluLimit`, or(r['swigluLimit'], 7), { min: 0, minOpen: true }),
    swigluAlpha: num(`${field}.swigluAlpha`, or(r['swigluAlpha'], 1.702), { min: 0, minOpen: true }),
  };
}

export interface SharedExpertConfig {
  intermediateSize: number;
  /** 'sigmoid': scaled by sigmoid(x·w_gate) with w_gate a Linear(H, 1) (Qwen2-MoE). */
  gate: 'none' | 'sigmoid';
  /** 'add': routed + shared; 'olmo': shared/(K+1) + routed·K/(K+1) (OLMo-core). */
  mix: 'add' | 'olmo';
}

export function parseSharedExpertConfig(input: unknown, field = 'shared'): SharedExpertConfig | null {
  if (input === null || input === undefined) return null;
  const r = record(field, input, ['intermediateSize', 'gate', 'mix']);
  return {
    intermediateSize: int(`${field}.intermediateSize`, r['intermediateSize'], 1),
    gate: oneOf(`${field}.gate`, or(r['gate'], 'none'), ['none', 'sigmoid'] as const),
    mix: oneOf(`${field}.mix`, or(r['mix'], 'add'), ['add', 'olmo'] as const),
  };
}

export interface DispatchConfig {
  /** null = dropless; else each expert takes at most capacity(cf) slots, the rest dropped. */
  capacityFactor: number | null;
  /** Capacity is rounded up to a multiple of this (OLMo-core: 8). */
  capacityMultiple: number;
  /** 'output': y = Σ w·expert(x) (most models); 'input': y = Σ expert(w·x) (Llama-4). */
  weightsOn: 'output' | 'input';
}

export function parseDispatchConfig(input: unknown, field = 'dispatch'): DispatchConfig {
  const r = record(field, or(input, {}), ['capacityFactor', 'capacityMultiple', 'weightsOn']);
  const cf = or(r['capacityFactor'], null);
  return {
    capacityFactor: cf === null ? null : num(`${field}.capacityFactor`, cf, { min: 0, minOpen: true }),
    capacityMultiple: int(`${field}.capacityMultiple`, or(r['capacityMultiple'], 8), 1),
    weightsOn: oneOf(`${field}.weightsOn`, or(r['weightsOn'], 'output'), ['output', 'input'] as const),
  };
}

/** 'top-k': = top_k at balance (HF, CT-MoE); 'one': = 1 at balance (OLMo-core, MegaBlocks). */
export type LbConvention = 'top-k' | 'one';
export type LbGranularity = 'local-batch' | 'instance' | 'global-batch';

export interface LossConfig {
  lbWeight: number;
  lbConvention: LbConvention;
  lbGranularity: LbGranularity;
  zLossWeight: number;
  /** Divide both weights by the number of MoE layers (OLMo-core scale_loss_by_num_layers). */
  scaleByNumLayers: boolean;
}

export function parseLossConfig(input: unknown, field = 'losses'): LossConfig {
  const r = record(field, or(input, {}), ['lbWeight', 'lbConvention', 'lbGranularity', 'zLossWeight', 'scaleByNumLayers']);
  return {
    lbWeight: num(`${field}.lbWeight`, or(r['lbWeight'], 0), { min: 0 }),
    lbConvention: oneOf(`${field}.lbConvention`, or(r['lbConvention'], 'one'), ['top-k', 'one'] as const),
    lbGranularity: oneOf(`${field}.lbGranularity`, or(r['lbGranularity'], 'local-batch'), [
      'local-batch',
      'instance',
      'global-batch',
    ] as const),
    zLossWeight: num(`${field}.zLossWeight`, or(r['zLossWeight'], 0), { min: 0 }),
    scaleByNumLayers: bool(`${field}.scaleByNumLayers`, or(r['scaleByNumLayers'], false)),
  };
}

/**
 * CT-MoE's learned expert-collaboration topology (spec/seed-systems.md section 2) on any
 * token-choice router and expert bank: S = softmax(mask_diag((S_raw + S_rawᵀ)/2) / sTemp)
 * row-wise, [E, E]. routingBias: routingScale · (column sums of S) are added to the router
 * logits (before the score function; selection, weights and the aux losses all see them).
 * collaboration: each token's k selected expert outputs exchange messages before the
 * weighted combine, out'_k = out_k + collabScale · Σ_j S_sub[k,j] out_j, with S_sub the k×k
 * sub-matrix of S over the selected experts, rows renormalised (+1e-9).
 */
export interface MoETopologyConfig {
  routingBias: boolean;
  collaboration: boolean;
  routingScale: number;
  collabScale: number;
  sTemp: number;
}

export function parseMoETopologyConfig(input: unknown, field = 'topology'): MoETopologyConfig | null {
  if (input === null || input === undefined) return null;
  const r = record(field, input, ['routingBias', 'collaboration', 'routingScale', 'collabScale', 'sTemp']);
  const cfg: MoETopologyConfig = {
    routingBias: bool(`${field}.routingBias`, or(r['routingBias'], true)),
    collaboration: bool(`${field}.collaboration`, or(r['collaboration'], true)),
    routingScale: num(`${field}.routingScale`, or(r['routingScale'], 1.5)),
    collabScale: num(`${field}.collabScale`, or(r['collabScale'], 1)),
    sTemp: num(`${field}.sTemp`, or(r['sTemp'], 1), { min: 0, minOpen: true }),
  };
  if (!cfg.routingBias && !cfg.collaboration) {
    throw new ConfigError(
      `${field}.collaboration`,
      false,
      `true when ${field}.routingBias is false (a topology with neither path is no topology: use ${field} = null)`,
    );
  }
  return cfg;
}

export interface MoEConfig {
  hiddenSize: number;
  router: RouterConfig;
  experts: ExpertConfig;
  shared: SharedExpertConfig | null;
  dispatch: DispatchConfig;
  losses: LossConfig;
  /** CT-MoE collaboration topology, or null (none). Token-choice routers only. */
  topology: MoETopologyConfig | null;
}

export function parseMoEConfig(input: unknown, field = 'moe'): MoEConfig {
  const r = record(field, input, ['hiddenSize', 'router', 'experts', 'shared', 'dispatch', 'losses', 'topology']);
  const cfg: MoEConfig = {
    hiddenSize: int(`${field}.hiddenSize`, r['hiddenSize'], 1),
    router: parseRouterConfig(r['router'], `${field}.router`),
    experts: parseExpertConfig(r['experts'], `${field}.experts`),
    shared: parseSharedExpertConfig(r['shared'], `${field}.shared`),
    dispatch: parseDispatchConfig(r['dispatch'], `${field}.dispatch`),
    losses: parseLossConfig(r['losses'], `${field}.losses`),
    topology: parseMoETopologyConfig(r['topology'], `${field}.topology`),
  };
  if (cfg.topology) {
    if (cfg.router.kind === 'expert-choice') {
      // message passing is over each token's k selected experts; under expert choice a token has 0..E
      throw new ConfigError(
        `${field}.topology`,
        r['topology'],
        "null for router.kind 'expert-choice' (a token does not have exactly topK experts to pass messages between)",
      );
    }
    if (cfg.router.numExperts < 2) {
      throw new ConfigError(
        `${field}.router.numExperts`,
        cfg.router.numExperts,
        'an integer >= 2 when topology is set (S has a zero diagonal)',
      );
    }
  }
  if (cfg.router.kind === 'expert-choice') {
    if (cfg.dispatch.capacityFactor !== null) {
      throw new ConfigError(
        `${field}.dispatch.capacityFactor`,
        cfg.dispatch.capacityFactor,
        "null for router.kind 'expert-choice' (set router.capacityFactor instead)",
      );
    }
    if (cfg.losses.lbWeight !== 0) {
      throw new ConfigError(
        `${field}.losses.lbWeight`,
        cfg.losses.lbWeight,
        "0 for router.kind 'expert-choice' (every expert takes exactly c tokens: balanced by construction)",
      );
    }
  }
  return cfg;
}

/** Deep-partial input accepted by parseMoEConfig (handy for presets and tests). */
export type MoEConfigInput = {
  hiddenSize: number;
  router: Partial<RouterConfig> & Pick<RouterConfig, 'numExperts' | 'topK'>;
  experts: Partial<ExpertConfig> & Pick<ExpertConfig, 'intermediateSize'>;
  shared?: (Partial<SharedExpertConfig> & Pick<SharedExpertConfig, 'intermediateSize'>) | null;
  dispatch?: Partial<DispatchConfig>;
  losses?: Partial<LossConfig>;
  topology?: Partial<MoETopologyConfig> | null;
};

export function moeConfig(input: MoEConfigInput): MoEConfig {
  return parseMoEConfig(input);
}

export function routerConfig(input: Partial<RouterConfig> & Pick<RouterConfig, 'numExperts' | 'topK'>): RouterConfig {
  return parseRouterConfig(input);
}

export { ConfigError, isRecord };
