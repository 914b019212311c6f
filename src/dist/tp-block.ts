// Tensor-parallel MoE block (Diffulex's TP FusedMoE): every rank routes ALL tokens, owns
// E / tp experts, runs the slots of its experts, and the partial outputs are all-reduced.
// With one rank it is the naive block (the single-process reference composition).
// Gradients come out complete on every rank with no extra step: the routing weights and the
// tokens enter the expert part through copyToRegion (backward sums the ranks' parts), the
// output leaves through reduceFromRegion, and the router, aux losses and shared expert are
// computed identically on every rank.
import type { Tensor } from '../tensor/tensor.js';
import { mul } from '../ops/elementwise.js';
import { indexAdd, indexSelect } from '../ops/indexing.js';
import { cast } from '../ops/cast.js';
import { reshape } from '../ops/shape.js';
import { Module, type Parameter } from '../nn/module.js';
import type { ExpertExecutionMetadata } from '../moe/contracts.js';
import { planSlots } from '../moe/dispatch.js';
import type { ExpertBank } from '../moe/experts.js';
import type { MoELayer } from '../moe/layer.js';
import { arrayLike, fullLike } from '../moe/tensors.js';
import type { Communicator } from './communicator.js';
import { copyToRegion, reduceFromRegion } from './differentiable.js';
import { attachLayerAuxLosses, checkParallelizable, layerCapacity, rankExperts, replicatedParameters, routeWithLayer, tokensOf } from './layer-glue.js';
import { expertOfRows } from './partition.js';

export class TensorParallelMoeBlock extends Module {
  /** This rank's experts [firstExpert, firstExpert + experts.numExperts). */
  readonly experts: ExpertBank;
  readonly firstExpert: number;
  /** [T, E] router logits of the latest forward. */
  lastRouterLogits: Tensor | null = null;

  constructor(
    readonly layer: MoELayer,
    readonly group: Communicator,
    readonly numLayers = 1,
  ) {
    super();
    checkParallelizable(layer, 'tp MoE block');
    // every rank routes the same tokens: their routing must not depend on a per-rank random draw
    if (group.size > 1 && layer.cfg.router.jitterEps > 0) throw new Error('tp MoE block: router.jitterEps > 0 would give each rank different routing (its noise is drawn per process); use jitterEps 0 or the ep block');
    // one rank: the layer's own bank (the naive block)
    ({ bank: this.experts, first: this.firstExpert } = rankExperts(layer, group, 'tp'));
  }

  replicatedParameters(): Parameter[] {
    return replicatedParameters(this.layer);
  }

  forward(x: Tensor): Tensor {
    const layer = this.layer;
    if (layer.routingHook?.force) throw new Error('tp MoE block: a routing replay (RoutingHook.force) is not supported across ranks; replay in one process');
    const x2 = tokensOf(layer, x);
    const T = x2.shape[0]!;
    const H = x2.shape[1]!;
    const K = layer.cfg.router.topK;
    const E = layer.cfg.router.numExperts;
    const El = this.experts.numExperts;
    const r = routeWithLayer(layer, x2);
    // the single-process slot plan (capacity over all T tokens), cut to this rank's experts
    const plan = planSlots(r.topkIds.dataSync(), E, layerCapacity(layer, T));
    const a = plan.segOffsets[this.firstExpert]!;
    const b = plan.segOffsets[this.firstExpert + El]!;
    const slots = plan.sortedSlots.slice(a, b);
    const tokens = arrayLike(x2, slots.map((s) => Math.floor(s / K)));
    const parallel = this.group.size > 1;
    const xIn = parallel ? copyToRegion(this.group, x2) : x2;
    const wIn = parallel ? copyToRegion(this.group, r.combineWeights) : r.combineWeights;
    const S = slots.length;
    const rowWeights = reshape(cast(indexSelect(reshape(wIn, [T * K]), 0, arrayLike(x2, slots)), x2.dtype), [S, 1]);
    const segOffsets = plan.segOffsets.slice(this.firstExpert, this.firstExpert + El + 1).map((o) => o - a);
    const exec: ExpertExecutionMetadata = {
      numExperts: El,
      numRows: S,
      segOffsets,
      rowsPerExpert: plan.rowsPerExpert.slice(this.firstExpert, this.firstExpert + El),
      rowExperts: arrayLike(x2, expertOfRows(segOffsets)),
    };
    const onInput = layer.cfg.dispatch.weightsOn === 'input';
    let rows = indexSelect(xIn, 0, tokens);
    if (onInput) rows = mul(rows, rowWeights);
    let out = this.experts.forward(rows, exec);
    if (!onInput) out = mul(out, rowWeights);
    const partial = indexAdd(fullLike(out, [T, H], 0), 0, tokens, out);
    const routed = parallel ? reduceFromRegion(this.group, partial) : partial;
    const shared = layer.sharedOutput(x2, T);
    let y = shared ? layer.mixShared(routed, shared) : routed;
    y = attachLayerAuxLosses(layer, y, r.logits, r.topkIds, this.numLayers, undefined, plan.droppedSlots.length);
    if (layer.training && layer.selectionBias) layer.selectionBias.accumulate(r.counts);
    this.lastRouterLogits = r.logits;
    y = reshape(y, x.shape);
    // every rank routed every token: its hook sees what a single process's would
    const details = { y, routing: r, routed: reshape(routed, x.shape), shared: shared ? reshape(shared, x.shape) : null };
    layer.routingHook?.observe?.(layer, { ...details, droppedSlots: plan.droppedSlots.length, metrics: layer.lastMetrics, activationFacts: null });
    return y;
  }

  /** After the optimiser step: the counts are already global (every rank routed all tokens). */
  async postBatch(): Promise<void> {
    this.layer.postBatch();
  }
}
