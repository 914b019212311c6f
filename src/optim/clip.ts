// Gradient clipping by the global L2 norm (PyTorch's clip_grad_norm_).
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * total = sqrt(sum over every grad element of g²), accumulated in float64. If
 * coef = maxNorm / (total + 1e-6) is below 1, every grad is multiplied by coef (new grad
 * tensors: two grads may share one storage, so they are not scaled in place). Returns total.
 * A NaN total is returned as is and leaves the grads untouched.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): number {
  if (!(maxNorm >= 0)) throw new RangeError(`clipGradNorm: maxNorm must be >= 0 (got ${maxNorm})`);
  const withGrad = [...params].filter((p) => p.grad !== null);
  let sq = 0;
  for (const p of withGrad) {
    const g = p.grad!.dataSync();
    for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
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
