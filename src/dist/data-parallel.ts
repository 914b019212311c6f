// Data parallelism for a synchronous training loop: every rank holds the whole model; rank 0's
// parameters are broadcast at the start, each rank trains on its rows of the global batch,
// gradients are averaged (bucketed all-reduce) before clipping and the optimiser step, and only
// rank 0 writes files. Losses are per-rank local-batch ones (OLMo-core's 'local_batch'
// granularity): with equal shards the averaged CE gradient is the global batch's.
import type { Batch } from '../data/batches.js';
import type { Parameter } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { fromArray } from '../ops/creation.js';
import type { Communicator } from './communicator.js';
import { allReduceGradients } from './differentiable.js';

export class DataParallel {
  constructor(
    readonly comm: Communicator,
    readonly bucketElements = 1 << 22,
  ) {}

  get rank(): number {
    return this.comm.rank;
  }

  get size(): number {
    return this.comm.size;
  }

  /** Rank 0 writes results, checkpoints and figures. */
  get isWriter(): boolean {
    return this.comm.rank === 0;
  }

  /** The CLI's one line about the set-up. */
  describe(batchSize: number): string {
    return `data parallel over ${this.size} ranks (batch ${batchSize} = ${this.size} x ${batchSize / this.size})`;
  }

  /** Every rank's parameters become rank 0's (one broadcast per parameter, in order). Collective. */
  broadcastParameters(params: readonly Parameter[]): void {
    noGrad(() => {
      for (const p of params) p.storage = this.comm.broadcastSync(p.detach(), 0).storage;
    });
  }

  /** This rank's rows of a global batch: rows [rank·B/size, (rank+1)·B/size). */
  shard(batch: Batch): Batch {
    const n = this.size;
    if (batch.batch % n !== 0) throw new RangeError(`data parallel: batchSize ${batch.batch} is not divisible by the world size ${n}; choose a batch size that is`);
    const rows = batch.batch / n;
    const cut = (a: Int32Array) => a.slice(this.rank * rows * batch.seqLen, (this.rank + 1) * rows * batch.seqLen);
    return { input: cut(batch.input), target: cut(batch.target), batch: rows, seqLen: batch.seqLen };
  }

  /** Average the gradients over the ranks. Collective. */
  averageGradients(params: readonly Parameter[]): void {
    allReduceGradients(this.comm, params, 'avg', this.bucketElements);
  }

  /** The mean of a number over the ranks (logged losses). Collective. */
  mean(value: number): number {
    return this.comm.allReduceSync(fromArray(Float64Array.of(value), [1]), 'avg').item();
  }
}
