// Differentiable elementwise ops: unary math, broadcasting arithmetic, comparisons, where, clamp.
import type { BinaryOp, UnaryOp } from '../backend/backend.js';
import { promoteDTypes } from '../backend/types.js';
import { broadcastShapes, broadcastStrides } from '../tensor/shape.js';
import { Tensor, makeOutput } from '../tensor/tensor.js';
import { sumToShape } from './broadcast.js';
import { autocastF32 } from './autocast-cast.js';
import { type TensorLike, asTensor, requireFloat, requireSameBackend } from './util.js';

function unaryOp(op: UnaryOp, x: Tensor): Tensor {
  requireFloat(x, op);
  const b = x.backend;
  return makeOutput(b, b.unary(op, x.storage), x.shape, {
    name: op,
    inputs: [x],
    backward: (g) => [new Tensor(b.unaryBackward(op, x.storage, g.storage), x.shape, b)],
  });
}

export const neg = (x: Tensor) => unaryOp('neg', x);
// exp, log, rsqrt and reciprocal are on autocast's f32 list
export const exp = (x: Tensor) => unaryOp('exp', autocastF32(x));
export const log = (x: Tensor) => unaryOp('log', autocastF32(x));
export const sqrt = (x: Tensor) => unaryOp('sqrt', x);
export const rsqrt = (x: Tensor) => unaryOp('rsqrt', autocastF32(x));
export const abs = (x: Tensor) => unaryOp('abs', x);
export const tanh = (x: Tensor) => unaryOp('tanh', x);
export const sigmoid = (x: Tensor) => unaryOp('sigmoid', x);
export const silu = (x: Tensor) => unaryOp('silu', x);
export const relu = (x: Tensor) => unaryOp('relu', x);
export const square = (x: Tensor) => unaryOp('square', x);
export const reciprocal = (x: Tensor) => unaryOp('reciprocal', autocastF32(x));
export const sign = (x: Tensor) => unaryOp('sign', x);
/** GELU: exact (erf) by default, or the tanh approximation. */
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none') => unaryOp(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);

/** Run a broadcasting binary kernel (no graph). Operands are cast to the promoted dtype. */
export function rawBinary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  requireSameBackend(op, a, b);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const dtype = promoteDTypes(a.dtype, b.dtype);
  const be = a.backend;
  const sa = a.dtype === dtype ? a.storage : be.cast(a.storage, dtype);
  const sb = b.dtype === dtype ? b.storage : be.cast(b.storage, dtype);
  const out = be.binary(op, sa, broadcastStrides(a.shape, shape), sb, broadcastStrides(b.shape, shape), shape, dtype);
  return new Tensor(out, shape, be);
}

function binaryOp(op: BinaryOp, a: Tensor, b: Tensor, grads: (g: Tensor) => [Tensor | null, Tensor | null]): Tensor {
  const raw = rawBinary(op, a, b);
  return makeOutput(raw.backend, raw.storage, raw.shape, {
    name: op,
    inputs: [a, b],
    backward: (g) => {
      const [ga, gb] = grads(g);
      return [ga && a.requiresGrad ? sumToShape(ga, a.shape) : null, gb && b.requiresGrad ? sumToShape(gb, b.shape) : null];
    },
  });
}

export function add(a: Tensor, bIn: TensorLike): Tensor {
  const b = asTensor(bIn, a);
  return binaryOp('add', a, b, (g) => [g, g]);
}

export function sub(a: Tensor, bIn: TensorLike): Tensor {
  const b = asTensor(bIn, a);
  return binaryOp('sub', a, b, (g) => [g, b.requiresGrad ? neg(g) : null]);
}

export function mul(a: Tensor, bIn: TensorLike): Tensor {
  const b = asTensor(bIn, a);
  return binaryOp('mul', a, b, (g) => [a.requiresGrad ? mul(g, b) : null, b.requiresGrad ? mul(g, a) : null]);
}

export function div(a: Tensor, bIn: TensorLike): Tensor {
  const b = asTensor(bIn, a);
  return binaryOp('div', a, b, (g) => [a.requiresGrad ? div(g, b) : null, b.requiresGrad ? neg(div(mul(g, a), mul(b, b))) : null]);
}

/** a ** b (elementwise, broadcasting). */
export function pow(a: Tensor, bIn: TensorLike): Tensor {
  const b = asTensor(bIn, a);
  return binaryOp('pow', a, b, (g) => [
    a.requiresGrad ? mul(g, mul(b, pow(a, sub(b, 1)))) : null,
    b.requiresGrad ? mul(g, mul(pow(a, b), log(a))) : null,
  ]);
}

/** Elementwise max; at ties each side gets half the gradient (as PyTorch). */
export function maximum(a: Tensor, bIn: TensorLike): Tensor {
  const b = asTensor(bIn, a);
  return binaryOp('maximum', a, b, (g) => tieSplit(g, a, b, 'gt'));
}

export function minimum(a: Tensor, bIn: TensorLike): Tensor {
  const b = asTensor(bIn, a);
  return binaryOp('minimum', a, b, (g) => tieSplit(g, a, b, 'lt'));
}

function tieSplit(g: Tensor, a: Tensor, b: Tensor, wins: 'gt' | 'lt'): [Tensor, Tensor] {
  // weight 1 to the strict winner, 1/2 to each side at a tie
  const wa = add(rawBinary(wins, a, b), mul(rawBinary('eq', a, b), 0.5));
  const wb = add(neg(wa), 1);
  return [mul(g, wa), mul(g, wb)];
}

/** Comparisons return 1 / 0 in the promoted dtype; no gradient flows through them. */
export const eq = (a: Tensor, b: TensorLike) => rawBinary('eq', a, asTensor(b, a));
export const ne = (a: Tensor, b: TensorLike) => rawBinary('ne', a, asTensor(b, a));
export const lt = (a: Tensor, b: TensorLike) => rawBinary('lt', a, asTensor(b, a));
export const le = (a: Tensor, b: TensorLike) => rawBinary('le', a, asTensor(b, a));
export const gt = (a: Tensor, b: TensorLike) => rawBinary('gt', a, asTensor(b, a));
export const ge = (a: Tensor, b: TensorLike) => rawBinary('ge', a, asTensor(b, a));

/** cond != 0 ? a : b, broadcasting all three. */
export function where(cond: Tensor, aIn: TensorLike, bIn: TensorLike): Tensor {
  const a = aIn instanceof Tensor ? aIn : bIn instanceof Tensor ? asTensor(aIn, bIn) : asTensor(aIn, cond);
  const b = asTensor(bIn, a);
  requireSameBackend('where', cond, a, b);
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape, 'where'), b.shape, 'where');
  const dtype = promoteDTypes(a.dtype, b.dtype);
  const be = a.backend;
  const sa = a.dtype === dtype ? a.storage : be.cast(a.storage, dtype);
  const sb = b.dtype === dtype ? b.storage : be.cast(b.storage, dtype);
  const out = be.where(
    cond.storage,
    broadcastStrides(cond.shape, shape),
    sa,
    broadcastStrides(a.shape, shape),
    sb,
    broadcastStrides(b.shape, shape),
    shape,
  );
  return makeOutput(be, out, shape, {
    name: 'where',
    inputs: [a, b],
    backward: (g) => {
      const zero = asTensor(0, g);
      return [
        a.requiresGrad ? sumToShape(where(cond, g, zero), a.shape) : null,
        b.requiresGrad ? sumToShape(where(cond, zero, g), b.shape) : null,
      ];
    },
  });
}

/** min(max(x, lo), hi); the gradient passes where lo <= x <= hi (as PyTorch). */
export function clamp(x: Tensor, lo = -Infinity, hi = Infinity): Tensor {
  requireFloat(x, 'clamp');
  if (lo > hi) throw new RangeError(`clamp: lo (${lo}) must not exceed hi (${hi})`);
  const b = x.backend;
  return makeOutput(b, b.clamp(x.storage, lo, hi), x.shape, {
    name: 'clamp',
    inputs: [x],
    backward: (g) => [mul(g, mul(ge(x, lo), le(x, hi)))],
  });
}
