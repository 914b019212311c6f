// IEEE 754 binary16 (f16) and bfloat16 (bf16) <-> float conversions.
//
// Narrowing rounds to nearest, ties to even, with overflow to ±inf, gradual
// underflow to subnormals, and NaN kept NaN (quiet, top payload bits kept).
// Widening is exact. Values are passed around as their 16-bit patterns.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

function f32FromBits(bits: number): number {
  u32[0] = bits;
  return f32[0]!;
}

// ---------------------------------------------------------------- widening

/** f16 bit pattern -> f32 bit pattern (exact). */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf / NaN
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // 112 = 127 - 15
  if (mant === 0) return sign >>> 0; // ±0
  // Subnormal f16 is a normal f32: shift the mantissa up until the implicit bit appears.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

let f16Table: Uint32Array | undefined;
function f16ToF32Table(): Uint32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

/** Value of an f16 bit pattern (every f16 is exactly representable as f32). */
export function f16BitsToF32(h: number): number {
  return f32FromBits(f16BitsToF32Bits(h & 0xffff));
}

/** Value of a bf16 bit pattern: bf16 is the top half of an f32. */
export function bf16BitsToF32(b: number): number {
  return f32FromBits(((b & 0xffff) << 16) >>> 0);
}

// ---------------------------------------------------------------- narrowing

/** Round-half-to-even of a non-negative double below 2^52. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f; // exact for v < 2^52
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Round a finite, non-NaN double straight to a 16-bit float format with
 * `mantBits` fraction bits and exponent `bias`. Working on the double directly
 * avoids double rounding (double -> f32 -> f16) for Float64Array inputs.
 */
function roundDoubleTo16(x: number, mantBits: number, bias: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  const maxExp = bias; // largest unbiased exponent of a finite value
  // Halfway between the largest finite value and 2^(maxExp+1): ties go to inf
  // because the largest finite value has an odd (all ones) mantissa.
  const overflow = (2 - 2 ** -(mantBits + 1)) * 2 ** maxExp;
  if (a >= overflow) return sign | (((2 * bias + 1) << mantBits) & 0x7fff);
  const minNormExp = 1 - bias;
  if (a < 2 ** minNormExp) {
    // Subnormal range: units of 2^(minNormExp - mantBits). A result of
    // 2^mantBits is the smallest normal, whose bit pattern is the same number.
    return sign | roundHalfEven(a * 2 ** (mantBits - minNormExp));
  }
  let e = Math.floor(Math.log2(a)); // may be off by one near powers of two
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const m = roundHalfEven(a * 2 ** (mantBits - e)); // in [2^mantBits, 2^(mantBits+1)]
  // Adding (rather than OR-ing) lets a rounded-up mantissa carry into the exponent.
  return sign | (((e + bias) << mantBits) + m - (1 << mantBits));
}

/** f32 bit pattern -> f16 bit pattern, round to nearest even. */
function f32BitsToF16Bits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // f16 subnormal (or zero): value in units of 2^-24 is mant * 2^(e - 14).
    if (e < -10) return sign; // below half the smallest subnormal
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // may carry up to inf
  return sign | h;
}

/** Non-NaN f32 bit pattern -> bf16 bit pattern, round to nearest even (overflow carries to inf). */
function roundF32BitsToBf16Bits(b: number): number {
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f32 bit pattern -> bf16 bit pattern, round to nearest even. */
function f32BitsToBf16Bits(b: number): number {
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40; // NaN: keep it quiet
  return roundF32BitsToBf16Bits(b);
}

/**
 * Round a number to the nearest f16 (ties to even) and return its bit pattern.
 * Any double is rounded directly, without an intermediate f32 rounding.
 */
export function f32ToF16Bits(x: number): number {
  if (Number.isNaN(x) || Math.fround(x) === x) return f32BitsToF16Bits(f32Bits(x));
  return roundDoubleTo16(x, 10, 15);
}

/** Round a number to the nearest bf16 (ties to even) and return its bit pattern. */
export function f32ToBf16Bits(x: number): number {
  if (Number.isNaN(x) || Math.fround(x) === x) return f32BitsToBf16Bits(f32Bits(x));
  return roundDoubleTo16(x, 7, 127);
}

// ---------------------------------------------------------------- bulk

type FloatSource = Float32Array | Float64Array | ArrayLike<number>;

function bitsView(src: Float32Array): Uint32Array {
  return new Uint32Array(src.buffer, src.byteOffset, src.length);
}

/** Widen f16 bit patterns to a Float32Array (NaN payloads preserved). */
export function f16ArrayToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  const table = f16ToF32Table();
  const outBits = bitsView(out);
  for (let i = 0; i < src.length; i++) outBits[i] = table[src[i]!]!;
  return out;
}

/** Widen bf16 bit patterns to a Float32Array (NaN payloads preserved). */
export function bf16ArrayToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  const outBits = bitsView(out);
  for (let i = 0; i < src.length; i++) outBits[i] = (src[i]! << 16) >>> 0;
  return out;
}

/** Narrow numbers to f16 bit patterns, round to nearest even. */
export function f32ArrayToF16(src: FloatSource, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (src instanceof Float32Array) {
    const bits = bitsView(src);
    for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]!);
  } else {
    for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]!);
  }
  return out;
}

/** Narrow numbers to bf16 bit patterns, round to nearest even. */
export function f32ArrayToBf16(src: FloatSource, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (src instanceof Float32Array) {
    const bits = bitsView(src);
    for (let i = 0; i < bits.length; i++) out[i] = f32BitsToBf16Bits(bits[i]!);
  } else {
    for (let i = 0; i < src.length; i++) out[i] = f32ToBf16Bits(src[i]!);
  }
  return out;
}

/** @internal exposed for tests: the exact double-based rounding path. */
export const _roundDoubleToF16Bits = (x: number): number => roundDoubleTo16(x, 10, 15);
/** @internal exposed for tests: the exact double-based rounding path. */
export const _roundDoubleToBf16Bits = (x: number): number => roundDoubleTo16(x, 7, 127);

// ---------------------------------------------------------------- engine (PyTorch's CPU casts)
//
// Tensor casts follow what `tensor.to(torch.bfloat16 / torch.float16)` does on a CPU, bit for
// bit (checked against PyTorch 1.13 and 2.x): a double is first rounded to f32 (so
// f64 -> bf16 rounds twice, as PyTorch does), NaN becomes 0xffff in bf16 and sign|0x7e00 in
// f16, and widening f16 quiets a signalling NaN. The file readers above keep NaN payloads.

/** f16 bits -> f32 bits as PyTorch widens them (NaN quieted, payload kept). */
function f16BitsToF32BitsQuiet(h: number): number {
  const b = f16BitsToF32Bits(h);
  return (b & 0x7fffffff) > 0x7f800000 ? (b | 0x400000) >>> 0 : b;
}

let f16QuietTable: Uint32Array | undefined;

/** Widen bf16 or f16 bit patterns to f32 values (`out` may be given). */
export function widenHalfToF32(src: Uint16Array, format: 'bf16' | 'f16', out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (format === 'bf16') return bf16ArrayToF32(src, out);
  if (!f16QuietTable) {
    f16QuietTable = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16QuietTable[h] = f16BitsToF32BitsQuiet(h);
  }
  const table = f16QuietTable;
  const outBits = bitsView(out);
  for (let i = 0; i < src.length; i++) outBits[i] = table[src[i]!]!;
  return out;
}

/** f32 bits -> bf16 bits as PyTorch casts (RNE; every NaN -> 0xffff). */
export function f32BitsToBf16BitsTorch(b: number): number {
  return (b & 0x7fffffff) > 0x7f800000 ? 0xffff : roundF32BitsToBf16Bits(b);
}

/** f32 bits -> f16 bits as PyTorch casts (RNE; NaN -> sign|0x7e00). */
export function f32BitsToF16BitsTorch(b: number): number {
  return (b & 0x7fffffff) > 0x7f800000 ? ((b >>> 16) & 0x8000) | 0x7e00 : f32BitsToF16Bits(b);
}

/** Narrow f32 values (or doubles, through f32 as PyTorch does) to bf16 / f16 bit patterns. */
export function narrowToHalf(
  src: Float32Array | Float64Array | Int32Array,
  format: 'bf16' | 'f16',
  out: Uint16Array = new Uint16Array(src.length),
): Uint16Array {
  const f = src instanceof Float32Array ? src : Float32Array.from(src);
  const bits = bitsView(f);
  if (format === 'bf16') for (let i = 0; i < bits.length; i++) out[i] = f32BitsToBf16BitsTorch(bits[i]!);
  else for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16BitsTorch(bits[i]!);
  return out;
}
