// Reference layout kernels: permute, box slice copy, box slice accumulate.
import { type Storage, arrayLike, contiguousStrides } from '../types.js';
import { forEachBroadcast } from './elementwise.js';

export function permute(x: Storage, shape: readonly number[], perm: readonly number[]): Storage {
  const inStrides = contiguousStrides(shape);
  const outShape = perm.map((p) => shape[p]!);
  const out = arrayLike(x, x.length);
  forEachBroadcast(outShape, [perm.map((p) => inStrides[p]!)], (i, [src]) => {
    out[i] = x[src!]!;
  });
  return out;
}

function boxOffset(strides: readonly number[], starts: readonly number[]): number {
  let o = 0;
  for (let i = 0; i < starts.length; i++) o += starts[i]! * strides[i]!;
  return o;
}

export function sliceCopy(x: Storage, shape: readonly number[], starts: readonly number[], sizes: readonly number[]): Storage {
  const strides = contiguousStrides(shape);
  const base = boxOffset(strides, starts);
  const out = arrayLike(
    x,
    sizes.reduce((p, d) => p * d, 1),
  );
  forEachBroadcast(sizes, [strides], (i, [src]) => {
    out[i] = x[base + src!]!;
  });
  return out;
}

export function sliceAddInPlace(
  target: Storage,
  shape: readonly number[],
  starts: readonly number[],
  src: Storage,
  srcShape: readonly number[],
): void {
  const strides = contiguousStrides(shape);
  const base = boxOffset(strides, starts);
  forEachBroadcast(srcShape, [strides], (i, [dst]) => {
    target[base + dst!]! += src[i]!;
  });
}
