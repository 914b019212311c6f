// Differentiable reductions (sum, mean, max, min, logsumexp), argmax/argmin, cumsum.
import type { ReduceOp } from '../backend/backend.js';
import { normalizeAxis, numel, splitAtAxis } from '../tensor/shape.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';
import { broadcastTo } from './broadcast.js';
import { div, exp, mul, rawBinary, sub } from './elementwise.js';
import { reshape } from './shape.js';
import { requireFloat } from './util.js';

export type Axes = number | readonly number[] | undefined;

/** Normalised, sorted, de-duplicated axes (undefined = all). */
function resolveAxes(x: Tensor, axes: Axes, op: string): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  return [...new Set(list.map((a) => normalizeAxis(a, x.ndim, op)))].sort((p, q) => p - q);
}

function keptShape(shape: readonly number[], axes: number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function finalShape(shape: readonly number[], axes: number[], keepdim: boolean): number[] {
  return keepdim ? keptShape(shape, axes) : shape.filter((_, i) => !axes.includes(i));
}

/** Reduce the storage over several axes, one axis at a time (no graph). */
function rawReduce(op: ReduceOp, x: Tensor, axes: number[]): Tensor {
  let storage = x.storage;
  const cur = [...x.shape];
  for (let k = axes.length - 1; k >= 0; k--) {
    const ax = axes[k]!;
    const { outer, n, inner } = splitAtAxis(cur, ax);
    storage = x.backend.reduce(op, storage, outer, n, inner);
    cur[ax] = 1;
  }
  return new Tensor(storage, cur, x.backend);
}

export function sum(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  const ax = resolveAxes(x, axes, 'sum');
  const r = rawReduce('sum', x, ax);
  return makeOutput(x.backend, r.storage, finalShape(x.shape, ax, keepdim), {
    name: 'sum',
    inputs: [x],
    backward: (g) => [broadcastTo(reshape(g, keptShape(x.shape, ax)), x.shape)],
  });
}

export function mean(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  requireFloat(x, 'mean');
  const ax = resolveAxes(x, axes, 'mean');
  const count = ax.reduce((p, a) => p * x.shape[a]!, 1);
  return div(sum(x, ax, keepdim), count);
}

/** Max / min values over axes; the gradient is split evenly among tied maxima. */
function extremum(op: 'max' | 'min', x: Tensor, axes: Axes, keepdim: boolean): Tensor {
  const ax = resolveAxes(x, axes, op);
  const r = rawReduce(op, x, ax);
  return makeOutput(x.backend, r.storage, finalShape(x.shape, ax, keepdim), {
    name: op,
    inputs: [x],
    backward: (g) => {
      const mask = rawBinary('eq', x, r);
      const count = rawReduce('sum', mask, ax);
      return [mul(div(mask, count), reshape(g, keptShape(x.shape, ax)))];
    },
  });
}

export const max = (x: Tensor, axes?: Axes, keepdim = false) => extremum('max', x, axes, keepdim);
export const min = (x: Tensor, axes?: Axes, keepdim = false) => extremum('min', x, axes, keepdim);

/** log(sum(exp(x))) over axes, computed stably. */
export function logsumexp(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  requireFloat(x, 'logsumexp');
  const ax = resolveAxes(x, axes, 'logsumexp');
  const r = rawReduce('logsumexp', x, ax);
  return makeOutput(x.backend, r.storage, finalShape(x.shape, ax, keepdim), {
    name: 'logsumexp',
    inputs: [x],
    backward: (g) => [mul(exp(sub(x, r)), reshape(g, keptShape(x.shape, ax)))],
  });
}

function argOp(op: 'argmax' | 'argmin', x: Tensor, axis: number | undefined, keepdim: boolean): Tensor {
  if (axis === undefined) return argOp(op, reshape(x, [numel(x.shape)]), 0, false);
  const a = normalizeAxis(axis, x.ndim, op);
  const { outer, n, inner } = splitAtAxis(x.shape, a);
  const out = x.backend.argReduce(op, x.storage, outer, n, inner);
  return new Tensor(out, finalShape(x.shape, [a], keepdim), x.backend);
}

/** Index of the max (ties: lowest index), as i32; flattened when no axis is given. */
export const argmax = (x: Tensor, axis?: number, keepdim = false) => argOp('argmax', x, axis, keepdim);
export const argmin = (x: Tensor, axis?: number, keepdim = false) => argOp('argmin', x, axis, keepdim);

/** Inclusive cumulative sum along an axis. */
export function cumsum(x: Tensor, axis: number): Tensor {
  const a = normalizeAxis(axis, x.ndim, 'cumsum');
  const { outer, n, inner } = splitAtAxis(x.shape, a);
  const b = x.backend;
  return makeOutput(b, b.cumsum(x.storage, outer, n, inner, false), x.shape, {
    name: 'cumsum',
    inputs: [x],
    backward: (g) => [new Tensor(b.cumsum(g.storage, outer, n, inner, true), x.shape, b)],
  });
}
