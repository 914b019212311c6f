// CT-MoE block config (pingBenM/CT-MoE, spec/seed-systems.md section 2): plain, typed,
// validated data, which ctMoePreset turns into a core MoEConfig. Every failure names the
// field, the value and what is allowed.
import { ConfigError, bool, int, num, or, record } from '../validate.js';

export interface CtMoeLayerConfig {
  /** Model width D (the experts are D -> D -> D GELU MLPs, no biases). */
  dModel: number;
  /** N experts (the seed: 16). */
  numExperts: number;
  /** k experts per token (the seed: 2; S matters in message passing only for k >= 3). */
  topK: number;
  /** Column-sum routing bias multiplier (the seed's code: 1.5; its paper text says 0.5). */
  routingScale: number;
  /** Message-passing residual amplitude (the seed's code: 1.0; paper text 0.5). */
  collabScale: number;
  /** Softmax temperature for S. */
  sTemp: number;
  /** false: Standard MoE (no S at all: no S_raw parameter, no routing bias, no message passing). */
  useTopology: boolean;
  /** Add routingScale * S.sum(dim=0) to the router logits (needs useTopology). */
  useGraphRouting: boolean;
  /** Message passing over the k selected experts (needs useTopology). */
  useGraphCollab: boolean;
}

export const CT_MOE_LAYER_DEFAULTS: Omit<CtMoeLayerConfig, 'dModel'> = {
  numExperts: 16,
  topK: 2,
  routingScale: 1.5,
  collabScale: 1.0,
  sTemp: 1.0,
  useTopology: true,
  useGraphRouting: true,
  useGraphCollab: true,
};

const FIELDS = [
  'dModel',
  'numExperts',
  'topK',
  'routingScale',
  'collabScale',
  'sTemp',
  'useTopology',
  'useGraphRouting',
  'useGraphCollab',
] as const;

/**
 * Fill defaults and validate. Throws a ConfigError (a RangeError) naming the field
 * (`ctMoe.topK`), the value and the allowed range.
 */
export function ctMoeLayerConfig(input: Partial<CtMoeLayerConfig> & { dModel: number }, field = 'ctMoe'): CtMoeLayerConfig {
  const v = record(field, input, FIELDS);
  const f = (k: string) => `${field}.${k}`;
  const numExperts = int(f('numExperts'), or(v['numExperts'], CT_MOE_LAYER_DEFAULTS.numExperts), 2, 4096);
  const cfg: CtMoeLayerConfig = {
    dModel: int(f('dModel'), v['dModel'], 1),
    numExperts,
    topK: int(f('topK'), or(v['topK'], CT_MOE_LAYER_DEFAULTS.topK), 1, numExperts, `at most numExperts = ${numExperts}`),
    routingScale: num(f('routingScale'), or(v['routingScale'], CT_MOE_LAYER_DEFAULTS.routingScale)),
    collabScale: num(f('collabScale'), or(v['collabScale'], CT_MOE_LAYER_DEFAULTS.collabScale)),
    sTemp: num(f('sTemp'), or(v['sTemp'], CT_MOE_LAYER_DEFAULTS.sTemp), { min: 0, minOpen: true }),
    useTopology: bool(f('useTopology'), or(v['useTopology'], CT_MOE_LAYER_DEFAULTS.useTopology)),
    useGraphRouting: bool(f('useGraphRouting'), or(v['useGraphRouting'], CT_MOE_LAYER_DEFAULTS.useGraphRouting)),
    useGraphCollab: bool(f('useGraphCollab'), or(v['useGraphCollab'], CT_MOE_LAYER_DEFAULTS.useGraphCollab)),
  };
  if (!cfg.useTopology && (cfg.useGraphRouting || cfg.useGraphCollab)) {
    // the seed's is_baseline ignores the two flags; here the combination must be explicit
    const which = cfg.useGraphRouting ? 'useGraphRouting' : 'useGraphCollab';
    throw new ConfigError(f(which), true, `false when ${f('useTopology')} is false (a Standard MoE has no S)`);
  }
  return cfg;
}
