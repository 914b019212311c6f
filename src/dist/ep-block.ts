// Expert-parallel MoE block: each rank owns E / ep experts (the layer's own bank when it was
// built with this rank's expertShard; else a copy of its slice); token slots travel to the rank
// of their expert through the naive all-to-all dispatcher and back. The layer's routing hook
// observes the routing of all tokens (round-robin: gathered over the ranks).
//   sharding 'round-robin' (Diffulex's EP FusedMoE): every rank holds the same T tokens and
//     takes arange(T)[rank::ep]; the outputs and router logits are all-reduced, so every rank
//     ends with the full [T, H]. The replicated parameters' gradients (router, shared expert)
//     cover this rank's shard only: sum them over the group after backward
//     (allReduceGradients(group, block.replicatedParameters(), 'sum')).
//   sharding 'local' (OLMo-core's expert-parallel dropless MoE): each rank's tokens are its
//     own batch; outputs stay local; replicated parameters are averaged with the other
//     data-parallel gradients.
// A CT-MoE topology (S_raw) is replicated: S's routing bias and the folded message-passing
// coefficients are computed on the token's rank (layer-glue.ts routeWithLayer) and the slots
// carry them, so the combine there is the message passing; S_raw's gradient is summed with the
// other replicated parameters'.
// Capacity (when the layer has a capacity factor): 'global' keeps, per expert, the first C
// slots in global token order with C as the single-process layer computes it over all tokens
// (round-robin only); 'olmo-ep' uses OLMo-core's ep_world · allowed with allowed from the
// rank-local token count. Overflow is dropped at the expert's rank (its output is zero).
import type { Tensor } from '../tensor/tensor.js';
import { mul } from '../ops/elementwise.js';
import { indexAdd, indexSelect } from '../ops/indexing.js';
import { cast } from '../ops/cast.js';
import { reshape } from '../ops/shape.js';
import { Module, type Parameter } from '../nn/module.js';
import type { ExpertBank } from '../moe/experts.js';
import type { MoELayer } from '../moe/layer.js';
import { type MoEMetrics, countMetrics } from '../moe/metrics.js';
import { arrayLike, fullLike } from '../moe/tensors.js';
import type { Communicator } from './communicator.js';
import type { DispatcherOutput, ExpertParallelExecutionMetadata } from './contracts.js';
import { copyToRegion, reduceFromRegion } from './differentiable.js';
import { attachLayerAuxLosses, checkParallelizable, expertParallelCapacity, layerCapacity, rankExperts, replicatedParameters, routeWithLayer, tokensOf } from './layer-glue.js';
import { NaiveAllToAllDispatcher } from './naive-dispatcher.js';
import { expertOfRows } from './partition.js';

export type TokenSharding = 'round-robin' | 'local';
export type EpCapacityRule = 'global' | 'olmo-ep';

export interface ExpertParallelOptions {
  sharding?: TokenSharding;
  /** Default 'global' for round-robin, 'olmo-ep' for local. */
  capacity?: EpCapacityRule;
  numLayers?: number;
}

export class ExpertParallelMoeBlock extends Module {
  readonly experts: ExpertBank;
  readonly firstExpert: number;
  readonly dispatcher: NaiveAllToAllDispatcher;
  readonly sharding: TokenSharding;
  readonly capacityRule: EpCapacityRule;
  readonly numLayers: number;
  /** Router logits of the latest forward: [T, E] all-reduced (round-robin) or this rank's (local). */
  lastRouterLogits: Tensor | null = null;
  /** Slots dropped by capacity at this rank's experts in the latest forward. */
  lastDroppedSlots = 0;
  private lastLocal: { counts: Float64Array; tokens: number; dropped: number } | null = null;

  constructor(
    readonly layer: MoELayer,
    readonly group: Communicator,
    options: ExpertParallelOptions = {},
  ) {
    super();
    checkParallelizable(layer, 'ep MoE block');
    ({ bank: this.experts, first: this.firstExpert } = rankExperts(layer, group, 'ep'));
    const El = this.experts.numExperts;
    this.dispatcher = new NaiveAllToAllDispatcher(group, group.size, El, layer.cfg.router.topK);
    this.sharding = options.sharding ?? 'round-robin';
    this.capacityRule = options.capacity ?? (this.sharding === 'round-robin' ? 'global' : 'olmo-ep');
    if (this.sharding === 'local' && this.capacityRule === 'global') throw new Error("ep MoE block: capacity 'global' needs sharding 'round-robin' (with 'local' tokens use 'olmo-ep')");
    this.numLayers = options.numLayers ?? 1;
  }

  replicatedParameters(): Parameter[] {
    return replicatedParameters(this.layer);
  }

  forward(x: Tensor): Tensor {
    const layer = this.layer;
    const ep = this.group.size;
    if (layer.routingHook?.force) throw new Error('ep MoE block: a routing replay (RoutingHook.force) is not supported across ranks; replay in one process');
    const x2 = tokensOf(layer, x);
    const T = x2.shape[0]!;
    const roundRobin = this.sharding === 'round-robin';
    const shard = roundRobin ? arrayLike(x2, Int32Array.from({ length: Math.max(0, Math.ceil((T - this.group.rank) / ep)) }, (_, i) => this.group.rank + i * ep)) : null;
    const xs = shard ? indexSelect(copyToRegion(this.group, x2), 0, shard) : x2;
    const r = routeWithLayer(layer, xs);
    const d = this.dispatcher.dispatch(xs, r.topkIds, r.combineWeights);
    const capacity = this.capacityRule === 'global' ? layerCapacity(layer, T) : expertParallelCapacity(layer, xs.shape[0]!, ep);
    // global token order: round-robin shards interleave; local batches follow in rank order
    const slotOutputs = this.runReceived(d, capacity, (src, t) => (roundRobin ? t * ep + src : src * 2 ** 31 + t));
    const routed = this.dispatcher.combine(slotOutputs, d.metadata);
    const shared = layer.sharedOutput(xs, xs.shape[0]!);
    const ys = shared ? layer.mixShared(routed, shared) : routed;
    let y = ys;
    let logits = r.logits;
    let ids = r.topkIds;
    if (shard) {
      const H = x2.shape[1]!;
      const E = layer.cfg.router.numExperts;
      y = reduceFromRegion(this.group, indexAdd(fullLike(ys, [T, H], 0), 0, shard, ys));
      logits = reduceFromRegion(this.group, indexAdd(fullLike(r.logits, [T, E], 0), 0, shard, r.logits));
      ids = this.gatherRows(r.topkIds, shard, T);
    }
    // local batches: global-batch LB reads the counts summed over the group (OLMo-core)
    const globalCounts = shard ? undefined : () => this.sumOverGroup(r.counts.dataSync(), xs.shape[0]!);
    // drops over all tokens (round-robin: every rank's experts' drops summed; local: this rank's experts')
    const dropped = shard && capacity !== null ? this.group.allReduceSync(arrayLike(x2, Float64Array.of(this.lastDroppedSlots)), 'sum').item() : this.lastDroppedSlots;
    y = attachLayerAuxLosses(layer, y, logits, ids, this.numLayers, globalCounts, dropped);
    if (layer.training && layer.selectionBias) layer.selectionBias.accumulate(r.counts);
    this.lastRouterLogits = logits;
    this.lastLocal = { counts: Float64Array.from(r.counts.dataSync()), tokens: xs.shape[0]!, dropped: this.lastDroppedSlots };
    y = reshape(y, x.shape);
    if (layer.routingHook?.observe) {
      // round-robin: what a single process's layer hands its hook, every rank's rows gathered
      // (collective, so every rank's hook sees the same); local batches: this rank's own
      const rows = (t: Tensor) => (shard ? this.gatherRows(t, shard, T) : t);
      const routing = { logits, scores: rows(r.scores), topkIds: ids, topkWeights: rows(r.topkWeights), counts: arrayLike(ids, Int32Array.from(layer.lastMetrics!.tokensPerExpert)) };
      const sharedAll = shared ? reshape(rows(shared), x.shape) : null;
      layer.routingHook.observe(layer, { y, routing, routed: reshape(rows(routed), x.shape), shared: sharedAll, droppedSlots: dropped, metrics: layer.lastMetrics, activationFacts: null });
    }
    return y;
  }

  /** The selection-bias update from the counts of every rank (OLMo-core's post_batch all-reduce). Collective. */
  async postBatch(): Promise<void> {
    const sb = this.layer.selectionBias;
    if (sb) {
      const c = sb.pendingCounts;
      c.set((await this.group.allReduce(arrayLike(this.layer.routerWeight, Float64Array.from(c)), 'sum')).dataSync());
    }
    this.layer.postBatch();
  }

  /** The latest forward's routing metrics over every rank's tokens (counts and drops all-reduced). Collective. */
  async globalMetrics(): Promise<Pick<MoEMetrics, 'tokensPerExpert' | 'loadImbalance' | 'deadExperts' | 'usageEntropy' | 'droppedFraction'>> {
    const l = this.lastLocal;
    if (!l) throw new Error('globalMetrics: run forward first');
    const E = l.counts.length;
    const packed = Float64Array.from([...l.counts, l.tokens, l.dropped]);
    const all = (await this.group.allReduce(arrayLike(this.layer.routerWeight, packed), 'sum')).dataSync();
    const counts = Int32Array.from(all.subarray(0, E));
    // round-robin shards already cover all tokens once; every rank's drops are its own experts'
    const tokens = all[E]!;
    return { tokensPerExpert: counts, ...countMetrics(counts), droppedFraction: tokens > 0 ? all[E + 1]! / (tokens * this.layer.cfg.router.topK) : 0 };
  }

  /** [E] counts and a token count summed over the group (synchronous: inside forward). */
  private sumOverGroup(counts: ArrayLike<number>, tokens: number): { counts: Float64Array; tokens: number } {
    const all = this.group.allReduceSync(arrayLike(this.layer.routerWeight, Float64Array.from([...Array.from(counts), tokens])), 'sum').dataSync();
    return { counts: Float64Array.from(all.subarray(0, counts.length)), tokens: all[counts.length]! };
  }

  /**
   * Run the received slots through this rank's experts: order them by (local expert, global
   * token), keep the first `capacity` per expert, weight them, and return [R, H] in received
   * order (dropped slots zero).
   */
  private runReceived(d: DispatcherOutput, capacity: number | null, globalToken: (src: number, t: number) => number): Tensor {
    const meta = d.metadata;
    const R = meta.totalRecvSlots;
    const El = this.experts.numExperts;
    const le = d.recvLocalExpertIds.dataSync();
    const ti = meta.recvTokenIndices.dataSync();
    const key = new Float64Array(R);
    for (let src = 0, i = 0; src < meta.recvSplits.length; src++) for (let n = 0; n < meta.recvSplits[src]!; n++, i++) key[i] = globalToken(src, ti[i]!);
    const order = Array.from({ length: R }, (_, i) => i).sort((p, q) => le[p]! - le[q]! || key[p]! - key[q]!);
    const rowsPerExpert = new Int32Array(El);
    const kept: number[] = [];
    for (const i of order) {
      const e = le[i]!;
      if (capacity === null || rowsPerExpert[e]! < capacity) {
        rowsPerExpert[e]!++;
        kept.push(i);
      }
    }
    this.lastDroppedSlots = R - kept.length;
    const segOffsets = new Int32Array(El + 1);
    for (let e = 0; e < El; e++) segOffsets[e + 1] = segOffsets[e]! + rowsPerExpert[e]!;
    const x = d.recvHiddenStates;
    const packed = Int32Array.from(kept);
    const packedIds = arrayLike(x, packed);
    const packedWeights = indexSelect(d.recvWeights, 0, packedIds);
    const exec: ExpertParallelExecutionMetadata = {
      numExperts: El,
      numRows: packed.length,
      segOffsets,
      rowsPerExpert,
      rowExperts: arrayLike(x, expertOfRows(segOffsets)),
      packedTokenIds: packedIds,
      packedWeights,
      sortedSlotIds: packed,
      expertBlockIds: new Int32Array(0),
      numTokensPostPadded: packed.length,
      disableAlignedMetadata: true,
    };
    const w = reshape(cast(packedWeights, x.dtype), [packed.length, 1]);
    const onInput = this.layer.cfg.dispatch.weightsOn === 'input';
    let rows = indexSelect(x, 0, packedIds);
    if (onInput) rows = mul(rows, w);
    let out = this.experts.forward(rows, exec);
    if (!onInput) out = mul(out, w);
    return indexAdd(fullLike(out, [R, x.shape[1]!], 0), 0, packedIds, out);
  }

  /** [T, ...] rows of all tokens from each rank's shard rows [n, ...] (an all-reduce of disjoint rows; not differentiable). */
  private gatherRows(t: Tensor, shard: Tensor, T: number): Tensor {
    const C = t.shape[1]!;
    const src = t.dataSync();
    const full = new (src.constructor as Float32ArrayConstructor)(T * C);
    const rows = shard.dataSync();
    for (let i = 0; i < rows.length; i++) full.set(src.subarray(i * C, (i + 1) * C), rows[i]! * C);
    return this.group.allReduceSync(arrayLike(t, full, [T, C]), 'sum');
  }
}
