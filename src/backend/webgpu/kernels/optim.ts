// Optimiser kernels, in place: AdamW (PyTorch's update) and y += alpha * x.
import type { AdamWHyper } from '../../backend.js';
import type { GpuRuntime, GpuStorage } from '../runtime.js';
import { WG, buffers, perElement } from './wgsl.js';

export function adamwInPlace(rt: GpuRuntime, param: GpuStorage, grad: GpuStorage, m: GpuStorage, v: GpuStorage, h: AdamWHyper): void {
  const code = perElement(
    buffers([
      ['g', 'f32', false],
      ['p', 'f32', true],
      ['m', 'f32', true],
      ['v', 'f32', true],
    ]),
    `let beta1 = pf(1u); let beta2 = pf(2u); let eps = pf(3u); let stepSize = pf(4u); let sqrtBc2 = pf(5u); let decay = pf(6u);
  let gi = g[i];
  let mi = beta1 * m[i] + (1.0 - beta1) * gi;
  let vi = beta2 * v[i] + (1.0 - beta2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] = p[i] * decay - (stepSize * mi) / (sqrt(vi) / sqrtBc2 + eps);`,
  );
  const floats = [h.beta1, h.beta2, h.eps, h.lr / h.biasCorrection1, Math.sqrt(h.biasCorrection2), 1 - h.lr * h.weightDecay];
  rt.run(`adamwInPlace ([${param.length}])`, code, [grad, param, m, v], [param.length], floats, Math.ceil(param.length / WG));
}

export function axpyInPlace(rt: GpuRuntime, y: GpuStorage, x: GpuStorage, alpha: number): void {
  const code = perElement(
    buffers([
      ['x', 'f32', false],
      ['y', 'f32', true],
    ]),
    `y[i] = y[i] + pf(1u) * x[i];`,
  );
  rt.run(`axpyInPlace ([${y.length}])`, code, [x, y], [y.length], [alpha], Math.ceil(y.length / WG));
}
