// Reference layout kernels: permute, box slice copy, box slice accumulate.
import { type Storage, typedArrayFor } from '../types.js';
import { forEachBroadcast } from './elementwise.js';

function kindOf(x: Storage) {
  return x instanceof Float64Array ? 'f64' : x instanceof Float32Array ? 'f32' : 'i32';
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function permute(x: Storage, shape: readonly number[], perm: readonly number[]): Storage {
  const inStrides = contiguousStrides(shape);
  const outShape = perm.map((p) => shape[p]!);
  const out = typedArrayFor(kindOf(x), x.length);
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
  const out = typedArrayFor(kindOf(x), sizes.reduce((p, d) => p * d, 1));
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
