// dtype conversion (differentiable between float dtypes).
import { type DType, isFloatDType } from '../backend/types.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const b = x.backend;
  const out = b.cast(x.storage, dtype);
  if (!isFloatDType(dtype) || !isFloatDType(x.dtype)) return new Tensor(out, x.shape, b);
  return makeOutput(b, out, x.shape, {
    name: 'cast',
    inputs: [x],
    backward: (g) => [cast(g, x.dtype)],
  });
}
