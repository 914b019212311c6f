// Auxiliary-loss-free load balancing (DeepSeek-V3): a per-expert bias added to the scores for
// selection only, nudged after each batch toward under-used experts.
import type { Backend } from '../backend/backend.js';
import { getBackend } from '../backend/registry.js';
import { Tensor } from '../tensor/tensor.js';
import { add } from '../ops/elementwise.js';
import type { SelectionBiasConfig } from './config.js';
import { deviceBiasUpdateDelta } from './device/balancing.js';
import { deviceKernels } from './execution/plan.js';

/**
 * The bias change for one batch of counts c:  γ·sign(mean(c) − c)  ('sign', OLMo-core), or
 * that minus its mean ('sign-centered', torchtitan), which keeps the bias summing to zero.
 */
export function biasUpdateDelta(counts: ArrayLike<number>, gamma: number, rule: SelectionBiasConfig['rule']): Float64Array {
  const n = counts.length;
  let mean = 0;
  for (let e = 0; e < n; e++) mean += counts[e]!;
  mean /= n;
  const d = new Float64Array(n);
  for (let e = 0; e < n; e++) d[e] = gamma * Math.sign(mean - counts[e]!);
  if (rule === 'sign-centered') {
    const m = d.reduce((p, v) => p + v, 0) / n;
    for (let e = 0; e < n; e++) d[e]! -= m;
  }
  return d;
}

/** The bias buffer plus the counts accumulated (over micro-batches) since the last update. */
export class SelectionBias {
  /** [E] f32, never requires grad. */
  readonly bias: Tensor;
  private readonly pending: Float64Array;
  /** Counts that live on a device that cannot read synchronously (webgpu): summed and applied there. */
  private pendingOnDevice: Tensor | null = null;

  constructor(
    readonly numExperts: number,
    readonly cfg: SelectionBiasConfig,
    backend: Backend = getBackend(),
  ) {
    this.bias = new Tensor(backend.full('f32', numExperts, 0), [numExperts], backend);
    this.pending = new Float64Array(numExperts);
  }

  /** Add one micro-batch's slot counts ([E]). */
  accumulate(counts: Tensor | ArrayLike<number>): void {
    if (counts instanceof Tensor && deviceKernels(counts.backend)) {
      if (counts.size !== this.numExperts)
        throw new RangeError(`SelectionBias.accumulate: counts must have E = ${this.numExperts} entries (got ${counts.size})`);
      const c = counts.to('f32');
      this.pendingOnDevice = this.pendingOnDevice ? add(this.pendingOnDevice, c) : c;
      return;
    }
    const c = counts instanceof Tensor ? counts.dataSync() : counts;
    if (c.length !== this.numExperts)
      throw new RangeError(`SelectionBias.accumulate: counts must have E = ${this.numExperts} entries (got ${c.length})`);
    for (let e = 0; e < this.numExperts; e++) this.pending[e]! += c[e]!;
  }

  /** Counts gathered since the last update (all-reduce these across ranks before update()). */
  get pendingCounts(): Float64Array {
    return this.pending;
  }

  /**
   * Apply the update from the accumulated counts, reset them, and return the delta. dryRun
   * (OLMo-core post_batch(dry_run=True)): compute and reset, leave the bias as it is. Counts
   * gathered on a device that cannot read synchronously update the bias there and return null
   * (`await bias.data()` reads it).
   */
  update(opts: { dryRun?: boolean } = {}): Float64Array | null {
    const dev = this.pendingOnDevice;
    if (dev) {
      this.pendingOnDevice = null;
      if (!opts.dryRun) this.bias.storage = add(this.bias, deviceBiasUpdateDelta(dev, this.cfg.gamma, this.cfg.rule)).storage;
      return null;
    }
    const d = biasUpdateDelta(this.pending, this.cfg.gamma, this.cfg.rule);
    if (!opts.dryRun) {
      const cur = this.bias.dataSync();
      const next = new Float32Array(this.numExperts);
      for (let e = 0; e < this.numExperts; e++) next[e] = cur[e]! + d[e]!;
      this.bias.storage = this.bias.backend.fromArray(next);
    }
    this.pending.fill(0);
    return d;
  }

  /** Overwrite the bias (e.g. DeepSeek-V3's e_score_correction_bias from a checkpoint). */
  load(values: ArrayLike<number>): void {
    if (values.length !== this.numExperts)
      throw new RangeError(`SelectionBias.load: expected ${this.numExperts} values (got ${values.length})`);
    this.bias.storage = this.bias.backend.fromArray(Float32Array.from(values));
  }
}
