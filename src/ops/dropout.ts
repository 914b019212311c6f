// Inverted dropout with a seeded generator (identity when not training or p = 0).
import { uninitializedFloatArrayLike } from '../backend/types.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { mul } from './elementwise.js';
import { requireFloat } from './util.js';

export function dropout(x: Tensor, p: number, training: boolean, generator: Generator = defaultGenerator): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1) (got ${p})`);
  requireFloat(x, 'dropout');
  if (!training || p === 0) return x;
  const keep = 1 / (1 - p);
  const mask = uninitializedFloatArrayLike(x.storage, x.size); // f64 for f64, else f32; fillMask writes every element
  const threshold = p * 4294967296; // uniform() = result / 2^32 >= p, exactly (both sides scaled by 2^32)
  if (x.backend.dropoutMask) x.backend.dropoutMask(mask, generator.stateWords(), threshold, keep);
  else fillMask(mask, threshold, keep, generator);
  const m = new Tensor(x.backend.fromArray(mask), x.shape, x.backend);
  return mul(x, m.dtype === x.dtype ? m : new Tensor(x.backend.cast(m.storage, x.dtype), x.shape, x.backend)); // bf16 / f16: the mask in x's dtype
}

/**
 * mask[i] = generator.uniform() >= p ? keep : 0, the generator's xoshiro128** steps inlined on
 * local state (Generator.nextU32, the same draws in the same order): a method call and four
 * typed-array reads and writes per element were most of a training step's dropout time
 * (docs/performance.md: src/ops/dropout.ts: fillMask). The native backend's dropoutMask is its
 * C twin (native/ops/dropout.c), bit for bit.
 */
export function fillMask(mask: Float32Array | Float64Array, threshold: number, keep: number, generator: Generator): void {
  const state = generator.getState();
  let [s0, s1, s2, s3] = state.s;
  for (let i = 0; i < mask.length; i++) {
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    mask[i] = result >= threshold ? keep : 0;
  }
  generator.setState({ s: [s0 >>> 0, s1 >>> 0, s2 >>> 0, s3 >>> 0], spare: state.spare });
}
