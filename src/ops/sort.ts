// Selection and sorting: topk (values differentiable), stable argsort, sort.
import { normalizeAxis, shapeToString, splitAtAxis } from '../tensor/shape.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';
import { permute } from './shape.js';

/** Run a rows-x-n kernel along any axis by moving that axis last and back. */
function alongAxis(x: Tensor, axis: number, op: string, run: (t: Tensor) => Tensor[]): Tensor[] {
  const a = normalizeAxis(axis, x.ndim, op);
  if (a === x.ndim - 1) return run(x);
  const perm = x.shape.map((_, i) => i);
  perm.splice(a, 1);
  perm.push(a);
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => (inverse[p] = i));
  return run(permute(x, perm)).map((t) => permute(t, inverse));
}

export interface TopK {
  values: Tensor;
  indices: Tensor;
}

/** The k largest (or smallest) along an axis, sorted; ties keep the lowest index first. */
export function topk(x: Tensor, k: number, axis = -1, largest = true): TopK {
  const a = normalizeAxis(axis, x.ndim, 'topk');
  const n = x.shape[a]!;
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new RangeError(`topk: k must be an integer in [0, ${n}] for axis ${axis} of shape ${shapeToString(x.shape)} (got ${k})`);
  }
  const [values, indices] = alongAxis(x, a, 'topk', (t) => {
    const { outer: rows } = splitAtAxis(t.shape, t.ndim - 1);
    const r = t.backend.topk(t.storage, rows, n, k, largest);
    const shape = [...t.shape.slice(0, -1), k];
    const b = t.backend;
    const idx = new Tensor(r.indices, shape, b);
    const vals = makeOutput(b, r.values, shape, {
      name: 'topk',
      inputs: [t],
      backward: (g) => {
        const dx = b.full(g.dtype, t.size, 0);
        b.scatterAddInPlace(dx, rows, n, 1, r.indices, g.storage, k);
        return [new Tensor(dx, t.shape, b)];
      },
    });
    return [vals, idx];
  });
  return { values: values!, indices: indices! };
}

/** Stable argsort along an axis (i32). */
export function argsort(x: Tensor, axis = -1, descending = false): Tensor {
  const a = normalizeAxis(axis, x.ndim, 'argsort');
  const n = x.shape[a]!;
  return alongAxis(x, a, 'argsort', (t) => {
    const { outer: rows } = splitAtAxis(t.shape, t.ndim - 1);
    return [new Tensor(t.backend.argsort(t.storage, rows, n, descending), t.shape, t.backend)];
  })[0]!;
}

/** Sorted values (differentiable) and their indices (stable). */
export function sort(x: Tensor, axis = -1, descending = false): TopK {
  const a = normalizeAxis(axis, x.ndim, 'sort');
  return topk(x, x.shape[a]!, a, descending);
}
