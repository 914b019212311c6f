// FP8 in safetensors (F8_E4M3 "fn" and F8_E5M2): decoding by the formats' definitions, encoding
// round to nearest (ties to even), round trips through a file.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { f32ArrayToFp8, fp8ArrayToF32 } from '../src/io/fp8.js';
import { readSafetensorsSync, writeSafetensorsSync } from '../src/io/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'moekit-fp8-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('decoding: known codes of both formats', () => {
  const e4 = fp8ArrayToF32(Uint8Array.from([0x38, 0x7e, 0x01, 0xb8, 0x7f, 0x00, 0x08]), 'F8_E4M3');
  // 1.0, max 448 = 1.75·2^8, smallest subnormal 2^-9, -1.0, NaN, 0, smallest normal 2^-6
  assert.deepEqual(Array.from(e4), [1, 448, 2 ** -9, -1, NaN, 0, 2 ** -6]);
  const e5 = fp8ArrayToF32(Uint8Array.from([0x3c, 0x7b, 0x7c, 0xfc, 0x7d, 0x01]), 'F8_E5M2');
  // 1.0, max 57344 = 1.75·2^15, +inf, -inf, NaN, smallest subnormal 2^-16
  assert.deepEqual(Array.from(e5), [1, 57344, Infinity, -Infinity, NaN, 2 ** -16]);
});

test('encoding: every finite code round-trips; midpoints round to the even code; out of range throws', () => {
  for (const f of ['F8_E4M3', 'F8_E5M2'] as const) {
    const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const values = fp8ArrayToF32(codes, f);
    const finite = [...codes].filter((c) => Number.isFinite(values[c]!) && values[c] !== 0);
    const back = f32ArrayToFp8(
      finite.map((c) => values[c]!),
      f,
    );
    assert.deepEqual(Array.from(back), finite, f);
  }
  // E4M3 between 1 (0x38) and 1.125 (0x39): 1.0625 is the midpoint -> the even code 0x38
  assert.deepEqual(Array.from(f32ArrayToFp8([1.0625, 1.07, 1.19], 'F8_E4M3')), [0x38, 0x39, 0x3a]);
  assert.throws(() => f32ArrayToFp8([500], 'F8_E4M3'), /F8_E4M3: value 500 at index 0 is outside the format's range \+-448/);
});

test('safetensors F8 tensors: written, read back, header dtype kept', () => {
  const file = join(dir, 'fp8.safetensors');
  writeSafetensorsSync(file, {
    w: { dtype: 'F8_E4M3', shape: [2, 2], data: Float32Array.from([1, -0.5, 448, 0.015625]) },
    s: { dtype: 'F32', shape: [1], data: Float32Array.from([0.25]) },
  });
  const r = readSafetensorsSync(file).tensors;
  assert.equal(r.get('w')!.dtype, 'F8_E4M3');
  assert.deepEqual(Array.from(r.get('w')!.data), [1, -0.5, 448, 0.015625]);
});
