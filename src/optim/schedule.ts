// Learning-rate schedules: a multiplier function of the step, and a scheduler that applies it.
import type { ParamGroup } from './adamw.js';

export type LrLambda = (step: number) => number;

export interface WarmupCosineOptions {
  /** Steps of linear warmup from 0 (0 = none). */
  warmup: number;
  /** Step at which the cosine reaches its end. */
  total: number;
  /** Lowest multiplier after warmup (CT-MoE uses 0.05; default 0). */
  floor?: number;
}

/**
 * CT-MoE's lr_mult:
 *   s < warmup ? s / warmup : max(floor, 0.5 * (1 + cos(pi * (s - warmup) / max(total - warmup, 1))))
 * Step 0 has multiplier 0 when warmup > 0 (as CT-MoE's LambdaLR: the first optimiser step
 * runs at lr 0). Past `total` the cosine rises again, so the floor (or total >= your last
 * step) is what holds it down — as in CT-MoE.
 */
export function warmupCosine(options: WarmupCosineOptions): LrLambda {
  const { warmup, total, floor = 0 } = options;
  if (!(Number.isInteger(warmup) && warmup >= 0)) throw new RangeError(`warmupCosine: warmup must be an integer >= 0 (got ${warmup})`);
  if (!(Number.isInteger(total) && total >= 0)) throw new RangeError(`warmupCosine: total must be an integer >= 0 (got ${total})`);
  if (!(floor >= 0 && floor <= 1)) throw new RangeError(`warmupCosine: floor must be in [0, 1] (got ${floor})`);
  return (s) => {
    if (s < warmup) return s / warmup;
    const progress = (s - warmup) / Math.max(total - warmup, 1);
    return Math.max(floor, 0.5 * (1 + Math.cos(Math.PI * progress)));
  };
}

/** Anything with param groups whose `lr` the scheduler may set (AdamW). */
export interface HasParamGroups {
  paramGroups: Pick<ParamGroup, 'lr'>[];
}

export interface LRSchedulerState {
  /** Steps taken by the scheduler (the multiplier in force is lambda(step)). */
  step: number;
  baseLrs: number[];
}

/**
 * PyTorch's LambdaLR: group i's lr = baseLrs[i] * lambda(step). Construction records the
 * groups' current lrs as base lrs and applies lambda(0); call step() after each optimiser step.
 */
export class LRScheduler {
  private stepIndex = 0;
  private baseLrs: number[];

  constructor(
    readonly optimizer: HasParamGroups,
    readonly lambda: LrLambda,
  ) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.apply();
  }

  step(): void {
    this.stepIndex++;
    this.apply();
  }

  /** The lrs set by the last step (or by construction). */
  get lastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  get state(): LRSchedulerState {
    return { step: this.stepIndex, baseLrs: [...this.baseLrs] };
  }

  loadState(state: LRSchedulerState): void {
    if (state.baseLrs.length !== this.optimizer.paramGroups.length) {
      throw new Error(
        `LRScheduler.loadState: the state has ${state.baseLrs.length} base lrs, the optimiser has ${this.optimizer.paramGroups.length} groups`,
      );
    }
    this.stepIndex = state.step;
    this.baseLrs = [...state.baseLrs];
    this.apply();
  }

  private apply(): void {
    const mult = this.lambda(this.stepIndex);
    if (!Number.isFinite(mult)) throw new RangeError(`LRScheduler: lambda(${this.stepIndex}) returned ${mult}; expected a finite number`);
    this.optimizer.paramGroups.forEach((g, i) => (g.lr = this.baseLrs[i]! * mult));
  }
}
