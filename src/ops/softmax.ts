// softmax / logSoftmax along an axis (fused row kernels on the last axis).
import { normalizeAxis, shapeToString, splitAtAxis } from '../tensor/shape.js';
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

/**
 * logSoftmax(x)[r, targets[r]] for x [rows, n] and i32 targets [rows] in [0, n): cross-entropy's
 * pick as one node, where the backend has the fused kernel (`Backend.logSoftmaxPick`; null
 * where not). Its values and gradient are the bits of logSoftmax then gather; it keeps each
 * row's logsumexp instead of the [rows, n] log-probabilities, and its backward writes the
 * logits' gradient in one pass instead of a scattered [rows, n] gradient and a softmax backward
 * (docs/performance.md: src/ops/softmax.ts: logSoftmaxPick).
 */
export function logSoftmaxPick(x: Tensor, targets: Tensor): Tensor | null {
  const b = x.backend;
  if (!b.logSoftmaxPick || !b.logSoftmaxPickBackward) return null;
  requireFloat(x, 'logSoftmaxPick');
  const [rows, n] = x.shape as [number, number];
  if (x.ndim !== 2 || targets.ndim !== 1 || targets.shape[0] !== rows || targets.dtype !== 'i32') {
    throw new RangeError(
      `logSoftmaxPick: expected x [rows, n] and i32 targets [rows] (got ${shapeToString(x.shape)}, ${targets.dtype} ${shapeToString(targets.shape)})`,
    );
  }
  const { picked, lse } = b.logSoftmaxPick(x.storage, targets.storage, rows, n);
  const backward = b.logSoftmaxPickBackward.bind(b);
  return makeOutput(b, picked, [rows], {
    name: 'logSoftmaxPick',
    inputs: [x],
    backward: (g) => [new Tensor(backward(x.storage, lse, targets.storage, g.storage, rows, n), x.shape, b)],
  });
}
