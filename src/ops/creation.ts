// Tensor factories.
import { getBackend } from '../backend/registry.js';
import { type DType, type FloatDType, type TypedArray, dtypeOfArray, isHalfDType, typedArrayFor } from '../backend/types.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { checkShape, numel, shapeToString } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

export interface CreateOptions {
  dtype?: DType;
}

export interface RandomOptions {
  dtype?: FloatDType;
  generator?: Generator;
}

type Nested = number | readonly Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = (cur as readonly Nested[])[0] ?? 0;
  }
  return shape;
}

/** A tensor from nested arrays or a typed array (f32 by default; pass `shape` for flat data). */
export function tensor(data: Nested | TypedArray, options: CreateOptions & { shape?: readonly number[] } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const arr = data as TypedArray;
    const shape = options.shape ?? [arr.length];
    const dtype = options.dtype ?? dtypeOfArray(arr);
    if (dtype === dtypeOfArray(arr)) return fromArray(arr, shape);
    const values = valuesFor(dtype, arr.length);
    for (let i = 0; i < arr.length; i++) values[i] = arr[i]!;
    return fromValues(values, dtype, shape);
  }
  const shape = options.shape ?? inferShape(data);
  const flat: unknown[] = [];
  const walk = (d: unknown): void => {
    if (Array.isArray(d)) d.forEach(walk);
    else flat.push(d);
  };
  walk(data);
  if (flat.length !== numel(shape)) {
    throw new RangeError(
      `tensor: nested data holds ${flat.length} numbers but shape ${shapeToString(shape)} needs ${numel(shape)} (ragged arrays are not allowed)`,
    );
  }
  const dtype = options.dtype ?? 'f32';
  const out = valuesFor(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v !== 'number') throw new TypeError(`tensor: element ${i} is ${typeof v}, expected a number`);
    out[i] = v;
  }
  return fromValues(out, dtype, shape);
}

/** A writable array for n values of `dtype`: f32 for bf16 / f16 (their bits are not values), rounded once by fromValues. */
function valuesFor(dtype: DType, n: number): TypedArray {
  return typedArrayFor(isHalfDType(dtype) ? 'f32' : dtype, n);
}

function fromValues(values: TypedArray, dtype: DType, shape: readonly number[]): Tensor {
  const t = fromArray(values, shape);
  return t.dtype === dtype ? t : new Tensor(t.backend.cast(t.storage, dtype), shape, t.backend);
}

/** Wrap a typed array (ownership passes to the tensor) with a shape. */
export function fromArray(data: TypedArray, shape: readonly number[]): Tensor {
  checkShape(shape, 'fromArray');
  const b = getBackend();
  return new Tensor(b.fromArray(data), shape, b);
}

export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  checkShape(shape, 'full');
  const b = getBackend();
  return new Tensor(b.full(options.dtype ?? 'f32', numel(shape), value), shape, b);
}

export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return full(shape, 1, options);
}

export function zerosLike(t: Tensor): Tensor {
  return new Tensor(t.backend.full(t.dtype, t.size, 0), t.shape, t.backend);
}

export function onesLike(t: Tensor): Tensor {
  return new Tensor(t.backend.full(t.dtype, t.size, 1), t.shape, t.backend);
}

/** 0, 1, ..., n-1 (or start..end by step); i32 unless a dtype is given. */
export function arange(startOrEnd: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, startOrEnd] : [startOrEnd, end];
  if (step === 0) throw new RangeError('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((e - s) / step));
  const dtype = options.dtype ?? 'i32';
  const out = valuesFor(dtype, n);
  for (let i = 0; i < n; i++) out[i] = s + i * step;
  return fromValues(out, dtype, [n]);
}

function randomFill(shape: readonly number[], options: RandomOptions, draw: (g: Generator) => number): Tensor {
  checkShape(shape, 'random');
  const g = options.generator ?? defaultGenerator;
  const dtype = options.dtype ?? 'f32';
  const out = valuesFor(dtype, numel(shape));
  for (let i = 0; i < out.length; i++) out[i] = draw(g);
  return fromValues(out, dtype, shape);
}

/** Standard normal samples. */
export function randn(shape: readonly number[], options: RandomOptions = {}): Tensor {
  return randomFill(shape, options, (g) => g.normal());
}

/** Uniform samples in [0, 1). */
export function rand(shape: readonly number[], options: RandomOptions = {}): Tensor {
  return randomFill(shape, options, (g) => g.uniform());
}

/** Uniform integers in [low, high) as i32. */
export function randint(low: number, high: number, shape: readonly number[], generator: Generator = defaultGenerator): Tensor {
  if (!(high > low)) throw new RangeError(`randint: high (${high}) must be greater than low (${low})`);
  checkShape(shape, 'randint');
  const out = new Int32Array(numel(shape));
  for (let i = 0; i < out.length; i++) out[i] = low + generator.int(high - low);
  return fromArray(out, shape);
}
