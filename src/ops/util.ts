// Small helpers shared by the op files.
import type { DType, FloatDType } from '../backend/types.js';
import { isFloatDType } from '../backend/types.js';
import { Tensor } from '../tensor/tensor.js';
import { shapeToString } from '../tensor/shape.js';

export type TensorLike = Tensor | number;

/** A number becomes a 0-d tensor of `like`'s dtype on `like`'s backend. */
export function asTensor(x: TensorLike, like: Tensor): Tensor {
  if (x instanceof Tensor) return x;
  return new Tensor(like.backend.full(like.dtype, 1, x), [], like.backend);
}

export function requireFloat(x: Tensor, op: string, arg = 'input'): FloatDType {
  if (!isFloatDType(x.dtype)) {
    throw new TypeError(`${op}: ${arg} must be a floating tensor (expected dtype f32 or f64, got ${x.dtype})`);
  }
  return x.dtype;
}

export function requireDType(x: Tensor, dtype: DType, op: string, arg: string): void {
  if (x.dtype !== dtype) throw new TypeError(`${op}: ${arg} must have dtype ${dtype} (got ${x.dtype})`);
}

export function requireSameBackend(op: string, ...ts: Tensor[]): void {
  const b = ts[0]!.backend;
  for (const t of ts) {
    if (t.backend !== b) {
      throw new Error(`${op}: tensors live on different backends ('${b.name}' and '${t.backend.name}'); move them to one first`);
    }
  }
}

export function requireRank(x: Tensor, rank: number, op: string, arg = 'input'): void {
  if (x.ndim !== rank) throw new RangeError(`${op}: ${arg} must have rank ${rank} (got shape ${shapeToString(x.shape)})`);
}
