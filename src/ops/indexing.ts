// Differentiable indexing: indexSelect, indexAdd, gather, scatterAdd, embedding; oneHot.
import { normalizeAxis, shapeToString, splitAtAxis } from '../tensor/shape.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';
import { reshape } from './shape.js';
import { requireDType, requireSameBackend } from './util.js';

function requireIndex(idx: Tensor, op: string): void {
  requireDType(idx, 'i32', op, 'index');
}

/** Rows of x along `axis` picked by a 1-D i32 index (repeats allowed). */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  requireIndex(index, 'indexSelect');
  requireSameBackend('indexSelect', x, index);
  if (index.ndim !== 1) throw new RangeError(`indexSelect: index must be 1-D (got shape ${shapeToString(index.shape)})`);
  const a = normalizeAxis(axis, x.ndim, 'indexSelect');
  const { outer, n, inner } = splitAtAxis(x.shape, a);
  const b = x.backend;
  const shape = x.shape.map((d, i) => (i === a ? index.size : d));
  return makeOutput(b, b.indexSelect(x.storage, outer, n, inner, index.storage), shape, {
    name: 'indexSelect',
    inputs: [x],
    backward: (g) => {
      const dx = b.full(g.dtype, x.size, 0);
      b.indexAddInPlace(dx, outer, n, inner, index.storage, g.storage);
      return [new Tensor(dx, x.shape, b)];
    },
  });
}

/** target + (src added at the rows `index` along `axis`); out of place. */
export function indexAdd(target: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  requireIndex(index, 'indexAdd');
  requireSameBackend('indexAdd', target, index, src);
  if (src.dtype !== target.dtype) throw new TypeError(`indexAdd: src must have dtype ${target.dtype} (got ${src.dtype})`);
  const a = normalizeAxis(axis, target.ndim, 'indexAdd');
  const expected = target.shape.map((d, i) => (i === a ? index.size : d));
  if (index.ndim !== 1 || src.ndim !== target.ndim || src.shape.some((d, i) => d !== expected[i])) {
    throw new RangeError(
      `indexAdd: src shape ${shapeToString(src.shape)} must be ${shapeToString(expected)} for target ${shapeToString(target.shape)} and a 1-D index of ${index.size}`,
    );
  }
  const { outer, n, inner } = splitAtAxis(target.shape, a);
  const b = target.backend;
  const out = b.copy(target.storage);
  b.indexAddInPlace(out, outer, n, inner, index.storage, src.storage);
  return makeOutput(b, out, target.shape, {
    name: 'indexAdd',
    inputs: [target, src],
    backward: (g) => [g, src.requiresGrad ? indexSelect(g, a, index) : null],
  });
}

function checkGatherShapes(op: string, x: Tensor, a: number, index: Tensor): void {
  if (index.ndim !== x.ndim || index.shape.some((d, i) => i !== a && d !== x.shape[i])) {
    throw new RangeError(`${op}: index shape ${shapeToString(index.shape)} must match ${shapeToString(x.shape)} on every axis but ${a}`);
  }
}

/** torch.gather: out[..., j, ...] = x[..., index[..., j, ...], ...] along `axis`. */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  requireIndex(index, 'gather');
  requireSameBackend('gather', x, index);
  const a = normalizeAxis(axis, x.ndim, 'gather');
  checkGatherShapes('gather', x, a, index);
  const { outer, n, inner } = splitAtAxis(x.shape, a);
  const m = index.shape[a]!;
  const b = x.backend;
  return makeOutput(b, b.gather(x.storage, outer, n, inner, index.storage, m), index.shape, {
    name: 'gather',
    inputs: [x],
    backward: (g) => {
      const dx = b.full(g.dtype, x.size, 0);
      b.scatterAddInPlace(dx, outer, n, inner, index.storage, g.storage, m);
      return [new Tensor(dx, x.shape, b)];
    },
  });
}

/** target + src scattered (added) at `index` along `axis`; out of place. */
export function scatterAdd(target: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  requireIndex(index, 'scatterAdd');
  requireSameBackend('scatterAdd', target, index, src);
  const a = normalizeAxis(axis, target.ndim, 'scatterAdd');
  checkGatherShapes('scatterAdd', target, a, index);
  if (src.shape.some((d, i) => d !== index.shape[i]) || src.ndim !== index.ndim) {
    throw new RangeError(`scatterAdd: src shape ${shapeToString(src.shape)} must equal index shape ${shapeToString(index.shape)}`);
  }
  const { outer, n, inner } = splitAtAxis(target.shape, a);
  const m = index.shape[a]!;
  const b = target.backend;
  const out = b.copy(target.storage);
  b.scatterAddInPlace(out, outer, n, inner, index.storage, src.storage, m);
  return makeOutput(b, out, target.shape, {
    name: 'scatterAdd',
    inputs: [target, src],
    backward: (g) => [g, src.requiresGrad ? gather(g, a, index) : null],
  });
}

/** weight [V, D] looked up by i32 ids of any shape -> [...ids.shape, D]. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.ndim !== 2) throw new RangeError(`embedding: weight must be [vocab, dim] (got ${shapeToString(weight.shape)})`);
  const flat = indexSelect(weight, 0, reshape(ids, [ids.size]));
  return reshape(flat, [...ids.shape, weight.shape[1]!]);
}

/** One-hot rows (f32 by default) for i32 class ids in [0, numClasses). */
export function oneHot(ids: Tensor, numClasses: number, dtype: 'f32' | 'f64' = 'f32'): Tensor {
  requireIndex(ids, 'oneHot');
  const src = ids.dataSync();
  const out = dtype === 'f64' ? new Float64Array(ids.size * numClasses) : new Float32Array(ids.size * numClasses);
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c < 0 || c >= numClasses) throw new RangeError(`oneHot: class id ${c} is outside [0, ${numClasses})`);
    out[i * numClasses + c] = 1;
  }
  return new Tensor(ids.backend.fromArray(out), [...ids.shape, numClasses], ids.backend);
}
