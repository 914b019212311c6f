// Broadcasting: expand a tensor to a shape, and sum a gradient back to an input's shape.
import { broadcastShapes, broadcastStrides, numel, sameShape, shapeToString, splitAtAxis } from '../tensor/shape.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';

/** Sum `g` over the axes that broadcasting expanded, returning a tensor of `shape`. */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  let storage = g.storage;
  let cur = [...g.shape];
  const lead = cur.length - shape.length;
  // reduce axes from the last so earlier axis numbers stay valid
  for (let ax = cur.length - 1; ax >= 0; ax--) {
    const target = ax < lead ? 1 : shape[ax - lead]!;
    if (cur[ax] !== 1 && target === 1) {
      const { outer, n, inner } = splitAtAxis(cur, ax);
      storage = g.backend.reduce('sum', storage, outer, n, inner);
      cur[ax] = 1;
    }
  }
  cur = cur.slice(lead);
  if (numel(cur) !== numel(shape)) {
    throw new Error(`sumToShape: cannot reduce ${shapeToString(g.shape)} to ${shapeToString(shape)}`);
  }
  return new Tensor(storage, shape, g.backend);
}

/** Materialise x broadcast to `shape` (NumPy rules). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const out = broadcastShapes(x.shape, shape, 'broadcastTo');
  if (!sameShape(out, shape)) {
    throw new RangeError(`broadcastTo: shape ${shapeToString(x.shape)} cannot be broadcast to ${shapeToString(shape)}`);
  }
  if (sameShape(x.shape, shape)) return x;
  const b = x.backend;
  const zero = b.full(x.dtype, 1, 0);
  const storage = b.binary(
    'add',
    x.storage,
    broadcastStrides(x.shape, shape),
    zero,
    shape.map(() => 0),
    shape,
    x.dtype,
  );
  return makeOutput(b, storage, shape, {
    name: 'broadcastTo',
    inputs: [x],
    backward: (g) => [sumToShape(g, x.shape)],
  });
}
