// Dtypes and storage shared by every backend.
import { envSwitch } from '../env.js';
import { noteAllocated, takeIdle } from './storage-pool.js';

/**
 * Element types a tensor can hold. f64 exists for gradient checks and exact references;
 * bf16 / f16 are stored as 16-bit patterns (BF16Array / F16Array) and computed in f32
 * (src/backend/half-precision.ts).
 */
export type DType = 'f32' | 'f64' | 'i32' | 'bf16' | 'f16';
export type FloatDType = 'f32' | 'f64' | 'bf16' | 'f16';
export type HalfDType = 'bf16' | 'f16';

/** bfloat16 elements as their bit patterns (the type tells them apart from f16). */
export class BF16Array extends Uint16Array {}
/** IEEE binary16 elements as their bit patterns. */
export class F16Array extends Uint16Array {}

export type HalfArray = BF16Array | F16Array;
export type TypedArray = Float32Array | Float64Array | Int32Array | HalfArray;

/**
 * What a backend keeps a tensor's elements in. The CPU backends use typed arrays in JS
 * memory (the native addon reads and writes them in place, zero copy). A device backend
 * (WebGPU) will add its own buffer type to this union; code above the backend never looks
 * inside a Storage except through `Backend.readSync` / `Backend.read`.
 */
export type Storage = TypedArray;

export function isFloatDType(d: DType): d is FloatDType {
  return d === 'f32' || d === 'f64' || d === 'bf16' || d === 'f16';
}

export function isHalfDType(d: DType): d is HalfDType {
  return d === 'bf16' || d === 'f16';
}

export function isHalfArray(x: unknown): x is HalfArray {
  return x instanceof BF16Array || x instanceof F16Array;
}

/** Bytes one element of `dtype` takes. */
export function bytesPerElement(dtype: DType): number {
  return dtype === 'f64' ? 8 : isHalfDType(dtype) ? 2 : 4;
}

export function typedArrayFor(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'f32':
      return takeIdle(0, n)?.fill(0) ?? noteAllocated(new Float32Array(n));
    case 'f64':
      return takeIdle(1, n)?.fill(0) ?? noteAllocated(new Float64Array(n));
    case 'i32':
      return takeIdle(2, n)?.fill(0) ?? noteAllocated(new Int32Array(n));
    case 'bf16':
      return new BF16Array(n);
    case 'f16':
      return new F16Array(n);
  }
}

export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Float64Array) return 'f64';
  if (a instanceof BF16Array) return 'bf16';
  if (a instanceof F16Array) return 'f16';
  if (a instanceof Int32Array) return 'i32';
  throw new TypeError(
    `storage: ${(a as object).constructor.name} is not a tensor storage (Float32Array, Float64Array, Int32Array, BF16Array or F16Array)`,
  );
}

/**
 * Result dtype of a binary op, as PyTorch promotes: f64 beats f32 beats bf16 / f16 beats
 * i32; bf16 with f16 gives f32.
 */
export function promoteDTypes(a: DType, b: DType): DType {
  if (a === b) return a;
  if (a === 'f64' || b === 'f64') return 'f64';
  if (a === 'f32' || b === 'f32') return 'f32';
  if (isHalfDType(a) && isHalfDType(b)) return 'f32';
  if (isHalfDType(a)) return a;
  if (isHalfDType(b)) return b;
  return 'i32';
}

/** A zeroed array of the same element type as `like`. */
export function arrayLike(like: TypedArray, n: number): TypedArray {
  return typedArrayFor(dtypeOfArray(like), n);
}

/** A Float32Array or Float64Array (the storages float kernels take). */
export function isFloatArray(x: unknown): x is Float32Array | Float64Array {
  return x instanceof Float32Array || x instanceof Float64Array;
}

/** A zeroed float array: f64 when `like` is f64, else f32 (also for bf16 / f16: their f32 compute type). */
export function floatArrayLike(like: TypedArray, n: number): Float32Array | Float64Array {
  return typedArrayFor(like instanceof Float64Array ? 'f64' : 'f32', n) as Float32Array | Float64Array;
}

// read on first use, so that a bad value is reported as a one-line error, not at import
let poisonUninitialized: boolean | undefined;

/**
 * A float array like `like` whose contents are ARBITRARY (not zeroed): only for outputs a
 * kernel overwrites entirely. Skips the zero fill of `new Float32Array(n)`, which costs a
 * full extra pass over large outputs (olmoe-like weight gradients: 1.6 GB per step).
 * MOEKIT_POISON_UNINITIALIZED=1 fills them with NaN instead (tests: a kernel that misses an
 * element then shows up).
 */
export function uninitializedFloatArrayLike(like: TypedArray, n: number): Float32Array | Float64Array {
  const f64 = like instanceof Float64Array;
  let a = takeIdle(f64 ? 1 : 0, n) as Float32Array | Float64Array | undefined; // a storage a tidy scope gave back
  if (!a) {
    if (typeof Buffer === 'undefined') return f64 ? new Float64Array(n) : new Float32Array(n); // a browser: zeroed
    const buf = Buffer.allocUnsafeSlow(n * (f64 ? 8 : 4));
    a = noteAllocated(f64 ? new Float64Array(buf.buffer, buf.byteOffset, n) : new Float32Array(buf.buffer, buf.byteOffset, n));
  }
  poisonUninitialized ??= envSwitch('MOEKIT_POISON_UNINITIALIZED', false);
  if (poisonUninitialized) a.fill(NaN);
  return a;
}

/** Row-major strides (in elements) of a contiguous tensor of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}
