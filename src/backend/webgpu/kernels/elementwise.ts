// Elementwise WGSL kernels: unary ops and their derivatives, broadcasting binary ops, where,
// clamp, cast, fill. Math runs in f32; i32 tensors convert in and out (as the reference's
// Int32Array stores truncate).
import type { BinaryOp, UnaryOp } from '../../backend.js';
import type { GpuRuntime, GpuStorage } from '../runtime.js';
import { BROADCAST_OFFSET, SCALAR_MATH, WG, broadcastWords, buffers, perElement } from './wgsl.js';

const UNARY: Record<UnaryOp, string> = {
  neg: '-v',
  exp: 'exp(v)',
  log: 'log(v)',
  sqrt: 'sqrt(v)',
  rsqrt: '1.0 / sqrt(v)',
  abs: 'abs(v)',
  tanh: 'tanh_s(v)',
  sigmoid: 'sigmoid(v)',
  silu: 'v * sigmoid(v)',
  relu: 'select(0.0, v, v > 0.0)',
  gelu: '0.5 * v * (1.0 + erf_s(v * 0.70710678118654752))',
  gelu_tanh: '0.5 * v * (1.0 + tanh_s(0.79788456080286536 * (v + 0.044715 * v * v * v)))',
  sign: 'sign(v)',
  square: 'v * v',
  reciprocal: '1.0 / v',
};

/** f'(v) per op (subgradient 0 at the kinks), as the reference's unaryDerivative. */
const DERIVATIVE: Record<UnaryOp, string> = {
  neg: '-1.0',
  exp: 'exp(v)',
  log: '1.0 / v',
  sqrt: '0.5 / sqrt(v)',
  rsqrt: '-0.5 / (v * sqrt(v))',
  abs: 'sign(v)',
  tanh: '1.0 - tanh_s(v) * tanh_s(v)',
  sigmoid: 'sigmoid(v) * (1.0 - sigmoid(v))',
  silu: 'sigmoid(v) * (1.0 + v * (1.0 - sigmoid(v)))',
  relu: 'select(0.0, 1.0, v > 0.0)',
  gelu: '0.5 * (1.0 + erf_s(v * 0.70710678118654752)) + v * 0.39894228040143268 * exp(-0.5 * v * v)',
  gelu_tanh:
    '0.5 * (1.0 + tanh_s(0.79788456080286536 * (v + 0.044715 * v * v * v))) + 0.5 * v * (1.0 - tanh_s(0.79788456080286536 * (v + 0.044715 * v * v * v)) * tanh_s(0.79788456080286536 * (v + 0.044715 * v * v * v))) * 0.79788456080286536 * (1.0 + 3.0 * 0.044715 * v * v)',
  sign: '0.0',
  square: '2.0 * v',
  reciprocal: '-1.0 / (v * v)',
};

const groups = (n: number) => Math.ceil(n / WG);

export function unary(rt: GpuRuntime, op: UnaryOp, x: GpuStorage): GpuStorage {
  const out = rt.alloc(x.dtype, x.length);
  const code = perElement(
    buffers([
      ['x', x.dtype, false],
      ['y', x.dtype, true],
    ]),
    `let v = f32(x[i]); y[i] = ${x.dtype}(${UNARY[op]});`,
    SCALAR_MATH,
  );
  rt.run(`unary ${op} (${x.dtype}[${x.length}])`, code, [x, out], [x.length], [], groups(x.length));
  return out;
}

export function unaryBackward(rt: GpuRuntime, op: UnaryOp, x: GpuStorage, dy: GpuStorage): GpuStorage {
  const out = rt.alloc('f32', x.length);
  const code = perElement(
    buffers([
      ['x', x.dtype, false],
      ['dy', dy.dtype, false],
      ['dx', 'f32', true],
    ]),
    `let v = f32(x[i]); dx[i] = f32(dy[i]) * (${DERIVATIVE[op]});`,
    SCALAR_MATH,
  );
  rt.run(`unaryBackward ${op} (${x.dtype}[${x.length}])`, code, [x, dy, out], [x.length], [], groups(x.length));
  return out;
}

/** pow as Math.pow for negative bases with integral exponents, 0^0 = 1. */
const POW = `
fn pow_s(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (a == 0.0) { return select(inf(), 0.0, b > 0.0); }
  if (a > 0.0) { return pow(a, b); }
  if (b != floor(b)) { return nan(); }
  let m = pow(-a, b);
  return select(m, -m, abs(b % 2.0) == 1.0);
}`;

function binaryExpr(op: BinaryOp, int: boolean): string {
  const cmp = (c: string) => `select(0, 1, ${c})`;
  switch (op) {
    case 'add':
      return 'a + b';
    case 'sub':
      return 'a - b';
    case 'mul':
      return 'a * b';
    case 'div':
      return int ? 'i32(f32(a) / f32(b))' : 'a / b';
    case 'pow':
      return int ? 'i32(pow_s(f32(a), f32(b)))' : 'pow_s(a, b)';
    case 'maximum':
      return int ? 'max(a, b)' : 'select(select(b, a, a > b), nan(), is_nan(a) || is_nan(b))';
    case 'minimum':
      return int ? 'min(a, b)' : 'select(select(b, a, a < b), nan(), is_nan(a) || is_nan(b))';
    case 'eq':
      return cmp('a == b');
    case 'ne':
      return cmp('a != b');
    case 'lt':
      return cmp('a < b');
    case 'le':
      return cmp('a <= b');
    case 'gt':
      return cmp('a > b');
    case 'ge':
      return cmp('a >= b');
  }
}

export function binary(
  rt: GpuRuntime,
  op: BinaryOp,
  a: GpuStorage,
  aStrides: readonly number[],
  b: GpuStorage,
  bStrides: readonly number[],
  outShape: readonly number[],
  outDtype: 'f32' | 'i32',
): GpuStorage {
  const n = outShape.reduce((p, d) => p * d, 1);
  const out = rt.alloc(outDtype, n);
  // integer math only when both operands are i32; comparisons make 0/1 in the output type
  const int = a.dtype === 'i32' && b.dtype === 'i32';
  const ct = int ? 'i32' : 'f32';
  const expr = `${outDtype}(${binaryExpr(op, int)})`;
  const code = perElement(
    buffers([
      ['A', a.dtype, false],
      ['B', b.dtype, false],
      ['Y', outDtype, true],
    ]),
    `let rank = pu(1);
  let a = ${ct}(A[bcast(i, rank, 2u, 2u + rank)]);
  let b = ${ct}(B[bcast(i, rank, 2u, 2u + 2u * rank)]);
  Y[i] = ${expr};`,
    BROADCAST_OFFSET + POW,
  );
  rt.run(
    `binary ${op} (${a.dtype}[${a.length}], ${b.dtype}[${b.length}] -> [${outShape.join(', ')}])`,
    code,
    [a, b, out],
    [n, ...broadcastWords(outShape, [aStrides, bStrides])],
    [],
    groups(n),
  );
  return out;
}

export function where(
  rt: GpuRuntime,
  cond: GpuStorage,
  condStrides: readonly number[],
  a: GpuStorage,
  aStrides: readonly number[],
  b: GpuStorage,
  bStrides: readonly number[],
  outShape: readonly number[],
): GpuStorage {
  const n = outShape.reduce((p, d) => p * d, 1);
  const out = rt.alloc(a.dtype, n);
  const code = perElement(
    buffers([
      ['C', cond.dtype, false],
      ['A', a.dtype, false],
      ['B', b.dtype, false],
      ['Y', a.dtype, true],
    ]),
    `let rank = pu(1);
  let c = C[bcast(i, rank, 2u, 2u + rank)];
  let va = A[bcast(i, rank, 2u, 2u + 2u * rank)];
  let vb = ${a.dtype}(B[bcast(i, rank, 2u, 2u + 3u * rank)]);
  Y[i] = select(vb, va, c != ${cond.dtype}(0));`,
    BROADCAST_OFFSET,
  );
  rt.run(
    `where ([${outShape.join(', ')}])`,
    code,
    [cond, a, b, out],
    [n, ...broadcastWords(outShape, [condStrides, aStrides, bStrides])],
    [],
    groups(n),
  );
  return out;
}

export function clamp(rt: GpuRuntime, x: GpuStorage, lo: number, hi: number): GpuStorage {
  const out = rt.alloc(x.dtype, x.length);
  const code = perElement(
    buffers([
      ['x', x.dtype, false],
      ['y', x.dtype, true],
    ]),
    `let v = f32(x[i]); let lo = pf(1u); let hi = pf(2u);
  y[i] = ${x.dtype}(select(select(v, hi, v > hi), lo, v < lo));`,
  );
  rt.run(`clamp (${x.dtype}[${x.length}])`, code, [x, out], [x.length], [lo, hi], groups(x.length));
  return out;
}

/** f32 -> i32 truncates toward zero, as the reference's Math.trunc. */
export function cast(rt: GpuRuntime, x: GpuStorage, dtype: 'f32' | 'i32'): GpuStorage {
  const out = rt.alloc(dtype, x.length);
  const code = perElement(
    buffers([
      ['x', x.dtype, false],
      ['y', dtype, true],
    ]),
    `y[i] = ${dtype}(x[i]);`,
  );
  rt.run(`cast ${x.dtype} -> ${dtype} ([${x.length}])`, code, [x, out], [x.length], [], groups(x.length));
  return out;
}

export function fill(rt: GpuRuntime, dtype: 'f32' | 'i32', n: number, value: number): GpuStorage {
  const out = rt.alloc(dtype, n);
  const v = dtype === 'f32' ? 'pf(1u)' : 'bitcast<i32>(pu(1u))';
  const code = perElement(buffers([['y', dtype, true]]), `y[i] = ${v};`);
  rt.run(`full ${dtype} (${n})`, code, [out], dtype === 'f32' ? [n] : [n, value], dtype === 'f32' ? [value] : [], groups(n));
  return out;
}
