// Inverted dropout with a seeded generator (identity when not training or p = 0).
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { mul } from './elementwise.js';
import { requireFloat } from './util.js';

export function dropout(x: Tensor, p: number, training: boolean, generator: Generator = defaultGenerator): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1) (got ${p})`);
  requireFloat(x, 'dropout');
  if (!training || p === 0) return x;
  const keep = 1 / (1 - p);
  const mask = x.dtype === 'f64' ? new Float64Array(x.size) : new Float32Array(x.size);
  for (let i = 0; i < mask.length; i++) mask[i] = generator.uniform() >= p ? keep : 0;
  const m = new Tensor(x.backend.fromArray(mask), x.shape, x.backend);
  return mul(x, m.dtype === x.dtype ? m : new Tensor(x.backend.cast(m.storage, x.dtype), x.shape, x.backend)); // bf16 / f16: the mask in x's dtype
}
