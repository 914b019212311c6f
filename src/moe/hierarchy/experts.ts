// Ready-made experts: wrap any one-tensor moekit module (an FFN, a norm, a token-routed
// MoELayer) as a hierarchy expert, or use a plain Linear expert.
import type { FloatDType } from '../../backend/types.js';
import { Linear } from '../../nn/layers.js';
import { Module, type UnaryModule } from '../../nn/module.js';
import type { Generator } from '../../tensor/random.js';
import { MoELayer } from '../layer.js';
import type { ExpertBatch, ExpertResult, HierarchyExpert } from './types.js';

/**
 * Adapts a module with `forward(x: Tensor): Tensor` to the expert contract. A MoELayer gets the
 * sub-batch mask (for its aux losses, which ride on its output and so reach the gradients
 * without being reported again) and its routing metrics come back in `aux.moe`.
 */
export class ModuleExpert extends Module implements HierarchyExpert {
  constructor(readonly inner: UnaryModule | MoELayer) {
    super();
  }

  forward(batch: ExpertBatch): ExpertResult {
    if (this.inner instanceof MoELayer) {
      const hidden = this.inner.forward(batch.hidden, { mask: batch.mask });
      return { hidden, aux: { moe: this.inner.lastMetrics } };
    }
    return { hidden: this.inner.forward(batch.hidden) };
  }
}

/** `asExpert(new MoELayer(cfg))`: any one-tensor module as a hierarchy expert. */
export function asExpert(module: UnaryModule | MoELayer): ModuleExpert {
  return new ModuleExpert(module);
}

/** hidden -> Linear(hidden) (the celmoe-vp quick-start expert). */
export class LinearExpert extends Module implements HierarchyExpert {
  readonly proj: Linear;

  constructor(hiddenSize: number, options: { dtype?: FloatDType; generator?: Generator; bias?: boolean } = {}) {
    super();
    this.proj = new Linear(hiddenSize, hiddenSize, options);
  }

  forward(batch: ExpertBatch): ExpertResult {
    return { hidden: this.proj.forward(batch.hidden) };
  }
}
