// Reference optimiser kernels (mutate their first arguments).
import type { AdamWHyper } from '../backend.js';
import type { Storage } from '../types.js';

export function adamwInPlace(param: Storage, grad: Storage, m: Storage, v: Storage, h: AdamWHyper): void {
  const stepSize = h.lr / h.biasCorrection1;
  const sqrtBc2 = Math.sqrt(h.biasCorrection2);
  const decay = 1 - h.lr * h.weightDecay;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]!;
    m[i] = h.beta1 * m[i]! + (1 - h.beta1) * g;
    v[i] = h.beta2 * v[i]! + (1 - h.beta2) * g * g;
    // PyTorch AdamW: p *= 1 - lr*wd; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
    param[i] = param[i]! * decay - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / sqrtBc2 + h.eps);
  }
}

export function axpyInPlace(y: Storage, x: Storage, alpha: number): void {
  for (let i = 0; i < y.length; i++) y[i]! += alpha * x[i]!;
}
