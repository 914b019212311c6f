// Diffulex's optimised top-k guards its input: NaN logits become -1e20 and every logit is
// clamped to [-1e20, 1e20] (diffulex_kernel fused_topk). The gradient passes where a logit was
// finite and inside the range, and is 0 where it was replaced.
import { floatArrayLike } from '../backend/types.js';
import { makeOutput } from '../tensor/tensor.js';
import type { Tensor } from '../tensor/tensor.js';
import { arrayLike } from './tensors.js';

export const LOGIT_GUARD = 1e20;

export function sanitizeLogits(logits: Tensor): Tensor {
  const x = logits.dataSync();
  const out = floatArrayLike(logits.storage as Float32Array | Float64Array, x.length);
  const pass = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (Number.isNaN(v)) out[i] = -LOGIT_GUARD;
    else if (v > LOGIT_GUARD) out[i] = LOGIT_GUARD;
    else if (v < -LOGIT_GUARD) out[i] = -LOGIT_GUARD;
    else {
      out[i] = v;
      pass[i] = 1;
    }
  }
  return makeOutput(logits.backend, out, logits.shape, {
    name: 'sanitizeLogits',
    inputs: [logits],
    backward: (g) => {
      const gd = g.dataSync();
      const d = floatArrayLike(out, gd.length);
      for (let i = 0; i < d.length; i++) d[i] = pass[i] ? gd[i]! : 0;
      return [arrayLike(logits, d, logits.shape)];
    },
  });
}
