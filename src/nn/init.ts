// Weight initialisers (PyTorch's torch.nn.init), in place, seeded through a Generator.
//
// "In place" means the tensor object keeps its identity (optimisers and modules holding it
// stay valid). On the CPU backends the values are written straight into the storage; a
// device backend's tensor gets a fresh storage instead.
import type { TypedArray } from '../backend/types.js';
import { isFloatDType, isHalfDType, typedArrayFor } from '../backend/types.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { shapeToString } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** Fill `t` element by element from `draw` (row-major order, so a seed fixes every value). */
function fill<T extends Tensor>(t: T, op: string, draw: () => number): T {
  if (!isFloatDType(t.dtype)) throw new TypeError(`${op}: tensor must be floating (dtype is ${t.dtype})`);
  // a host-array storage (CPU backends) is written in place; a device storage (webgpu),
  // which cannot be read synchronously, gets a fresh one: every element is overwritten
  // (bf16 / f16 storages hold bit patterns: their values are drawn in f32 and rounded once)
  const half = isHalfDType(t.dtype);
  const inPlace = ArrayBuffer.isView(t.storage) && !half;
  const out: TypedArray = inPlace ? t.storage : typedArrayFor(half ? 'f32' : t.dtype, t.size);
  for (let i = 0; i < out.length; i++) out[i] = draw();
  if (!inPlace) t.storage = half ? t.backend.cast(t.backend.fromArray(out), t.dtype) : t.backend.fromArray(out);
  return t;
}

function requireFinite(op: string, name: string, v: number): void {
  if (!Number.isFinite(v)) throw new RangeError(`${op}: ${name} must be a finite number (got ${v})`);
}

export function zeros_<T extends Tensor>(t: T): T {
  return fill(t, 'zeros_', () => 0);
}

export function ones_<T extends Tensor>(t: T): T {
  return fill(t, 'ones_', () => 1);
}

export function constant_<T extends Tensor>(t: T, value: number): T {
  return fill(t, 'constant_', () => value);
}

/** Uniform in [a, b). */
export function uniform_<T extends Tensor>(t: T, a = 0, b = 1, gen: Generator = defaultGenerator): T {
  requireFinite('uniform_', 'a', a);
  requireFinite('uniform_', 'b', b);
  if (!(b >= a)) throw new RangeError(`uniform_: b (${b}) must be >= a (${a})`);
  return fill(t, 'uniform_', () => a + (b - a) * gen.uniform());
}

export function normal_<T extends Tensor>(t: T, mean = 0, std = 1, gen: Generator = defaultGenerator): T {
  requireFinite('normal_', 'mean', mean);
  if (!(std >= 0 && Number.isFinite(std))) throw new RangeError(`normal_: std must be a finite number >= 0 (got ${std})`);
  return fill(t, 'normal_', () => mean + std * gen.normal());
}

/**
 * N(mean, std²) truncated to [a, b] (absolute bounds, as PyTorch's trunc_normal_ whose
 * defaults are a=-2, b=2). Method: rejection — a draw outside [a, b] is redrawn, which gives
 * the exact truncated distribution. [a, b] must keep at least ~1e-4 of the mass (|a|, |b| of
 * a few std) or the draw fails loudly instead of looping.
 */
export function truncNormal_<T extends Tensor>(t: T, mean = 0, std = 1, a = -2, b = 2, gen: Generator = defaultGenerator): T {
  requireFinite('truncNormal_', 'mean', mean);
  if (!(std > 0 && Number.isFinite(std))) throw new RangeError(`truncNormal_: std must be a finite number > 0 (got ${std})`);
  if (!(a < b)) throw new RangeError(`truncNormal_: a (${a}) must be less than b (${b})`);
  const maxTries = 100_000;
  return fill(t, 'truncNormal_', () => {
    for (let i = 0; i < maxTries; i++) {
      const v = mean + std * gen.normal();
      if (v >= a && v <= b) return v;
    }
    throw new RangeError(`truncNormal_: [${a}, ${b}] holds almost no mass of N(${mean}, ${std}²); widen the bounds`);
  });
}

/** fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field (PyTorch's rule). */
export function calculateFans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) {
    throw new RangeError(`calculateFans: fan in and fan out need a tensor with at least 2 dims (got shape ${shapeToString(shape)})`);
  }
  const receptive = shape.slice(2).reduce((p, d) => p * d, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

export const fanIn = (shape: readonly number[]): number => calculateFans(shape).fanIn;
export const fanOut = (shape: readonly number[]): number => calculateFans(shape).fanOut;

/** Gain of leaky_relu with negative slope a: sqrt(2 / (1 + a²)). */
export function leakyReluGain(a: number): number {
  return Math.sqrt(2 / (1 + a * a));
}

/** The kaimingUniform_ bound: gain * sqrt(3 / fanIn). */
export function kaimingUniformBound(fanInValue: number, a = Math.sqrt(5)): number {
  return leakyReluGain(a) * Math.sqrt(3 / fanInValue);
}

/**
 * Kaiming (He) uniform, fan-in mode, leaky_relu gain: U(-bound, bound) with
 * bound = sqrt(2/(1+a²)) * sqrt(3/fan_in). a = sqrt(5) is PyTorch's default Linear init
 * (bound = 1/sqrt(fan_in)).
 */
export function kaimingUniform_<T extends Tensor>(t: T, a = Math.sqrt(5), gen: Generator = defaultGenerator): T {
  const bound = kaimingUniformBound(fanIn(t.shape), a);
  return uniform_(t, -bound, bound, gen);
}
