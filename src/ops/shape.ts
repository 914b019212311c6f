// Differentiable shape ops: reshape, (un)squeeze, permute/transpose, slice, concat, stack, split.
import { checkShape, normalizeAxis, numel, shapeToString } from '../tensor/shape.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';
import { requireSameBackend } from './util.js';

/** Same elements, new shape (one axis may be -1). Shares storage: no copy. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const inferred = [...shape];
  const free = inferred.indexOf(-1);
  if (free !== inferred.lastIndexOf(-1)) throw new RangeError(`reshape: only one axis may be -1 (got ${shapeToString(shape)})`);
  if (free >= 0) {
    const known = inferred.reduce((p, d, i) => (i === free ? p : p * d), 1);
    inferred[free] = known === 0 ? 0 : x.size / known;
  }
  checkShape(inferred, 'reshape');
  if (numel(inferred) !== x.size) {
    throw new RangeError(`reshape: cannot view ${shapeToString(x.shape)} (${x.size} elements) as ${shapeToString(shape)}`);
  }
  return makeOutput(x.backend, x.storage, inferred, {
    name: 'reshape',
    inputs: [x],
    backward: (g) => [reshape(g, x.shape)],
  });
}

export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  const s = normalizeAxis(startAxis, x.ndim, 'flatten');
  const e = normalizeAxis(endAxis, x.ndim, 'flatten');
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normalizeAxis(axis, x.ndim + 1, 'unsqueeze');
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined)
    return reshape(
      x,
      x.shape.filter((d) => d !== 1),
    );
  const a = normalizeAxis(axis, x.ndim, 'squeeze');
  if (x.shape[a] !== 1) throw new RangeError(`squeeze: axis ${axis} of shape ${shapeToString(x.shape)} has size ${x.shape[a]}, not 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => i !== a),
  );
}

/** Reorder axes (materialises a contiguous copy). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const p = perm.map((a) => normalizeAxis(a, x.ndim, 'permute'));
  if (p.length !== x.ndim || new Set(p).size !== p.length) {
    throw new RangeError(`permute: [${perm.join(', ')}] is not a permutation of the ${x.ndim} axes of ${shapeToString(x.shape)}`);
  }
  if (p.every((a, i) => a === i)) return x;
  const inverse = new Array<number>(p.length);
  p.forEach((a, i) => (inverse[a] = i));
  const b = x.backend;
  return makeOutput(
    b,
    b.permute(x.storage, x.shape, p),
    p.map((a) => x.shape[a]!),
    {
      name: 'permute',
      inputs: [x],
      backward: (g) => [permute(g, inverse)],
    },
  );
}

export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  const a = normalizeAxis(axis0, x.ndim, 'transpose');
  const c = normalizeAxis(axis1, x.ndim, 'transpose');
  const perm = x.shape.map((_, i) => i);
  perm[a] = c;
  perm[c] = a;
  return permute(x, perm);
}

/** Elements [start, end) along an axis (negative indices count from the end; no step). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const a = normalizeAxis(axis, x.ndim, 'slice');
  const dim = x.shape[a]!;
  const s = Math.min(Math.max(start < 0 ? start + dim : start, 0), dim);
  const e = Math.min(Math.max(end === undefined ? dim : end < 0 ? end + dim : end, s), dim);
  return narrow(x, a, s, e - s);
}

/** `length` elements from `start` along an axis. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normalizeAxis(axis, x.ndim, 'narrow');
  if (start < 0 || length < 0 || start + length > x.shape[a]!) {
    throw new RangeError(
      `narrow: [${start}, ${start + length}) is outside axis ${axis} of size ${x.shape[a]} (shape ${shapeToString(x.shape)})`,
    );
  }
  if (start === 0 && length === x.shape[a]) return x;
  const starts = x.shape.map((_, i) => (i === a ? start : 0));
  const sizes = x.shape.map((d, i) => (i === a ? length : d));
  const b = x.backend;
  return makeOutput(b, b.sliceCopy(x.storage, x.shape, starts, sizes), sizes, {
    name: 'narrow',
    inputs: [x],
    backward: (g) => {
      const full = b.full(g.dtype, x.size, 0);
      b.sliceAddInPlace(full, x.shape, starts, g.storage, sizes);
      return [new Tensor(full, x.shape, b)];
    },
  });
}

/** Join tensors along an existing axis. */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new RangeError('concat: needs at least one tensor');
  requireSameBackend('concat', ...tensors);
  const first = tensors[0]!;
  const a = normalizeAxis(axis, first.ndim, 'concat');
  for (const t of tensors) {
    if (t.dtype !== first.dtype) throw new TypeError(`concat: all tensors must have dtype ${first.dtype} (got ${t.dtype})`);
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new RangeError(`concat: shapes ${shapeToString(first.shape)} and ${shapeToString(t.shape)} differ outside axis ${axis}`);
    }
  }
  const shape = [...first.shape];
  shape[a] = tensors.reduce((p, t) => p + t.shape[a]!, 0);
  const b = first.backend;
  const out = b.full(first.dtype, numel(shape), 0);
  const offsets: number[] = [];
  let off = 0;
  for (const t of tensors) {
    offsets.push(off);
    b.sliceAddInPlace(
      out,
      shape,
      shape.map((_, i) => (i === a ? off : 0)),
      t.storage,
      t.shape,
    );
    off += t.shape[a]!;
  }
  return makeOutput(b, out, shape, {
    name: 'concat',
    inputs: tensors,
    backward: (g) => tensors.map((t, i) => (t.requiresGrad ? narrow(g, a, offsets[i]!, t.shape[a]!) : null)),
  });
}

/** Join tensors along a new axis. */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new RangeError('stack: needs at least one tensor');
  return concat(
    tensors.map((t) => unsqueeze(t, axis < 0 ? axis + t.ndim + 1 : axis)),
    axis < 0 ? axis + tensors[0]!.ndim + 1 : axis,
  );
}

/** Split into pieces of the given sizes (a number = equal pieces of that size, the last may be smaller). */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normalizeAxis(axis, x.ndim, 'split');
  const dim = x.shape[a]!;
  const list: number[] = [];
  if (typeof sizes === 'number') {
    if (!(sizes > 0)) throw new RangeError(`split: size must be positive (got ${sizes})`);
    for (let s = 0; s < dim; s += sizes) list.push(Math.min(sizes, dim - s));
  } else {
    if (sizes.reduce((p, s) => p + s, 0) !== dim) {
      throw new RangeError(`split: sizes [${sizes.join(', ')}] do not add up to axis ${axis} of size ${dim}`);
    }
    list.push(...sizes);
  }
  let off = 0;
  return list.map((len) => {
    const piece = narrow(x, a, off, len);
    off += len;
    return piece;
  });
}

/** `chunks` nearly equal pieces (as torch.chunk). */
export function chunk(x: Tensor, chunks: number, axis = 0): Tensor[] {
  const a = normalizeAxis(axis, x.ndim, 'chunk');
  return split(x, Math.ceil(x.shape[a]! / chunks), a);
}
