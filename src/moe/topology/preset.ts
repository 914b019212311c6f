// CT-MoE as a configuration of the core MoELayer: the topology composes with any router and
// expert bank (MoEConfig.topology); this preset picks CT-MoE's own: a softmax router without
// bias or renormalisation, GELU experts D -> D -> D with no biases ([E, D, D] 'in-out', the
// seed's x·W layout), the LB loss in the top-k convention (= k at balance), no z-loss, with
// lbWeight / numLayers applied as the seed does. `new MoELayer(ctMoePreset(...), { init:
// 'ct-moe', numLayers })` is the seed's block with the seed's init (the ablation's model,
// experiments/ctmoe/model.ts); `dispatcher: new DenseDispatcher(E)` runs its experts its way.
import { type MoEConfig, moeConfig } from '../config.js';
import { type CtMoeLayerConfig, ctMoeLayerConfig } from './config.js';

export type CtMoePresetOptions = Partial<
  Pick<CtMoeLayerConfig, 'routingScale' | 'collabScale' | 'sTemp' | 'useTopology' | 'useGraphRouting' | 'useGraphCollab'>
> & {
  /** LB loss weight (the seed: 0.01), divided by MoELayer's numLayers (losses.scaleByNumLayers). */
  lbWeight?: number;
};

/**
 * The CT-MoE block as a core MoEConfig. Flags and scales as CtMoeLayerConfig (same defaults,
 * same validation, fields named `ctMoe.*`); useTopology false (Standard MoE), or both graph
 * flags false, gives topology null (no S_raw parameter).
 */
export function ctMoePreset(dModel: number, numExperts: number, topK: number, opts: CtMoePresetOptions = {}): MoEConfig {
  const { lbWeight = 0.01, ...flags } = opts;
  const c = ctMoeLayerConfig({ dModel, numExperts, topK, ...flags });
  return moeConfig({
    hiddenSize: c.dModel,
    router: { numExperts: c.numExperts, topK: c.topK, scoreFunc: 'softmax', selectOn: 'scores', routerBias: false, renormalize: 'none' },
    experts: { kind: 'gelu', intermediateSize: c.dModel, layout: 'separate', orientation: 'in-out', bias: false },
    losses: { lbWeight, lbConvention: 'top-k', lbGranularity: 'local-batch', zLossWeight: 0, scaleByNumLayers: true },
    // with both paths off S would have no effect: the core config calls that no topology
    topology:
      c.useTopology && (c.useGraphRouting || c.useGraphCollab)
        ? {
            routingBias: c.useGraphRouting,
            collaboration: c.useGraphCollab,
            routingScale: c.routingScale,
            collabScale: c.collabScale,
            sTemp: c.sTemp,
          }
        : null,
  });
}
