import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  bf16ArrayToF32,
  bf16BitsToF32,
  f16ArrayToF32,
  f16BitsToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
  f32ToBf16Bits,
  f32ToF16Bits,
} from '../src/io/index.js';
import { _roundDoubleToBf16Bits, _roundDoubleToF16Bits } from '../src/io/half.js';

const hex = (n: number) => `0x${n.toString(16).padStart(4, '0')}`;
const isF16NaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const isBf16NaN = (h: number) => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;

test('f32ToF16Bits: closed-form values', () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff], // largest finite
    [65519, 0x7bff], // just below the halfway point to 2^16
    [65520, 0x7c00], // halfway: ties to even goes to inf
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -24, 0x0001], // smallest subnormal
    [-(2 ** -24), 0x8001],
    [2 ** -25, 0x0000], // halfway between 0 and 2^-24: ties to even (0)
    [Math.fround(2 ** -25 * (1 + 2 ** -23)), 0x0001], // just above halfway
    [3 * 2 ** -25, 0x0002], // halfway between 1 and 2 subnormal units: to even
    [2 ** -26, 0x0000],
    [-(2 ** -26), 0x8000], // underflow keeps the sign
    [1 + 2 ** -11, 0x3c00], // halfway between 1 and 1+2^-10: to even
    [1 + 3 * 2 ** -11, 0x3c02], // halfway between 0x3c01 and 0x3c02: to even (up)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // above halfway: up
    [2047 * 2 ** -11, 0x3bff], // exactly representable, just below 1
    [2 ** -14 * (1 - 2 ** -12), 0x0400], // rounds up across the subnormal/normal boundary
  ];
  for (const [x, bits] of cases) assert.equal(hex(f32ToF16Bits(x)), hex(bits), `f16(${x})`);
  assert.ok(isF16NaN(f32ToF16Bits(NaN)));
});

test('f16BitsToF32: closed-form values', () => {
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16BitsToF32(0x0400), 2 ** -14);
  assert.equal(f16BitsToF32(0x3555), 0.333251953125);
  assert.equal(f16BitsToF32(0xc000), -2);
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  assert.ok(Number.isNaN(f16BitsToF32(0x7c01)));
});

test('f16 -> f32 -> f16 is the identity for all 65536 non-NaN patterns (scalar and bulk)', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const widened = f16ArrayToF32(all);
  const back = f32ArrayToF16(widened);
  let checked = 0;
  for (let h = 0; h < 65536; h++) {
    if (isF16NaN(h)) {
      assert.ok(Number.isNaN(widened[h]!));
      // NaN stays NaN with its sign; quiet NaNs keep their exact bits.
      assert.ok(isF16NaN(back[h]!) && (back[h]! & 0x8000) === (h & 0x8000));
      if (h & 0x200) assert.equal(back[h], h);
      continue;
    }
    const v = f16BitsToF32(h);
    assert.ok(Object.is(widened[h], v), `bulk widening of ${hex(h)}`);
    if (f32ToF16Bits(v) !== h || back[h] !== h) assert.fail(`round trip of ${hex(h)} gave ${hex(f32ToF16Bits(v))}/${hex(back[h]!)}`);
    checked++;
  }
  assert.equal(checked, 65536 - 2 * 1023);
});

test('f16 rounding at every midpoint between neighbouring values goes to even', () => {
  for (let h = 0; h < 0x7bff; h++) {
    const lo = f16BitsToF32(h);
    const hi = f16BitsToF32(h + 1);
    const mid = (lo + hi) / 2; // exact in f32 (one more bit)
    const even = h % 2 === 0 ? h : h + 1;
    if (f32ToF16Bits(mid) !== even) assert.fail(`midpoint above ${hex(h)}`);
    if (f32ToF16Bits(-mid) !== (even | 0x8000)) assert.fail(`negative midpoint above ${hex(h)}`);
    if (f32ToF16Bits(Math.fround(mid * (1 + 2 ** -20))) !== h + 1) assert.fail(`just above midpoint ${hex(h)}`);
  }
});

test('f32 fast path and exact double path agree on random f32 values', () => {
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  let state = 12345;
  for (let i = 0; i < 200_000; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    bits[0] = state;
    const x = f[0]!;
    if (Number.isNaN(x)) continue;
    if (f32ToF16Bits(x) !== _roundDoubleToF16Bits(x)) assert.fail(`f16 paths disagree on ${x}`);
    if (f32ToBf16Bits(x) !== _roundDoubleToBf16Bits(x)) assert.fail(`bf16 paths disagree on ${x}`);
  }
});

test('doubles are rounded once, not via f32 (no double rounding)', () => {
  // fround(x) = 1 + 2^-11 exactly, a tie that would go down to 1.0; x itself is above the tie.
  const x = 1 + 2 ** -11 + 2 ** -40;
  assert.equal(hex(f32ToF16Bits(x)), '0x3c01');
  assert.equal(hex(f32ArrayToF16(new Float64Array([x]))[0]!), '0x3c01');
  const y = 1 + 2 ** -8 + 2 ** -40;
  assert.equal(hex(f32ToBf16Bits(y)), '0x3f81');
  assert.equal(hex(f32ArrayToBf16(new Float64Array([y]))[0]!), '0x3f81');
});

test('bf16: closed-form values and ties to even', () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [-1, 0xbf80],
    [-0, 0x8000],
    [2, 0x4000],
    [1 + 2 ** -8, 0x3f80], // halfway between 0x3f80 and 0x3f81: to even
    [1 + 3 * 2 ** -8, 0x3f82], // halfway between 0x3f81 and 0x3f82: to even (up)
    [1 + 2 ** -8 + 2 ** -20, 0x3f81],
    [(2 - 2 ** -7) * 2 ** 127, 0x7f7f], // largest finite bf16
    [3.4028234663852886e38, 0x7f80], // largest f32 rounds up to inf
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [2 ** -133, 0x0001], // smallest bf16 subnormal
  ];
  for (const [x, bits] of cases) assert.equal(hex(f32ToBf16Bits(x)), hex(bits), `bf16(${x})`);
  assert.ok(isBf16NaN(f32ToBf16Bits(NaN)));
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0x0001), 2 ** -133);
  assert.equal(bf16BitsToF32(0xff80), -Infinity);
  assert.ok(Number.isNaN(bf16BitsToF32(0x7fc0)));
});

test('bf16 -> f32 -> bf16 is the identity for all non-NaN patterns', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ArrayToBf16(bf16ArrayToF32(all));
  for (let h = 0; h < 65536; h++) {
    if (isBf16NaN(h)) {
      assert.ok(isBf16NaN(back[h]!));
      continue;
    }
    if (back[h] !== h || f32ToBf16Bits(bf16BitsToF32(h)) !== h) assert.fail(`round trip of ${hex(h)}`);
  }
});
