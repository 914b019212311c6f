// Tensor parallelism as an execution plan of MoELayer (Diffulex's TP FusedMoE;
// src/moe/execution/parallel.ts): every rank routes ALL tokens, runs the slots of its E / tp
// experts on the layer's experts path, and the partial outputs are all-reduced.
// Gradients come out complete on every rank with no extra step: the routing weights and the
// tokens enter the expert part through copyToRegion (backward sums the ranks' parts), the
// output leaves through reduceFromRegion, and the router, aux losses and shared expert are
// computed identically on every rank.
import type { Tensor } from '../tensor/tensor.js';
import { indexAdd, indexSelect } from '../ops/indexing.js';
import { reshape } from '../ops/shape.js';
import type { ParallelExecution, ParallelOutput, ParallelSteps } from '../moe/execution/parallel.js';
import type { ExpertBank } from '../moe/experts.js';
import type { MoELayer } from '../moe/layer.js';
import { arrayLike, fullLike } from '../moe/tensors.js';
import type { Communicator } from './communicator.js';
import { copyToRegion, reduceFromRegion } from './differentiable.js';
import { layerCapacity, rankExperts } from './rank-experts.js';

export class TensorParallelExecution implements ParallelExecution {
  readonly kind = 'tp';
  readonly ranks: number;
  readonly localExperts: number;
  readonly bank: ExpertBank;
  readonly firstExpert: number;
  /** [T, E] router logits of the latest forward. */
  lastRouterLogits: Tensor | null = null;

  constructor(
    readonly layer: MoELayer,
    readonly group: Communicator,
  ) {
    ({ bank: this.bank, first: this.firstExpert } = rankExperts(layer, group, 'tp'));
    this.ranks = group.size;
    this.localExperts = this.bank.numExperts;
  }

  forward(x2: Tensor, steps: ParallelSteps): ParallelOutput {
    const [T, H] = x2.shape as [number, number];
    const K = this.layer.cfg.router.topK;
    const first = this.firstExpert;
    const r = steps.route(x2);
    // this rank's experts' slots in slot order (token-major): the single process's order, so
    // its capacity over all T tokens keeps the same slots
    const ids = r.topkIds.dataSync();
    const slots: number[] = [];
    for (let s = 0; s < T * K; s++) if (ids[s]! >= first && ids[s]! < first + this.localExperts) slots.push(s);
    const tokens = arrayLike(x2, Int32Array.from(slots, (s) => Math.floor(s / K)));
    const rows = indexSelect(copyToRegion(this.group, x2), 0, tokens);
    const weights = indexSelect(reshape(copyToRegion(this.group, r.combineWeights), [T * K]), 0, arrayLike(x2, Int32Array.from(slots)));
    const e = steps.experts(this.bank, rows, Int32Array.from(slots, (s) => ids[s]! - first), weights, layerCapacity(this.layer, T));
    const routed = reduceFromRegion(this.group, indexAdd(fullLike(e.y, [T, H], 0), 0, tokens, e.y));
    const mixed = steps.mixShared(x2, routed);
    const dropped = this.group.allReduceSync(arrayLike(x2, Float64Array.of(e.droppedSlots)), 'sum').item();
    this.lastRouterLogits = r.logits;
    // every rank routed every token: its losses, metrics and hook see what one process's would
    const routing = { logits: r.logits, scores: r.scores, topkIds: r.topkIds, topkWeights: r.topkWeights, counts: r.counts };
    return { y: mixed.y, routing, localCounts: r.counts, droppedSlots: dropped, routed: steps.wantDetails ? routed : null, shared: mixed.shared };
  }
}
