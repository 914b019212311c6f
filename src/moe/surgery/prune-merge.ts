// Expert pruning and merging by routing statistics.
//   pruneExperts: keep the `keep` most-routed experts (by slot count or summed weight; or the
//     ids given); their weights and router rows unchanged.
//   mergeExperts: the `into` most-routed experts become centroids; every other expert joins the
//     centroid whose router row is most similar (cosine), as MC-SMoE groups experts by routing
//     behaviour; each group's weights are the usage-weighted average of its members (uniform when
//     none was used) and its router row is the centroid's.
import { ConfigError } from '../validate.js';
import type { MoELayer } from '../layer.js';
import { type ExpertSources, checkReindexable, rebuildExperts } from './bank-rows.js';
import type { RoutingStats } from './routing-stats.js';

export interface PruneOptions {
  /** How many experts to keep (the most used), or exactly which. */
  keep: number | readonly number[];
  /** Rank by slot counts (default) or by summed routing weight. */
  by?: 'counts' | 'weights';
  /** top-k of the result (default: the layer's, capped at the experts kept). */
  topK?: number;
}

function usage(stats: RoutingStats, by: 'counts' | 'weights'): Float64Array {
  return by === 'weights' ? stats.weightSums : stats.counts;
}

/** Experts ordered by usage, most used first (ties: lower id first). */
export function expertsByUsage(stats: RoutingStats, by: 'counts' | 'weights' = 'counts'): number[] {
  const u = usage(stats, by);
  return Array.from(u.keys()).sort((a, b) => u[b]! - u[a]! || a - b);
}

function checkStats(layer: MoELayer, stats: RoutingStats): number {
  const E = layer.cfg.router.numExperts;
  if (stats.counts.length !== E || stats.weightSums.length !== E)
    throw new RangeError(`routing stats cover ${stats.counts.length} experts, the layer has ${E}`);
  return E;
}

export function pruneExperts(layer: MoELayer, stats: RoutingStats, opts: PruneOptions): { layer: MoELayer; kept: number[] } {
  checkReindexable(layer.cfg, 'prune experts');
  const E = checkStats(layer, stats);
  let kept: number[];
  if (typeof opts.keep === 'number') {
    if (!Number.isInteger(opts.keep) || opts.keep < 1 || opts.keep > E) throw new ConfigError('keep', opts.keep, `an integer in [1, ${E}]`);
    kept = expertsByUsage(stats, opts.by)
      .slice(0, opts.keep)
      .sort((a, b) => a - b);
  } else {
    kept = [...opts.keep];
    if (kept.length === 0 || new Set(kept).size !== kept.length || kept.some((e) => !Number.isInteger(e) || e < 0 || e >= E)) {
      throw new ConfigError('keep', opts.keep, `distinct expert ids in [0, ${E})`);
    }
  }
  const sources: ExpertSources = kept.map((e) => [{ expert: e, weight: 1 }]);
  return { layer: rebuildExperts(layer, sources, kept, opts.topK ?? layer.cfg.router.topK), kept };
}

export interface MergeOptions {
  /** Experts after merging. */
  into: number;
  by?: 'counts' | 'weights';
  topK?: number;
}

function cosine(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, H: number): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let h = 0; h < H; h++) {
    const x = a[ai * H + h]!;
    const y = b[bi * H + h]!;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
}

export function mergeExperts(layer: MoELayer, stats: RoutingStats, opts: MergeOptions): { layer: MoELayer; groups: number[][] } {
  checkReindexable(layer.cfg, 'merge experts');
  const E = checkStats(layer, stats);
  if (!Number.isInteger(opts.into) || opts.into < 1 || opts.into > E) throw new ConfigError('into', opts.into, `an integer in [1, ${E}]`);
  const by = opts.by ?? 'counts';
  const u = usage(stats, by);
  const centroids = expertsByUsage(stats, by)
    .slice(0, opts.into)
    .sort((a, b) => a - b);
  const groups = centroids.map((c) => [c]);
  const W = layer.routerWeight.dataSync();
  const H = layer.cfg.hiddenSize;
  for (let e = 0; e < E; e++) {
    if (centroids.includes(e)) continue;
    let best = 0;
    let bestSim = -Infinity;
    centroids.forEach((c, i) => {
      const s = cosine(W, e, W, c, H);
      if (s > bestSim) [best, bestSim] = [i, s];
    });
    groups[best]!.push(e);
  }
  for (const g of groups) g.sort((a, b) => a - b);
  const sources: ExpertSources = groups.map((g) => {
    const total = g.reduce((s, e) => s + u[e]!, 0);
    return g.map((e) => ({ expert: e, weight: total > 0 ? u[e]! / total : 1 / g.length }));
  });
  return { layer: rebuildExperts(layer, sources, centroids, opts.topK ?? layer.cfg.router.topK), groups };
}
