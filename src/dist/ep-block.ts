// Diffulex's expert-parallel MoE block: an MoELayer under the expert-parallel execution plan
// (ep-execution.ts; the layer's plan summary says so). The block is the handle training code
// keeps: the rank's experts, the replicated parameters to sum, and the collective steps after a
// forward (postBatch's all-reduced bias update, the metrics over every rank).
import type { Tensor } from '../tensor/tensor.js';
import { Module, type Parameter } from '../nn/module.js';
import type { ExpertBank } from '../moe/experts.js';
import type { MoELayer } from '../moe/layer.js';
import { type MoEMetrics, countMetrics } from '../moe/metrics.js';
import { arrayLike } from '../moe/tensors.js';
import type { Communicator } from './communicator.js';
import { type EpCapacityRule, ExpertParallelExecution, type ExpertParallelOptions, type TokenSharding } from './ep-execution.js';
import type { NaiveAllToAllDispatcher } from './naive-dispatcher.js';
import { replicatedParameters } from './rank-experts.js';


export class ExpertParallelMoeBlock extends Module {
  readonly execution: ExpertParallelExecution;

  constructor(
    readonly layer: MoELayer,
    readonly group: Communicator,
    options: ExpertParallelOptions = {},
  ) {
    super();
    this.execution = new ExpertParallelExecution(layer, group, options);
    layer.parallelize(this.execution);
  }

  /** This rank's experts [firstExpert, firstExpert + experts.numExperts). */
  get experts(): ExpertBank {
    return this.execution.bank;
  }

  get firstExpert(): number {
    return this.execution.firstExpert;
  }

  get dispatcher(): NaiveAllToAllDispatcher {
    return this.execution.dispatcher;
  }

  get sharding(): TokenSharding {
    return this.execution.sharding;
  }

  get capacityRule(): EpCapacityRule {
    return this.execution.capacityRule;
  }

  /** Slots dropped by capacity at this rank's experts in the latest forward. */
  get lastDroppedSlots(): number {
    return this.execution.lastDroppedSlots;
  }

  /** Router logits of the latest forward: [T, E] all-reduced (round-robin) or this rank's (local). */
  get lastRouterLogits(): Tensor | null {
    return this.execution.lastRouterLogits;
  }

  replicatedParameters(): Parameter[] {
    return replicatedParameters(this.layer);
  }

  forward(x: Tensor): Tensor {
    this.layer.parallelize(this.execution); // the layer may have run under another block since
    return this.layer.forward(x);
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
    const l = this.execution.lastLocal;
    if (!l) throw new Error('globalMetrics: run forward first');
    const E = l.counts.length;
    const packed = Float64Array.from([...l.counts, l.tokens, l.dropped]);
    const all = (await this.group.allReduce(arrayLike(this.layer.routerWeight, packed), 'sum')).dataSync();
    const counts = Int32Array.from(all.subarray(0, E));
    // round-robin shards already cover all tokens once; every rank's drops are its own experts'
    const tokens = all[E]!;
    return { tokensPerExpert: counts, ...countMetrics(counts), droppedFraction: tokens > 0 ? all[E + 1]! / (tokens * this.layer.cfg.router.topK) : 0 };
  }
}
