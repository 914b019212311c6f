// softmax / logSoftmax along an axis (fused row kernels on the last axis).
import { normalizeAxis, splitAtAxis } from '../tensor/shape.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';
import { transpose } from './shape.js';
import { autocastF32 } from './autocast-cast.js';
import { requireFloat } from './util.js';

function softmaxLike(x: Tensor, axis: number, log: boolean): Tensor {
  const name = log ? 'logSoftmax' : 'softmax';
  requireFloat(x, name);
  const a = normalizeAxis(axis, x.ndim, name);
  if (a !== x.ndim - 1) return transpose(softmaxLike(transpose(x, a, -1), -1, log), a, -1);
  const { outer: rows, n } = splitAtAxis(x.shape, a);
  const b = x.backend;
  const y = b.softmax(x.storage, rows, n, log);
  return makeOutput(b, y, x.shape, {
    name,
    inputs: [x],
    backward: (g) => [new Tensor(b.softmaxBackward(y, g.storage, rows, n, log), x.shape, b)],
  });
}

// on autocast's f32 list
export const softmax = (x: Tensor, axis = -1) => softmaxLike(autocastF32(x), axis, false);
export const logSoftmax = (x: Tensor, axis = -1) => softmaxLike(autocastF32(x), axis, true);
