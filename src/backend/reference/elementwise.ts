// Reference elementwise kernels: unary ops, broadcasting binary ops, where, clamp, cast.
import type { BinaryOp, UnaryOp } from '../backend.js';
import { type DType, type Storage, arrayLike, floatArrayLike, typedArrayFor } from '../types.js';
import { binaryScalar, unaryDerivative, unaryForward } from './math.js';

export function unary(op: UnaryOp, x: Storage): Storage {
  const out = arrayLike(x, x.length);
  for (let i = 0; i < x.length; i++) out[i] = unaryForward(op, x[i]!);
  return out;
}

export function unaryBackward(op: UnaryOp, x: Storage, dy: Storage): Storage {
  const out = floatArrayLike(x, x.length);
  for (let i = 0; i < x.length; i++) out[i] = dy[i]! * unaryDerivative(op, x[i]!);
  return out;
}

/**
 * Walks every index of outShape, calling visit(outIndex, offsets...) with each operand's
 * flat offset under its (broadcast) strides. Written for clarity, not speed.
 */
export function forEachBroadcast(
  outShape: readonly number[],
  strides: readonly (readonly number[])[],
  visit: (outIndex: number, offsets: number[]) => void,
): void {
  const rank = outShape.length;
  const total = outShape.reduce((p, d) => p * d, 1);
  if (total === 0) return;
  const counter = new Array<number>(rank).fill(0);
  const offsets = strides.map(() => 0);
  for (let i = 0; i < total; i++) {
    visit(i, offsets);
    // increment the multi-index from the last axis, updating offsets incrementally
    for (let ax = rank - 1; ax >= 0; ax--) {
      counter[ax]!++;
      for (let s = 0; s < strides.length; s++) offsets[s]! += strides[s]![ax]!;
      if (counter[ax]! < outShape[ax]!) break;
      for (let s = 0; s < strides.length; s++) offsets[s]! -= strides[s]![ax]! * outShape[ax]!;
      counter[ax] = 0;
    }
  }
}

export function binary(
  op: BinaryOp,
  a: Storage,
  aStrides: readonly number[],
  b: Storage,
  bStrides: readonly number[],
  outShape: readonly number[],
  outDtype: DType,
): Storage {
  const out = typedArrayFor(
    outDtype,
    outShape.reduce((p, d) => p * d, 1),
  );
  forEachBroadcast(outShape, [aStrides, bStrides], (i, [ia, ib]) => {
    out[i] = binaryScalar(op, a[ia!]!, b[ib!]!);
  });
  return out;
}

export function where(
  cond: Storage,
  condStrides: readonly number[],
  a: Storage,
  aStrides: readonly number[],
  b: Storage,
  bStrides: readonly number[],
  outShape: readonly number[],
): Storage {
  const out = arrayLike(
    a,
    outShape.reduce((p, d) => p * d, 1),
  );
  forEachBroadcast(outShape, [condStrides, aStrides, bStrides], (i, [ic, ia, ib]) => {
    out[i] = cond[ic!] !== 0 ? a[ia!]! : b[ib!]!;
  });
  return out;
}

export function clamp(x: Storage, lo: number, hi: number): Storage {
  const out = x.slice();
  for (let i = 0; i < out.length; i++) {
    const v = out[i]!;
    out[i] = v < lo ? lo : v > hi ? hi : v;
  }
  return out;
}

export function cast(s: Storage, dtype: DType): Storage {
  const out = typedArrayFor(dtype, s.length);
  if (dtype === 'i32') {
    for (let i = 0; i < s.length; i++) out[i] = Math.trunc(s[i]!);
  } else {
    out.set(s);
  }
  return out;
}
