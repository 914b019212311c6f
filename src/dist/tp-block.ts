// Diffulex's tensor-parallel MoE block: an MoELayer under the tensor-parallel execution plan
// (tp-execution.ts). With one rank it is the naive block: the layer on its own single-process
// plan (the kernels or the composition, as that plan says).
import type { Tensor } from '../tensor/tensor.js';
import { Module, type Parameter } from '../nn/module.js';
import type { ExpertBank } from '../moe/experts.js';
import type { MoELayer } from '../moe/layer.js';
import type { Communicator } from './communicator.js';
import { replicatedParameters } from './rank-experts.js';
import { TensorParallelExecution } from './tp-execution.js';

export class TensorParallelMoeBlock extends Module {
  /** null on one rank (the naive block). */
  readonly execution: TensorParallelExecution | null;
  /** This rank's experts [firstExpert, firstExpert + experts.numExperts). */
  readonly experts: ExpertBank;
  readonly firstExpert: number;

  constructor(
    readonly layer: MoELayer,
    readonly group: Communicator,
  ) {
    super();
    const ex = new TensorParallelExecution(layer, group);
    this.execution = group.size > 1 ? ex : null;
    this.experts = ex.bank;
    this.firstExpert = ex.firstExpert;
    layer.parallelize(this.execution);
  }

  replicatedParameters(): Parameter[] {
    return replicatedParameters(this.layer);
  }

  forward(x: Tensor): Tensor {
    this.layer.parallelize(this.execution); // the layer may have run under another block since
    return this.layer.forward(x);
  }

  /** After the optimiser step: the counts are already global (every rank routed all tokens). */
  async postBatch(): Promise<void> {
    this.layer.postBatch();
  }
}
