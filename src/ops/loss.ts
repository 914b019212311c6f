// Cross-entropy over class logits, with an ignore index and label smoothing.
import { shapeToString } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { mul, ne, neg, where, add, div } from './elementwise.js';
import { gather } from './indexing.js';
import { mean, sum } from './reduce.js';
import { reshape, unsqueeze } from './shape.js';
import { logSoftmax, logSoftmaxPick } from './softmax.js';
import { toF32IfHalf } from './autocast-cast.js';
import { requireDType, requireFloat } from './util.js';

export interface CrossEntropyOptions {
  /** Targets equal to this contribute nothing (default -100, as PyTorch). */
  ignoreIndex?: number;
  /** epsilon: the target distribution is (1-eps)·onehot + eps/C (default 0). */
  labelSmoothing?: number;
  reduction?: 'mean' | 'sum' | 'none';
}

/** logits [N, C] (or [..., C]) and i32 targets [N] (or [...]); mean over non-ignored rows. */
export function crossEntropy(logitsIn: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  // computed in f32 for bf16 / f16 logits, with or without autocast (on autocast's f32 list)
  const logits = toF32IfHalf(logitsIn);
  const { ignoreIndex = -100, labelSmoothing = 0, reduction = 'mean' } = options;
  requireFloat(logits, 'crossEntropy', 'logits');
  requireDType(targets, 'i32', 'crossEntropy', 'targets');
  if (!(labelSmoothing >= 0 && labelSmoothing <= 1)) {
    throw new RangeError(`crossEntropy: labelSmoothing must be in [0, 1] (got ${labelSmoothing})`);
  }
  const c = logits.shape[logits.ndim - 1]!;
  if (targets.size * c !== logits.size || targets.ndim !== logits.ndim - 1) {
    throw new RangeError(
      `crossEntropy: targets ${shapeToString(targets.shape)} must match logits ${shapeToString(logits.shape)} without its class axis`,
    );
  }
  const rows = reshape(logits, [targets.size, c]);
  const t = reshape(targets, [targets.size]);
  const valid = ne(t, ignoreIndex); // i32 1/0
  const safeT = where(valid, t, 0);
  // targets on a device are not read back to check them (a loss never waits for the GPU)
  const tv = t.backend.onDevice ? [] : t.dataSync();
  for (let i = 0; i < tv.length; i++) {
    if (tv[i] !== ignoreIndex && (tv[i]! < 0 || tv[i]! >= c)) {
      throw new RangeError(`crossEntropy: target ${tv[i]} at position ${i} is outside [0, ${c}) and is not ignoreIndex (${ignoreIndex})`);
    }
  }
  // the fused pick where the backend has it (the same bits); label smoothing needs all of logp
  const fused = labelSmoothing > 0 ? null : logSoftmaxPick(rows, safeT);
  const logp = fused ? null : logSoftmax(rows);
  let perRow = neg(fused ?? reshape(gather(logp!, 1, unsqueeze(safeT, 1)), [targets.size]));
  if (labelSmoothing > 0) {
    const smooth = neg(mean(logp!, 1));
    perRow = add(mul(perRow, 1 - labelSmoothing), mul(smooth, labelSmoothing));
  }
  const validF = new Tensor(logits.backend.cast(valid.storage, logits.dtype), valid.shape, logits.backend);
  perRow = mul(perRow, validF);
  if (reduction === 'none') return reshape(perRow, targets.shape);
  const total = sum(perRow);
  if (reduction === 'sum') return total;
  // mean over non-ignored targets (NaN when every target is ignored, as PyTorch)
  return div(total, sum(validF));
}
