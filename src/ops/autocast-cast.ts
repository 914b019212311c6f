// The casts autocast asks of ops (src/amp/autocast.ts has the state and the op lists).
import { isHalfDType } from '../backend/types.js';
import { autocastDtype } from '../amp/autocast.js';
import type { Tensor } from '../tensor/tensor.js';
import { cast } from './cast.js';

/** For a low-precision op: f32 inputs cast to the autocast dtype (unchanged when autocast is off). */
export function autocastLow(x: Tensor): Tensor {
  const d = autocastDtype();
  return d !== null && x.dtype === 'f32' ? cast(x, d) : x;
}

/** For an f32 op: bf16 / f16 inputs cast to f32 (unchanged when autocast is off). */
export function autocastF32(x: Tensor): Tensor {
  return autocastDtype() !== null && isHalfDType(x.dtype) ? cast(x, 'f32') : x;
}

/** bf16 / f16 cast to f32 whether autocast is on or not (the router GEMM and routing always run in f32). */
export function toF32IfHalf(x: Tensor): Tensor {
  return isHalfDType(x.dtype) ? cast(x, 'f32') : x;
}
