// Small constructors that put new tensors on the backend of an existing one (never the default).
import type { DType, TypedArray } from '../backend/types.js';
import { Tensor } from '../tensor/tensor.js';

export function fullLike(like: Tensor, shape: readonly number[], value: number, dtype: DType = like.dtype): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  return new Tensor(like.backend.full(dtype, n, value), shape, like.backend);
}

export function arrayLike(like: Tensor, data: TypedArray, shape: readonly number[] = [data.length]): Tensor {
  return new Tensor(like.backend.fromArray(data), shape, like.backend);
}
