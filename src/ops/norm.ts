// LayerNorm and RMSNorm over the last axis (fused kernels, fused backward).
import { shapeToString } from '../tensor/shape.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';
import { autocastF32 } from './autocast-cast.js';
import { requireFloat } from './util.js';

function checkAffine(op: string, x: Tensor, p: Tensor | null, name: string): void {
  if (p && (p.ndim !== 1 || p.shape[0] !== x.shape[x.ndim - 1])) {
    throw new RangeError(
      `${op}: ${name} must have shape [${x.shape[x.ndim - 1]}] to match input ${shapeToString(x.shape)} (got ${shapeToString(p.shape)})`,
    );
  }
  if (p && p.dtype !== x.dtype) throw new TypeError(`${op}: ${name} must have dtype ${x.dtype} (got ${p.dtype})`);
}

/** (x - mean) / sqrt(var + eps) * weight + bias over the last axis (biased variance). */
export function layerNorm(xIn: Tensor, weightIn: Tensor | null = null, biasIn: Tensor | null = null, eps = 1e-5): Tensor {
  // on autocast's f32 list
  const [x, weight, bias] = [autocastF32(xIn), weightIn && autocastF32(weightIn), biasIn && autocastF32(biasIn)] as const;
  requireFloat(x, 'layerNorm');
  checkAffine('layerNorm', x, weight, 'weight');
  checkAffine('layerNorm', x, bias, 'bias');
  const n = x.shape[x.ndim - 1]!;
  const rows = x.size / n;
  const b = x.backend;
  const r = b.layerNorm(x.storage, weight?.storage ?? null, bias?.storage ?? null, rows, n, eps);
  const inputs = [x, weight, bias].filter((t): t is Tensor => t !== null);
  return makeOutput(b, r.y, x.shape, {
    name: 'layerNorm',
    inputs,
    backward: (g) => {
      const d = b.layerNormBackward(g.storage, x.storage, weight?.storage ?? null, r.mean, r.rstd, rows, n, bias !== null);
      const out: Tensor[] = [new Tensor(d.dx, x.shape, b)];
      if (weight) out.push(new Tensor(d.dw!, weight.shape, b));
      if (bias) out.push(new Tensor(d.db!, bias.shape, b));
      return out;
    },
  });
}

/** x / sqrt(mean(x^2) + eps) * weight over the last axis. */
export function rmsNorm(xIn: Tensor, weightIn: Tensor | null = null, eps = 1e-6): Tensor {
  const [x, weight] = [autocastF32(xIn), weightIn && autocastF32(weightIn)] as const; // on autocast's f32 list
  requireFloat(x, 'rmsNorm');
  checkAffine('rmsNorm', x, weight, 'weight');
  const n = x.shape[x.ndim - 1]!;
  const rows = x.size / n;
  const b = x.backend;
  const r = b.rmsNorm(x.storage, weight?.storage ?? null, rows, n, eps);
  return makeOutput(b, r.y, x.shape, {
    name: 'rmsNorm',
    inputs: weight ? [x, weight] : [x],
    backward: (g) => {
      const d = b.rmsNormBackward(g.storage, x.storage, weight?.storage ?? null, r.rstd, rows, n);
      return weight ? [new Tensor(d.dx, x.shape, b), new Tensor(d.dw!, weight.shape, b)] : [new Tensor(d.dx, x.shape, b)];
    },
  });
}
