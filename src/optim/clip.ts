// Gradient clipping by the global L2 norm (PyTorch's clip_grad_norm_).
import { isFloatArray } from '../backend/types.js';
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, lt, mul, reciprocal, sqrt, where } from '../ops/elementwise.js';
import { sum } from '../ops/reduce.js';

function checkMaxNorm(fn: string, maxNorm: number): void {
  if (!(maxNorm >= 0)) throw new RangeError(`${fn}: maxNorm must be >= 0 (got ${maxNorm})`);
}

/** sq + Σ a[i]², in order, in float64 (a float's square is exact in float64); the native backend's sumSquares is its C twin. */
export function addSquares(sq: number, a: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) sq += a[i]! * a[i]!;
  return sq;
}

/**
 * total = sqrt(sum over every grad element of g²), accumulated in float64. If
 * coef = maxNorm / (total + 1e-6) is below 1, every grad is multiplied by coef (new grad
 * tensors: two grads may share one storage, so they are not scaled in place). Returns total.
 * A NaN total is returned as is and leaves the grads untouched.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): number {
  checkMaxNorm('clipGradNorm', maxNorm);
  const withGrad = [...params].filter((p) => p.grad !== null);
  let sq = 0;
  for (const p of withGrad) {
    const g = p.grad!;
    const a = g.backend.readSync(g.storage); // not dataSync: the array is not kept, so a tidy scope may recycle it
    sq = g.backend.sumSquares && isFloatArray(a) ? g.backend.sumSquares(a, sq) : addSquares(sq, a);
  }
  const total = Math.sqrt(sq);
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    noGrad(() => {
      for (const p of withGrad) p.grad = p.grad!.mul(coef);
    });
  }
  return total;
}

/**
 * clipGradNorm where the grads may live on a device: the clipping is applied before this
 * returns; on a device backend it is enqueued there (the norm, coef = min(1, maxNorm /
 * (total + 1e-6)) with a NaN total giving 1, and the scaling, in the grads' dtype) and the norm
 * comes back as a scalar tensor to read with the step's other values. On CPU backends it is
 * clipGradNorm itself (a number).
 */
export function clipGradNormDeferred(params: Iterable<Tensor>, maxNorm: number): Tensor | number {
  const withGrad = [...params].filter((p) => p.grad !== null);
  if (!withGrad[0]?.backend.onDevice) return clipGradNorm(withGrad, maxNorm);
  checkMaxNorm('clipGradNorm', maxNorm);
  return noGrad(() => {
    const sq = withGrad.map((p) => sum(mul(p.grad!, p.grad!))).reduce((a, b) => add(a, b));
    const norm = sqrt(sq);
    const coef = mul(reciprocal(add(norm, 1e-6)), maxNorm);
    // NaN < 1 is false: a NaN norm leaves the grads as they are
    const safe = where(lt(coef, 1), coef, 1);
    for (const p of withGrad) p.grad = p.grad!.mul(safe.to(p.grad!.dtype));
    return norm;
  });
}

/** clipGradNormDeferred with the norm read (the only wait). */
export async function clipGradNormAsync(params: Iterable<Tensor>, maxNorm: number): Promise<number> {
  const n = clipGradNormDeferred(params, maxNorm);
  return typeof n === 'number' ? n : (await n.data())[0]!;
}
