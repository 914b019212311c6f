// Every per-expert tensor of an MoE layer is stacked on a leading [E] axis (router weight rows,
// router bias, selection bias, every expert-bank parameter whatever its layout), so expert
// surgery is row surgery: a new layer whose expert e' is a weighted sum of old experts' rows.
import { fromArray } from '../../ops/creation.js';
import type { Tensor } from '../../tensor/tensor.js';
import { type MoEConfig, parseMoEConfig } from '../config.js';
import { MoELayer } from '../layer.js';
import { ConfigError } from '../validate.js';

/** New expert e' = Σ (weight · old expert) over its sources. */
export type ExpertSources = { expert: number; weight: number }[][];

/** Whether a layer's config allows its experts to be re-indexed (groups and CT-MoE's S tie experts together). */
export function checkReindexable(cfg: MoEConfig, what: string): void {
  if (cfg.router.groupLimit)
    throw new ConfigError(
      'router.groupLimit',
      cfg.router.groupLimit,
      `null to ${what} (group-limited routing ties experts to fixed groups)`,
    );
  if (cfg.topology) throw new ConfigError('topology', cfg.topology, `null to ${what} (CT-MoE's S matrix is indexed by expert)`);
}

function combineRows(t: Tensor, sources: ExpertSources, E: number): { data: Float32Array | Float64Array; shape: number[] } {
  const src = t.dataSync();
  const row = t.size / E;
  const out = t.dtype === 'f64' ? new Float64Array(sources.length * row) : new Float32Array(sources.length * row);
  sources.forEach((parts, e2) => {
    for (const { expert, weight } of parts) {
      for (let i = 0; i < row; i++) out[e2 * row + i]! += weight * src[expert * row + i]!;
    }
  });
  return { data: out, shape: [sources.length, ...t.shape.slice(1)] };
}

/**
 * A layer with sources.length experts built from `layer`'s: expert rows combined per `sources`;
 * router rows (and biases) taken from `routerFrom[e']`; shared expert and gate copied.
 */
export function rebuildExperts(layer: MoELayer, sources: ExpertSources, routerFrom: number[], topK: number): MoELayer {
  const cfg = layer.cfg;
  const E = cfg.router.numExperts;
  const E2 = sources.length;
  const newCfg: MoEConfig = parseMoEConfig({ ...cfg, router: { ...cfg.router, numExperts: E2, topK: Math.min(topK, E2) } });
  const dtype = layer.routerWeight.dtype === 'f64' ? 'f64' : 'f32';
  const out = new MoELayer(newCfg, { dtype });
  const pick = routerFrom.map((e) => [{ expert: e, weight: 1 }]);
  const state = new Map<string, Tensor>();
  const put = (name: string, t: Tensor, s: ExpertSources) => {
    const r = combineRows(t, s, E);
    state.set(name, fromArray(r.data, r.shape));
  };
  put('routerWeight', layer.routerWeight, pick);
  if (layer.routerBias) put('routerBias', layer.routerBias, pick);
  if (layer.selectionBias) {
    const r = combineRows(layer.selectionBias.bias, pick, E);
    state.set('scoreBias', fromArray(Float32Array.from(r.data), r.shape));
  }
  for (const [name, p] of layer.experts.namedParameters()) put(`experts.${name}`, p, sources);
  for (const [name, p] of layer.namedParameters()) {
    if (name.startsWith('sharedExpert.') || name === 'sharedGate') state.set(name, p);
  }
  out.loadStateDict(state, { strict: true });
  return out;
}
