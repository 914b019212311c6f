// Expert parallelism for a synchronous training loop over a GPT whose FFNs are MoELayers (the
// CT-MoE ablation): every MoE layer becomes an ExpertParallelMoeBlock with round-robin token
// shards (Diffulex's EP block), so each rank owns E / size experts and their optimiser state,
// and token slots reach them through the all-to-all. Everything else is replicated: every rank
// runs the same global batch through the same attention (same dropout draws, no reseeding),
// and the blocks' all-reduced outputs give every rank the same complete gradients there. The
// MoE layers' replicated parameters (router, CT-MoE's S_raw) see this rank's token shard only:
// their gradients are summed over the group; an expert's gradient is complete on its own rank.
// Each rank builds only its experts (MoELayerOptions.expertShard: the weights a single process
// draws for them at the same seed). Checkpoints are per rank (each holds its experts and a copy
// of the replicated parameters; ep-rank-<r>-of-<n>/), resumable on the same world size; rank 0
// writes results.
import { join } from 'node:path';
import type { Module, Parameter } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { type ExpertShard, MoELayer } from '../moe/layer.js';
import { fromArray } from '../ops/creation.js';
import type { Communicator } from './communicator.js';
import { allReduceGradients } from './differentiable.js';
import { ExpertParallelMoeBlock } from './ep-block.js';
import { expertShardFor } from './partition.js';

export class ExpertParallel {
  private blocks: ExpertParallelMoeBlock[] = [];

  constructor(readonly comm: Communicator) {}

  get rank(): number {
    return this.comm.rank;
  }

  get size(): number {
    return this.comm.size;
  }

  /** Rank 0 writes results and figures (every rank writes its own checkpoint). */
  get isWriter(): boolean {
    return this.comm.rank === 0;
  }

  /** The CLI's one line about the set-up. */
  describe(batchSize: number): string {
    return `expert parallel over ${this.size} ranks (each runs the whole batch of ${batchSize} through attention; each MoE layer's experts and token slots split over the ranks)`;
  }

  /** The experts this rank holds of each MoE layer: build the model's layers with it (MoELayerOptions.expertShard). */
  expertShard(numExperts: number): ExpertShard {
    return expertShardFor(numExperts, this.comm);
  }

  /**
   * Every MoELayer FFN of `blocks` (built with this rank's expertShard, so the rank never
   * allocates the other experts) becomes an expert-parallel block over this group.
   */
  shardFfns(blocks: readonly { ffn: Module }[]): void {
    for (const b of blocks) {
      if (!(b.ffn instanceof MoELayer)) throw new TypeError(`expert parallel: a block's FFN is a ${b.ffn.constructor.name}, not an MoELayer`);
      if (!b.ffn.expertShard) throw new Error('expert parallel: build the MoE layers with expertShard: ep.expertShard(numExperts), so each rank allocates only its experts');
      const block = new ExpertParallelMoeBlock(b.ffn, this.comm, { sharding: 'round-robin' });
      (b as { ffn: Module }).ffn = block;
      this.blocks.push(block);
    }
  }

  /** The whole model's parameter count: `model`'s own, plus the experts the other ranks hold (every rank holds as many). */
  globalParameterCount(model: Module): number {
    const local = this.blocks.reduce((n, b) => n + b.experts.numParameters(), 0);
    return model.numParameters() + (this.size - 1) * local;
  }

  /** Sum the MoE layers' replicated parameters' gradients (router, S_raw) over the group. Collective. */
  reduceGradients(): void {
    allReduceGradients(
      this.comm,
      this.blocks.flatMap((b) => b.replicatedParameters()),
      'sum',
    );
  }

  /**
   * clipGradNorm over the whole model: the replicated parameters counted once, every rank's
   * experts summed (an all-reduce of their squared norms). Returns the norm. Collective.
   */
  clipGradNorm(params: readonly Parameter[], maxNorm: number): number {
    const experts = new Set(this.blocks.flatMap((b) => b.experts.parameters()));
    let replicated = 0;
    let local = 0;
    for (const p of params) {
      if (!p.grad) continue;
      const g = p.grad.dataSync();
      let sq = 0;
      for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
      if (experts.has(p)) local += sq;
      else replicated += sq;
    }
    const total = Math.sqrt(replicated + this.comm.allReduceSync(fromArray(Float64Array.of(local), [1]), 'sum').item());
    const coef = maxNorm / (total + 1e-6);
    if (coef < 1) noGrad(() => params.forEach((p) => p.grad && (p.grad = p.grad.mul(coef))));
    return total;
  }

  /** This rank's checkpoint folder inside a run's folder. */
  checkpointDir(dir: string): string {
    return join(dir, `ep-rank-${this.rank}-of-${this.size}`);
  }
}
