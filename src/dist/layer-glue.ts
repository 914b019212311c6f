// Everything the parallel blocks take from an MoELayer, in one place: its config, router,
// expert bank, shared expert, selection bias and CT-MoE topology, and the reference composition ops. When
// MoELayer's execution becomes an "execution plan" (issue 23), this file is what to re-point.
import { isGradEnabled, noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, mul, sigmoid } from '../ops/elementwise.js';
import { narrow, reshape } from '../ops/shape.js';
import { softmax } from '../ops/softmax.js';
import type { Parameter } from '../nn/module.js';
import { attachAuxLoss } from '../moe/aux-loss.js';
import type { RouterOutput } from '../moe/contracts.js';
import { expertCapacity } from '../moe/dispatch.js';
import { ExpertBank } from '../moe/experts.js';
import type { MoELayer } from '../moe/layer.js';
import { auxLossWeights, loadBalancingLoss, zLoss } from '../moe/losses.js';
import { countMetrics, meanRowEntropy } from '../moe/metrics.js';
import { route } from '../moe/router.js';
import { expertShardFor } from './partition.js';
import { collaborationCoefficients, topologyRoutingBias, topologySubmatrices } from '../moe/topology/collaboration.js';

/** Refuse the layer features the parallel blocks do not run. */
export function checkParallelizable(layer: MoELayer, who: string): void {
  const cfg = layer.cfg;
  if (cfg.router.kind !== 'token-choice') throw new Error(`${who}: router.kind '${cfg.router.kind}' is not supported across ranks (only 'token-choice')`);
  if (cfg.topology?.collaboration && cfg.dispatch.weightsOn === 'input')
    throw new Error(`${who}: CT-MoE message passing (topology.collaboration) with dispatch.weightsOn 'input' is not supported across ranks (use weightsOn 'output')`);
  if (cfg.losses.lbGranularity === 'instance' && cfg.losses.lbWeight > 0) throw new Error(`${who}: losses.lbGranularity 'instance' is not supported across ranks (use 'local-batch' or 'global-batch')`);
}

/**
 * The layer's router on x [T, H] (its weight, bias and selection bias; with a CT-MoE topology,
 * S's routing bias on the logits), and `combineWeights` [T, K]: the routing weights, or with
 * message passing the folded coefficients b = w + c·wᵀS_sub (topology/collaboration.ts), which
 * need only the token's own k ids: computed on the token's rank, they travel with its slots and
 * the weighted combine there is CT-MoE's message passing.
 */
export function routeWithLayer(layer: MoELayer, x: Tensor): RouterOutput & { combineWeights: Tensor } {
  const tc = layer.cfg.topology;
  const S = layer.topology ? layer.topology.forward() : null;
  const r = route(x, layer.routerWeight, layer.routerBias, layer.cfg.router, {
    training: layer.training,
    selectionBias: layer.selectionBias?.bias ?? null,
    logitBias: S && tc?.routingBias ? topologyRoutingBias(S, tc.routingScale) : null,
  });
  const combineWeights = S && tc?.collaboration ? collaborationCoefficients(topologySubmatrices(S, r.topkIds), r.topkWeights, tc.collabScale) : r.topkWeights;
  return { ...r, combineWeights };
}

/** The parameters every rank holds a full copy of (router, CT-MoE's S_raw, shared expert and its gate). */
export function replicatedParameters(layer: MoELayer): Parameter[] {
  return [layer.routerWeight, layer.routerBias, ...layer.topologyParameters(), ...(layer.sharedExpert?.parameters() ?? []), layer.sharedGate].filter(
    (p): p is Parameter => p !== null,
  );
}

/**
 * The experts this rank runs, [first, first + E/size): the layer's own bank when the layer was
 * built with this rank's expertShard (or holds all experts and the group is one rank), else a
 * copy of that slice of the layer's full bank (the full bank stays the caller's).
 */
export function rankExperts(layer: MoELayer, group: { rank: number; size: number }, kind: string): { bank: ExpertBank; first: number } {
  const E = layer.cfg.router.numExperts;
  const want = expertShardFor(E, group, kind);
  const held = layer.expertShard;
  if (held) {
    if (held.first !== want.first || held.count !== want.count)
      throw new RangeError(
        `${kind} MoE block: the layer holds experts [${held.first}, ${held.first + held.count}) but rank ${group.rank} of ${group.size} runs [${want.first}, ${want.first + want.count}); build it with expertShard: expertShardFor(${E}, group)`,
      );
    return { bank: layer.experts, first: want.first };
  }
  return { bank: group.size === 1 ? layer.experts : sliceExpertBank(layer, want.first, want.count), first: want.first };
}

/** A new bank of experts [start, start+count) of the layer's bank, with copies of their weights. */
function sliceExpertBank(layer: MoELayer, start: number, count: number): ExpertBank {
  const full = layer.experts;
  // its init draws are overwritten: take them from a generator of its own, so the default stream
  // (dropout) goes on as in a single process
  const local = new ExpertBank(count, full.hiddenSize, full.cfg, { dtype: full.downProj.dtype === 'f64' ? 'f64' : 'f32', generator: new Generator(0) });
  noGrad(() => {
    const fullParams = full.namedParameters();
    const localParams = new Map(local.namedParameters());
    for (const [name, p] of fullParams) {
      const q = localParams.get(name)!;
      q.storage = q.backend.copy(narrow(p, 0, start, count).storage);
    }
  });
  return local;
}

/** Per-expert capacity over T tokens as the single-process layer computes it (null: dropless). */
export function layerCapacity(layer: MoELayer, numTokens: number): number | null {
  const d = layer.cfg.dispatch;
  return d.capacityFactor === null ? null : expertCapacity(d.capacityFactor, layer.cfg.router.topK, numTokens, layer.cfg.router.numExperts, d.capacityMultiple);
}

/** OLMo-core's expert-parallel capacity: ep_world · allowed, allowed from the rank-local token count. */
export function expertParallelCapacity(layer: MoELayer, localTokens: number, epWorld: number): number | null {
  const c = layerCapacity(layer, localTokens);
  return c === null ? null : epWorld * c;
}

/**
 * The layer's scaled aux losses (LB, z) over ALL tokens' logits [T, E] and ids [T, K], attached
 * to y (y unchanged outside training), and what MoELayer records after a forward over those
 * tokens: `lastMetrics` (counts, entropies, drops, the aux values) and, in training, the usage
 * buffer. Global-batch LB accumulates `globalCounts` (counts and tokens summed over the ranks)
 * when given, else these ids' counts, in the layer's accumulator.
 */
export function attachLayerAuxLosses(
  layer: MoELayer,
  y: Tensor,
  logits: Tensor,
  topkIds: Tensor,
  numLayers: number,
  globalCounts?: () => { counts: ArrayLike<number>; tokens: number },
  droppedSlots = 0,
): Tensor {
  const lc = layer.cfg.losses;
  const w = auxLossWeights(lc, numLayers);
  const scoreFunc = layer.cfg.router.scoreFunc;
  const scores = scoreFunc === 'softmax' ? softmax(logits, -1) : sigmoid(logits);
  const wantLosses = layer.training && isGradEnabled();
  let total: Tensor | null = null;
  let lb: number | null = null;
  let z: number | null = null;
  if (wantLosses && w.lb > 0) {
    if (layer.lbAccumulator) {
      if (globalCounts) {
        const g = globalCounts();
        layer.lbAccumulator.addCounts(g.counts, g.tokens);
      } else {
        layer.lbAccumulator.add(topkIds, null);
      }
    }
    const frequencies = layer.lbAccumulator?.frequencies() ?? null;
    const l = loadBalancingLoss(scores, topkIds, { convention: lc.lbConvention, frequencies, normalizeScores: scoreFunc === 'sigmoid' });
    lb = l.item();
    total = mul(l, w.lb);
  }
  if (wantLosses && w.z > 0) {
    const l = zLoss(logits);
    z = l.item();
    const scaled = mul(l, w.z);
    total = total ? add(total, scaled) : scaled;
  }
  const [T, K] = topkIds.shape as [number, number];
  const E = layer.cfg.router.numExperts;
  const counts = new Int32Array(E);
  for (const e of topkIds.dataSync()) counts[e]!++;
  if (layer.training) for (let e = 0; e < E; e++) layer.usage[e]! += counts[e]!;
  layer.lastMetrics = {
    tokensPerExpert: counts,
    ...countMetrics(counts),
    routerEntropy: meanRowEntropy(scores.dataSync(), T, E),
    droppedFraction: T > 0 ? droppedSlots / (T * K) : 0,
    lbLoss: lb,
    lbLossScaled: wantLosses ? (lb ?? 0) * w.lb : null,
    zLoss: z,
    zLossScaled: wantLosses ? (z ?? 0) * w.z : null,
  };
  return total ? attachAuxLoss(y, total) : y;
}

/** x [..., H] as [T, H]. */
export function tokensOf(layer: MoELayer, x: Tensor): Tensor {
  const H = layer.cfg.hiddenSize;
  if (x.shape[x.ndim - 1] !== H) throw new RangeError(`parallel MoE block: input's last axis must be hiddenSize = ${H} (got [${x.shape.join(', ')}])`);
  return reshape(x, [-1, H]);
}
