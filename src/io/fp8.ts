// 8-bit floats as safetensors stores them (OCP FP8): F8_E4M3 is the "fn" variant (bias 7, no
// infinities, S.1111.111 = NaN, max 448), F8_E5M2 is IEEE-like (bias 15, infinities, max 57344).
// Decoding goes through a 256-entry table; encoding rounds to the nearest value (ties to an
// even code), and a finite value beyond the format's largest is an error, not a silent NaN.

export type Fp8Format = 'F8_E4M3' | 'F8_E5M2';

function decodeCode(code: number, format: Fp8Format): number {
  const sign = code & 0x80 ? -1 : 1;
  if (format === 'F8_E4M3') {
    const e = (code >> 3) & 0xf;
    const m = code & 7;
    if (e === 15 && m === 7) return NaN;
    return sign * (e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
  }
  const e = (code >> 2) & 0x1f;
  const m = code & 3;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (e === 0 ? (m / 4) * 2 ** -14 : (1 + m / 4) * 2 ** (e - 15));
}

const TABLES = new Map<Fp8Format, Float32Array>();
function table(format: Fp8Format): Float32Array {
  let t = TABLES.get(format);
  if (!t) {
    t = Float32Array.from({ length: 256 }, (_, c) => decodeCode(c, format));
    TABLES.set(format, t);
  }
  return t;
}

export function fp8ArrayToF32(bits: Uint8Array, format: Fp8Format, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  const t = table(format);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]!]!;
  return out;
}

/** Non-negative finite codes in increasing value (codes 0x00..0x7E / 0x7B are already increasing). */
function positiveCodes(format: Fp8Format): number[] {
  const t = table(format);
  const codes: number[] = [];
  for (let c = 0; c < 0x80; c++) if (Number.isFinite(t[c]!)) codes.push(c);
  return codes;
}

export function f32ArrayToFp8(src: ArrayLike<number>, format: Fp8Format, out: Uint8Array = new Uint8Array(src.length)): Uint8Array {
  const t = table(format);
  const codes = positiveCodes(format);
  const max = t[codes[codes.length - 1]!]!;
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    if (Number.isNaN(v)) {
      out[i] = 0x7f;
      continue;
    }
    const a = Math.abs(v);
    if (a > max) {
      if (a === Infinity && format === 'F8_E5M2') {
        out[i] = v < 0 ? 0xfc : 0x7c;
        continue;
      }
      throw new RangeError(`${format}: value ${v} at index ${i} is outside the format's range +-${max}`);
    }
    // binary search for the first code whose value is >= a
    let lo = 0;
    let hi = codes.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (t[codes[mid]!]! < a) lo = mid + 1;
      else hi = mid;
    }
    let code = codes[lo]!;
    if (lo > 0) {
      const below = codes[lo - 1]!;
      const dUp = t[code]! - a;
      const dDown = a - t[below]!;
      if (dDown < dUp || (dDown === dUp && (below & 1) === 0)) code = below;
    }
    out[i] = code | (v < 0 || Object.is(v, -0) ? 0x80 : 0);
  }
  return out;
}
