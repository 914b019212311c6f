// `--precision` of a CT-MoE run: how the training step is computed.
//   fp32     the model and every op in f32 (the default; unchanged from before the option)
//   bf16     the model in bf16 (OLMo-core's dtype='bfloat16'): bf16 weights, activations and
//            gradients; routing, softmax statistics and the losses in f32; AdamW updates f32
//            master weights and moments
//   f16-amp  PyTorch AMP as the seed trains: f32 weights, the forward under autocast to f16,
//            the loss scaled by a GradScaler; a step whose gradients overflow is skipped
//            (the parameters keep their values) and the scale backs off
import { withAutocast } from '../../amp/autocast.js';
import { GradScaler, type GradScalerState } from '../../amp/grad-scaler.js';
import type { Module } from '../../nn/module.js';
import type { AdamW } from '../../optim/adamw.js';
import type { Tensor } from '../../tensor/tensor.js';

export const PRECISIONS = ['fp32', 'bf16', 'f16-amp'] as const;
export type Precision = (typeof PRECISIONS)[number];

export interface PrecisionStep {
  readonly precision: Precision;
  /** Run the forward (and loss) in this precision. */
  forward<T>(fn: () => T): T;
  /** Backpropagate the loss (scaled in f16-amp). */
  backward(loss: Tensor): void;
  /** Make the gradients the true ones before clipping (unscale in f16-amp); returns whether they overflowed. */
  unscale(optimizer: AdamW): boolean;
  /** The optimiser step (skipped by the scaler on overflow), and the scale update. */
  step(optimizer: AdamW): void;
  /** The scaler's state for a checkpoint (f16-amp), else null. */
  state(): GradScalerState | null;
  restore(state: GradScalerState | null | undefined): void;
}

/** Set the model up for `precision` (bf16: its parameters cast in place, before the optimiser is built). */
export function precisionStep(precision: Precision, model: Module): PrecisionStep {
  if (precision === 'bf16') model.to('bf16');
  const scaler = precision === 'f16-amp' ? new GradScaler() : null;
  return {
    precision,
    forward: (fn) => (scaler ? withAutocast('f16', fn) : fn()),
    backward: (loss) => (scaler ? scaler.scale(loss) : loss).backward(),
    unscale(optimizer) {
      if (!scaler) return false;
      scaler.unscale_(optimizer);
      return scaler.foundInf(optimizer);
    },
    step(optimizer) {
      if (!scaler) {
        optimizer.step();
        return;
      }
      scaler.step(optimizer);
      scaler.update();
    },
    state: () => scaler?.stateDict() ?? null,
    restore(s) {
      if (scaler && s) scaler.loadStateDict(s);
    },
  };
}
