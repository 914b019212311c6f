// Everything the parallel blocks take from an MoELayer, in one place: its config, router,
// expert bank, shared expert and selection bias, and the reference composition ops. When
// MoELayer's execution becomes an "execution plan" (issue 23), this file is what to re-point.
import { isGradEnabled, noGrad } from '../tensor/autograd.js';
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
import { route } from '../moe/router.js';

/** Refuse the layer features the parallel blocks do not run. */
export function checkParallelizable(layer: MoELayer, who: string): void {
  const cfg = layer.cfg;
  if (cfg.router.kind !== 'token-choice') throw new Error(`${who}: router.kind '${cfg.router.kind}' is not supported across ranks (only 'token-choice')`);
  if (cfg.topology) throw new Error(`${who}: a CT-MoE topology (cfg.topology) is not supported across ranks; use data parallelism for it`);
  if (cfg.losses.lbGranularity === 'instance' && cfg.losses.lbWeight > 0) throw new Error(`${who}: losses.lbGranularity 'instance' is not supported across ranks (use 'local-batch' or 'global-batch')`);
}

/** The layer's router on x [T, H] (its weight, bias and selection bias). */
export function routeWithLayer(layer: MoELayer, x: Tensor): RouterOutput {
  return route(x, layer.routerWeight, layer.routerBias, layer.cfg.router, { training: layer.training, selectionBias: layer.selectionBias?.bias ?? null });
}

/** The parameters every rank holds a full copy of (router, shared expert and its gate). */
export function replicatedParameters(layer: MoELayer): Parameter[] {
  return [layer.routerWeight, layer.routerBias, ...(layer.sharedExpert?.parameters() ?? []), layer.sharedGate].filter((p): p is Parameter => p !== null);
}

/** A new bank of experts [start, start+count) of the layer's bank, with copies of their weights. */
export function sliceExpertBank(layer: MoELayer, start: number, count: number): ExpertBank {
  const full = layer.experts;
  const local = new ExpertBank(count, full.hiddenSize, full.cfg, { dtype: full.downProj.dtype === 'f64' ? 'f64' : 'f32' });
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
 * to y; y unchanged outside training. Global-batch LB accumulates `globalCounts` (counts and tokens
 * summed over the ranks) when given, else these ids' counts, in the layer's accumulator.
 */
export function attachLayerAuxLosses(layer: MoELayer, y: Tensor, logits: Tensor, topkIds: Tensor, numLayers: number, globalCounts?: () => { counts: ArrayLike<number>; tokens: number }): Tensor {
  if (!(layer.training && isGradEnabled())) return y;
  const lc = layer.cfg.losses;
  const w = auxLossWeights(lc, numLayers);
  let total: Tensor | null = null;
  if (w.lb > 0) {
    if (layer.lbAccumulator) {
      if (globalCounts) {
        const g = globalCounts();
        layer.lbAccumulator.addCounts(g.counts, g.tokens);
      } else {
        layer.lbAccumulator.add(topkIds, null);
      }
    }
    const frequencies = layer.lbAccumulator?.frequencies() ?? null;
    const scores = layer.cfg.router.scoreFunc === 'softmax' ? softmax(logits, -1) : sigmoid(logits);
    const l = loadBalancingLoss(scores, topkIds, { convention: lc.lbConvention, frequencies, normalizeScores: layer.cfg.router.scoreFunc === 'sigmoid' });
    total = mul(l, w.lb);
  }
  if (w.z > 0) {
    const l = mul(zLoss(logits), w.z);
    total = total ? add(total, l) : l;
  }
  return total ? attachAuxLoss(y, total) : y;
}

/** x [..., H] as [T, H]. */
export function tokensOf(layer: MoELayer, x: Tensor): Tensor {
  const H = layer.cfg.hiddenSize;
  if (x.shape[x.ndim - 1] !== H) throw new RangeError(`parallel MoE block: input's last axis must be hiddenSize = ${H} (got [${x.shape.join(', ')}])`);
  return reshape(x, [-1, H]);
}
