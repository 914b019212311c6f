// The engine's bf16 / f16 casts against closed forms of the formats: exhaustive over every
// 16-bit pattern when widening, and round to nearest even (ties, subnormals, overflow, NaN)
// when narrowing, with PyTorch's CPU choices for NaN and doubles (src/io/half.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { narrowToHalf, widenHalfToF32 } from '../src/io/half.js';

interface Format {
  name: 'bf16' | 'f16';
  mant: number;
  bias: number;
  /** NaN as PyTorch casts one: a function of the input's sign bit. */
  nan: (sign: number) => number;
}
const FORMATS: Format[] = [
  { name: 'bf16', mant: 7, bias: 127, nan: () => 0xffff },
  { name: 'f16', mant: 10, bias: 15, nan: (s) => (s << 15) | 0x7e00 },
];

/** The value a bit pattern encodes, from the format's definition. */
function closedForm(f: Format, h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const expBits = 15 - f.mant;
  const e = (h >>> f.mant) & ((1 << expBits) - 1);
  const m = h & ((1 << f.mant) - 1);
  if (e === (1 << expBits) - 1) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** (1 - f.bias - f.mant);
  return sign * (1 + m / 2 ** f.mant) * 2 ** (e - f.bias);
}

const f32Bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0]!;

for (const f of FORMATS) {
  describe(`${f.name} conversions`, () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const wide = widenHalfToF32(all, f.name);
    const wideBits = new Uint32Array(wide.buffer);

    test('widening: all 65536 patterns give the closed-form value (NaN stays NaN, quiet, sign kept)', () => {
      for (let h = 0; h < 65536; h++) {
        const want = closedForm(f, h);
        if (Number.isNaN(want)) {
          assert.ok(Number.isNaN(wide[h]), `0x${h.toString(16)}`);
          assert.equal(wideBits[h]! >>> 31, h >>> 15, `sign of NaN 0x${h.toString(16)}`);
          assert.ok((wideBits[h]! & 0x400000) !== 0 || f.name === 'bf16', `quiet NaN for 0x${h.toString(16)}`);
        } else {
          assert.ok(Object.is(wide[h], want), `0x${h.toString(16)}: got ${wide[h]}, want ${want}`);
        }
      }
    });

    // every finite non-negative value in order, to find neighbours of any x
    const finite: { v: number; h: number }[] = [];
    for (let h = 0; h < 0x8000; h++) if (Number.isFinite(closedForm(f, h))) finite.push({ v: closedForm(f, h), h });
    const maxFinite = finite[finite.length - 1]!.v;
    const ulpAtMax = 2 ** (f.bias - f.mant);

    /** Round-to-nearest-even by the definition: nearest representable, ties to the even pattern. */
    function rne(x: number): number {
      const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
      const a = Math.abs(x);
      if (a >= maxFinite + ulpAtMax / 2) return sign | (0x7fff & ~((1 << f.mant) - 1)); // inf
      let lo = 0;
      let hi = finite.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (finite[mid]!.v <= a) lo = mid;
        else hi = mid;
      }
      const below = finite[lo]!;
      const above = finite[hi]!;
      if (a === below.v) return sign | below.h;
      const dl = a - below.v;
      const du = above.v - a;
      const pick = dl < du ? below : du < dl ? above : below.h % 2 === 0 ? below : above;
      return sign | pick.h;
    }

    test('narrowing f32: exact values, midpoints (ties to even), just off the midpoints, subnormals, overflow', () => {
      const xs: number[] = [];
      for (let i = 0; i + 1 < finite.length; i += 7) {
        const a = finite[i]!.v;
        const b = finite[i + 1]!.v;
        const mid = (a + b) / 2; // exact in f32 (one more bit than the format)
        for (const v of [a, mid, Math.fround(mid * (1 + 2 ** -22)), Math.fround(mid * (1 - 2 ** -22))]) xs.push(v, -v);
      }
      xs.push(maxFinite + ulpAtMax / 2, maxFinite + ulpAtMax / 4, 1e-45, -1e-45, 0, -0, Infinity, -Infinity);
      const src = Float32Array.from(xs);
      const got = narrowToHalf(src, f.name);
      src.forEach((x, i) => {
        assert.equal(got[i], rne(x), `${f.name}(${x}) = 0x${got[i]!.toString(16)}, want 0x${rne(x).toString(16)}`);
      });
    });

    test('narrowing: 20000 random f32 bit patterns (every exponent) against the definition', () => {
      const bits = new Uint32Array(20000);
      let s = 12345;
      for (let i = 0; i < bits.length; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        bits[i] = (s ^ (s << 13) ^ Math.imul(i, 2654435761)) >>> 0;
      }
      const src = new Float32Array(bits.buffer);
      const got = narrowToHalf(src, f.name);
      src.forEach((x, i) => {
        const want = Number.isNaN(x) ? f.nan(bits[i]! >>> 31) : rne(x);
        assert.equal(got[i], want, `bits 0x${bits[i]!.toString(16)}`);
      });
    });

    test('NaN narrows to PyTorch CPU NaN; a double rounds through f32 first (as PyTorch casts f64)', () => {
      const nan = new Float32Array(new Uint32Array([0x7f800001, 0xffc12345, 0x7fffffff]).buffer);
      assert.deepEqual([...narrowToHalf(nan, f.name)], [f.nan(0), f.nan(1), f.nan(0)]);
      // 1 + half an ulp + a hair: direct rounding would go up; through f32 the hair is lost and the tie goes to even (1)
      const x = 1 + 2 ** -(f.mant + 1) + 2 ** -40;
      assert.equal(narrowToHalf(Float64Array.of(x), f.name)[0], rne(1));
      assert.equal(f32Bits(Math.fround(x)), f32Bits(1 + 2 ** -(f.mant + 1)));
    });
  });
}
