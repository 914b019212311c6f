// Loss scaling for f16 training, with PyTorch's torch.amp.GradScaler semantics:
//   scaler.scale(loss).backward();
//   scaler.unscale_(opt); clipGradNorm(...);   // optional: clip the true gradients
//   scaler.step(opt);                           // skipped when a gradient is inf / NaN
//   scaler.update();                            // backoff after a skip, growth after `growthInterval` good steps
// The scale is an f32 number (powers of two stay exact); unscaling multiplies each gradient by
// the f32 reciprocal of the scale, as PyTorch does.
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { cast } from '../ops/cast.js';
import { mul } from '../ops/elementwise.js';

export interface GradScalerOptions {
  /** default 65536 (2^16) */
  initScale?: number;
  /** default 2 */
  growthFactor?: number;
  /** default 0.5 */
  backoffFactor?: number;
  /** consecutive steps without inf / NaN before the scale grows; default 2000 */
  growthInterval?: number;
  /** false: every method passes through (scale 1, nothing skipped); default true */
  enabled?: boolean;
}

/** What the scaler needs of an optimiser (AdamW fits). */
export interface ScalableOptimizer {
  readonly paramGroups: readonly { params: readonly Tensor[] }[];
  step(): void;
}

export interface GradScalerState {
  scale: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
  growthTracker: number;
}

type Stage = 'unscaled' | 'stepped';

function checkPositive(name: string, v: number, extra = ''): void {
  if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`GradScaler: ${name} must be a finite number > 0${extra} (got ${v})`);
}

export class GradScaler {
  readonly enabled: boolean;
  private scaleValue: number;
  private readonly growthFactor: number;
  private readonly backoffFactor: number;
  private readonly growthInterval: number;
  private growthTracker = 0;
  /** Per optimiser since the last update(): its stage and whether its gradients held inf / NaN. */
  private readonly perOptimizer = new Map<ScalableOptimizer, { stage: Stage; foundInf: boolean }>();

  constructor(options: GradScalerOptions = {}) {
    this.enabled = options.enabled ?? true;
    this.scaleValue = Math.fround(options.initScale ?? 65536);
    this.growthFactor = options.growthFactor ?? 2;
    this.backoffFactor = options.backoffFactor ?? 0.5;
    this.growthInterval = options.growthInterval ?? 2000;
    checkPositive('initScale', this.scaleValue);
    checkPositive('growthFactor', this.growthFactor);
    if (!(this.growthFactor > 1)) throw new RangeError(`GradScaler: growthFactor must be > 1 (got ${this.growthFactor})`);
    if (!(this.backoffFactor > 0 && this.backoffFactor < 1)) {
      throw new RangeError(`GradScaler: backoffFactor must be in (0, 1) (got ${this.backoffFactor})`);
    }
    if (!(Number.isInteger(this.growthInterval) && this.growthInterval > 0)) {
      throw new RangeError(`GradScaler: growthInterval must be an integer > 0 (got ${this.growthInterval})`);
    }
  }

  /** The current scale (1 when disabled). */
  getScale(): number {
    return this.enabled ? this.scaleValue : 1;
  }

  /** loss * scale, in f32 (a bf16 / f16 loss is cast up first: 65536 does not fit f16). */
  scale(loss: Tensor): Tensor {
    if (!this.enabled) return loss;
    const l = loss.dtype === 'f64' ? loss : cast(loss, 'f32');
    return mul(l, this.scaleValue);
  }

  /** Divide the optimiser's gradients by the scale (once per step), noting whether any is inf / NaN. */
  unscale_(optimizer: ScalableOptimizer): void {
    if (!this.enabled) return;
    const st = this.perOptimizer.get(optimizer);
    if (st?.stage === 'unscaled') throw new Error('GradScaler.unscale_: already called for this optimizer since the last update()');
    if (st?.stage === 'stepped') throw new Error('GradScaler.unscale_: called after step(); call update() first');
    const inv = Math.fround(1 / this.scaleValue);
    let foundInf = false;
    noGrad(() => {
      for (const g of optimizer.paramGroups) {
        for (const p of g.params) {
          if (!p.grad) continue;
          const unscaled = mul(p.grad, inv);
          if (!foundInf && !allFinite(unscaled)) foundInf = true;
          p.grad = unscaled;
        }
      }
    });
    this.perOptimizer.set(optimizer, { stage: 'unscaled', foundInf });
  }

  /** Whether unscale_ found an inf / NaN gradient of this optimiser since the last update(). */
  foundInf(optimizer: ScalableOptimizer): boolean {
    return this.perOptimizer.get(optimizer)?.foundInf ?? false;
  }

  /** unscale_ (unless done), then optimizer.step() unless a gradient was inf / NaN. Returns whether it stepped. */
  step(optimizer: ScalableOptimizer): boolean {
    if (!this.enabled) {
      optimizer.step();
      return true;
    }
    if (this.perOptimizer.get(optimizer)?.stage === 'stepped') {
      throw new Error('GradScaler.step: already called for this optimizer since the last update()');
    }
    if (this.perOptimizer.get(optimizer)?.stage !== 'unscaled') this.unscale_(optimizer);
    const st = this.perOptimizer.get(optimizer)!;
    st.stage = 'stepped';
    if (st.foundInf) return false;
    optimizer.step();
    return true;
  }

  /** Back off after a step with inf / NaN gradients, grow after growthInterval steps without. */
  update(): void {
    if (!this.enabled) return;
    if (this.perOptimizer.size === 0) throw new Error('GradScaler.update: no optimizer was unscaled or stepped since the last update()');
    const foundInf = [...this.perOptimizer.values()].some((s) => s.foundInf);
    if (foundInf) {
      this.scaleValue = Math.fround(this.scaleValue * this.backoffFactor);
      this.growthTracker = 0;
    } else if (this.growthTracker + 1 === this.growthInterval) {
      const grown = Math.fround(this.scaleValue * this.growthFactor);
      if (Number.isFinite(grown)) this.scaleValue = grown;
      this.growthTracker = 0;
    } else {
      this.growthTracker++;
    }
    this.perOptimizer.clear();
  }

  stateDict(): GradScalerState {
    return {
      scale: this.scaleValue,
      growthFactor: this.growthFactor,
      backoffFactor: this.backoffFactor,
      growthInterval: this.growthInterval,
      growthTracker: this.growthTracker,
    };
  }

  /** Restore the scale and growth tracker (the factors and interval must match this scaler's). */
  loadStateDict(s: GradScalerState): void {
    checkPositive('scale', s.scale, ' in the state');
    for (const k of ['growthFactor', 'backoffFactor', 'growthInterval'] as const) {
      if (s[k] !== this[k]) throw new Error(`GradScaler.loadStateDict: ${k} is ${s[k]} in the state, ${this[k]} here`);
    }
    if (!(Number.isInteger(s.growthTracker) && s.growthTracker >= 0 && s.growthTracker < this.growthInterval)) {
      throw new RangeError(
        `GradScaler.loadStateDict: growthTracker must be an integer in [0, ${this.growthInterval}) (got ${s.growthTracker})`,
      );
    }
    this.scaleValue = Math.fround(s.scale);
    this.growthTracker = s.growthTracker;
    this.perOptimizer.clear();
  }
}

function allFinite(t: Tensor): boolean {
  const d = t.dataSync();
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return false;
  return true;
}
