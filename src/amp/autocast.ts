// Autocast (PyTorch's torch.autocast, in spirit): inside `withAutocast('bf16' | 'f16', fn)`
// the ops below read this state and pick their compute dtype per op, so a model written in f32
// runs its GEMMs in low precision while precision-sensitive ops stay in f32:
//   - low precision (f32 inputs cast down): matmul (so Linear and the expert GEMMs), attention.
//   - f32 (half inputs cast up): softmax / logSoftmax, layerNorm / rmsNorm, exp / log / rsqrt /
//     reciprocal, crossEntropy (for half logits even outside autocast), the router GEMM and everything after it (routing and
//     its aux losses are computed in f32, as the seeds do), the MoE aux losses.
//   - everything else follows type promotion (bf16 + f32 -> f32).
// The casts are differentiable, so gradients flow back in the parameters' own dtype.
// This file holds only the state; the ops cast (src/ops/autocast-cast.ts).
import type { HalfDType } from '../backend/types.js';

let current: HalfDType | null = null;

/** The autocast dtype in effect (null: autocast off). */
export function autocastDtype(): HalfDType | null {
  return current;
}

/** Run fn with autocast to `dtype` (null switches it off, e.g. around an f32 region). */
export function withAutocast<T>(dtype: HalfDType | null, fn: () => T): T {
  if (dtype !== null && dtype !== 'bf16' && dtype !== 'f16') {
    throw new TypeError(`withAutocast: dtype must be 'bf16', 'f16' or null (got ${String(dtype)})`);
  }
  const prev = current;
  current = dtype;
  try {
    return fn();
  } finally {
    current = prev;
  }
}
