// Expert parallelism as an execution plan of MoELayer (src/moe/execution/parallel.ts): each rank
// runs E / ep experts (the layer's own bank when it was built with this rank's expertShard, else
// a copy of its slice); token slots travel to the rank of their expert through the naive
// all-to-all dispatcher and back. The layer lends its router, its experts path (the kernels or
// the composition, as its plan says) and its shared expert; this file decides only what crosses
// ranks.
//   sharding 'round-robin' (Diffulex's EP FusedMoE): every rank holds the same T tokens and
//     takes arange(T)[rank::ep]; the outputs, router logits and scores are all-reduced, so every
//     rank ends with the full [T, H] and routes the aux losses over all tokens. The replicated
//     parameters' gradients (router, shared expert) cover this rank's shard only: sum them over
//     the group after backward (allReduceGradients(group, block.replicatedParameters(), 'sum')).
//   sharding 'local' (OLMo-core's expert-parallel dropless MoE): each rank's tokens are its
//     own batch; outputs stay local; replicated parameters are averaged with the other
//     data-parallel gradients; global-batch LB accumulates the counts summed over the group.
// A CT-MoE topology (S_raw) is replicated: S's routing bias and the folded message-passing
// coefficients are computed on the token's rank (the layer's route step) and the slots carry
// them, so the combine there is the message passing.
// Capacity (when the layer has a capacity factor): 'global' keeps, per expert, the first C
// slots in global token order with C as the single-process layer computes it over all tokens
// (round-robin only); 'olmo-ep' uses OLMo-core's ep_world · allowed with allowed from the
// rank-local token count. Overflow is dropped at the expert's rank (its output is zero).
import type { Tensor } from '../tensor/tensor.js';
import { indexAdd, indexSelect } from '../ops/indexing.js';
import type { RouterOutput } from '../moe/contracts.js';
import type { ParallelExecution, ParallelOutput, ParallelSteps } from '../moe/execution/parallel.js';
import type { ExpertBank } from '../moe/experts.js';
import type { MoELayer } from '../moe/layer.js';
import { arrayLike, fullLike } from '../moe/tensors.js';
import type { Communicator } from './communicator.js';
import { copyToRegion, reduceFromRegion } from './differentiable.js';
import { NaiveAllToAllDispatcher } from './naive-dispatcher.js';
import { expertParallelCapacity, layerCapacity, rankExperts } from './rank-experts.js';

export type TokenSharding = 'round-robin' | 'local';
export type EpCapacityRule = 'global' | 'olmo-ep';

export interface ExpertParallelOptions {
  sharding?: TokenSharding;
  /** Default 'global' for round-robin, 'olmo-ep' for local. */
  capacity?: EpCapacityRule;
}

export class ExpertParallelExecution implements ParallelExecution {
  readonly kind = 'ep';
  readonly ranks: number;
  readonly localExperts: number;
  readonly bank: ExpertBank;
  readonly firstExpert: number;
  readonly dispatcher: NaiveAllToAllDispatcher;
  readonly sharding: TokenSharding;
  readonly capacityRule: EpCapacityRule;
  /** Slots dropped by capacity at this rank's experts in the latest forward. */
  lastDroppedSlots = 0;
  /** Router logits of the latest forward: [T, E] all-reduced (round-robin) or this rank's (local). */
  lastRouterLogits: Tensor | null = null;
  /** This rank's routing counts, tokens and drops in the latest forward (globalMetrics). */
  lastLocal: { counts: Float64Array; tokens: number; dropped: number } | null = null;

  constructor(
    readonly layer: MoELayer,
    readonly group: Communicator,
    options: ExpertParallelOptions = {},
  ) {
    ({ bank: this.bank, first: this.firstExpert } = rankExperts(layer, group, 'ep'));
    this.ranks = group.size;
    this.localExperts = this.bank.numExperts;
    this.dispatcher = new NaiveAllToAllDispatcher(group, group.size, this.localExperts, layer.cfg.router.topK);
    this.sharding = options.sharding ?? 'round-robin';
    this.capacityRule = options.capacity ?? (this.sharding === 'round-robin' ? 'global' : 'olmo-ep');
    if (this.sharding === 'local' && this.capacityRule === 'global') throw new Error("ep MoE block: capacity 'global' needs sharding 'round-robin' (with 'local' tokens use 'olmo-ep')");
  }

  forward(x2: Tensor, steps: ParallelSteps): ParallelOutput {
    const layer = this.layer;
    const ep = this.group.size;
    const T = x2.shape[0]!;
    const roundRobin = this.sharding === 'round-robin';
    const shard = roundRobin ? arrayLike(x2, Int32Array.from({ length: Math.max(0, Math.ceil((T - this.group.rank) / ep)) }, (_, i) => this.group.rank + i * ep)) : null;
    const xs = shard ? indexSelect(copyToRegion(this.group, x2), 0, shard) : x2;
    const n = xs.shape[0]!;
    const r = steps.route(xs);
    const d = this.dispatcher.dispatch(xs, r.topkIds, r.combineWeights);
    const meta = d.metadata;
    const capacity = this.capacityRule === 'global' ? layerCapacity(layer, T) : expertParallelCapacity(layer, n, ep);
    // a capacity keeps each expert's first slots in global token order: round-robin shards
    // interleave, so order the received rows by token (local batches arrive in that order)
    const order = capacity !== null && roundRobin ? this.globalTokenOrder(meta.recvSplits, meta.recvTokenIndices.dataSync()) : null;
    const ids = d.recvLocalExpertIds.dataSync() as Int32Array;
    let slotOutputs: Tensor;
    if (order) {
      const at = arrayLike(x2, order);
      const e = steps.experts(this.bank, indexSelect(d.recvHiddenStates, 0, at), order.map((i) => ids[i]!), indexSelect(d.recvWeights, 0, at), capacity);
      const back = new Int32Array(order.length);
      order.forEach((i, j) => (back[i] = j));
      slotOutputs = indexSelect(e.y, 0, arrayLike(x2, back));
      this.lastDroppedSlots = e.droppedSlots;
    } else {
      const e = steps.experts(this.bank, d.recvHiddenStates, ids, d.recvWeights, capacity);
      slotOutputs = e.y;
      this.lastDroppedSlots = e.droppedSlots;
    }
    const routed = this.dispatcher.combine(slotOutputs, meta);
    const mixed = steps.mixShared(xs, routed);
    this.lastLocal = { counts: Float64Array.from(r.counts.dataSync()), tokens: n, dropped: this.lastDroppedSlots };
    const local: RouterOutput = { logits: r.logits, scores: r.scores, topkIds: r.topkIds, topkWeights: r.topkWeights, counts: r.counts };
    if (!shard) {
      this.lastRouterLogits = r.logits;
      return {
        y: mixed.y,
        routing: local,
        localCounts: r.counts,
        droppedSlots: this.lastDroppedSlots,
        routed: steps.wantDetails ? routed : null,
        shared: mixed.shared,
        // global-batch LB reads the counts summed over the group (OLMo-core)
        lbCounts: () => this.sumOverGroup(r.counts.dataSync(), n),
      };
    }
    // round-robin: every rank ends with every token's output and routing
    const all = (t: Tensor, cols: number) => reduceFromRegion(this.group, indexAdd(fullLike(t, [T, cols], 0), 0, shard, t));
    const E = layer.cfg.router.numExperts;
    const H = x2.shape[1]!;
    const topkIds = this.gatherRows(r.topkIds, shard, T);
    const counts = new Int32Array(E);
    for (const e of topkIds.dataSync()) counts[e]!++;
    const routing: RouterOutput = {
      logits: all(r.logits, E),
      scores: all(r.scores, E),
      topkIds,
      topkWeights: this.gatherRows(r.topkWeights.detach(), shard, T),
      counts: arrayLike(topkIds, counts),
    };
    this.lastRouterLogits = routing.logits;
    // drops over all tokens: every rank's experts' drops summed
    const dropped = capacity !== null ? this.group.allReduceSync(arrayLike(x2, Float64Array.of(this.lastDroppedSlots)), 'sum').item() : 0;
    const details = steps.wantDetails;
    return {
      y: all(mixed.y, H),
      routing,
      localCounts: r.counts,
      droppedSlots: dropped,
      routed: details ? this.gatherRows(routed.detach(), shard, T) : null,
      shared: details && mixed.shared ? this.gatherRows(mixed.shared.detach(), shard, T) : null,
    };
  }

  /** Received slot i's position when the slots are sorted by global token (round-robin: token t of rank src is t·ep + src). */
  private globalTokenOrder(recvSplits: Int32Array, tokenIndices: ArrayLike<number>): Int32Array {
    const ep = this.group.size;
    const key = new Float64Array(tokenIndices.length);
    for (let src = 0, i = 0; src < recvSplits.length; src++) for (let m = 0; m < recvSplits[src]!; m++, i++) key[i] = tokenIndices[i]! * ep + src;
    return Int32Array.from({ length: key.length }, (_, i) => i).sort((p, q) => key[p]! - key[q]! || p - q);
  }

  /** [E] counts and a token count summed over the group (synchronous: inside forward). */
  sumOverGroup(counts: ArrayLike<number>, tokens: number): { counts: Float64Array; tokens: number } {
    const all = this.group.allReduceSync(arrayLike(this.layer.routerWeight, Float64Array.from([...Array.from(counts), tokens])), 'sum').dataSync();
    return { counts: Float64Array.from(all.subarray(0, counts.length)), tokens: all[counts.length]! };
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
