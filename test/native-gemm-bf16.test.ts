// native/gemm/gemm_bf16.c: the bf16 GEMM on every ISA this CPU has (AVX512_BF16's VDPBF16PS
// kernel where present, the widened f32 GEMM otherwise) against an f64 reference of the same
// bf16 inputs, over edge shapes (odd K, partial row groups and column panels, transposes,
// batches with a broadcast operand). Each element is within one bf16 ulp of the exact value.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadNativeAddon, type NativeAddon } from '../src/backend/native/addon.js';
import { onEachIsa } from './helpers/isa.js';
import { narrowToHalf, widenHalfToF32 } from '../src/io/half.js';

const loaded = loadNativeAddon();
const addon = loaded.addon as NativeAddon;
const skip = !loaded.addon
  ? `native addon not available: ${loaded.reason}`
  : typeof addon.matmulBf16 !== 'function'
    ? 'addon built without matmulBf16'
    : false;

function bf16Random(n: number, seed: number): Uint16Array {
  const f = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    f[i] = (s / 2147483648 - 1) * 4;
  }
  return narrowToHalf(f, 'bf16');
}

interface Case {
  batch: number;
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
  sa: number;
  sb: number;
}

const CASES: Case[] = [
  { batch: 1, m: 1, k: 1, n: 1, transA: false, transB: false, sa: 0, sb: 0 },
  { batch: 1, m: 13, k: 37, n: 45, transA: false, transB: false, sa: 0, sb: 0 },
  { batch: 1, m: 64, k: 256, n: 96, transA: false, transB: true, sa: 0, sb: 0 },
  { batch: 1, m: 9, k: 33, n: 70, transA: true, transB: false, sa: 0, sb: 0 },
  { batch: 1, m: 17, k: 5, n: 33, transA: true, transB: true, sa: 0, sb: 0 },
  { batch: 3, m: 7, k: 19, n: 40, transA: false, transB: false, sa: 7 * 19, sb: 0 },
  { batch: 1, m: 5, k: 0, n: 4, transA: false, transB: false, sa: 0, sb: 0 },
];

function check(c: Case): void {
  const aLen = (c.batch - 1) * c.sa + c.m * c.k;
  const bLen = (c.batch - 1) * c.sb + c.k * c.n;
  const a = bf16Random(aLen, 1 + c.m * 7 + c.k);
  const b = bf16Random(bLen, 3 + c.n * 5 + c.k);
  const out = new Uint16Array(c.batch * c.m * c.n).fill(0x7fc0); // NaN: every element must be written
  addon.matmulBf16!(a, b, out, c.batch, c.m, c.k, c.n, c.transA, c.transB, c.sa, c.sb);
  const av = widenHalfToF32(a, 'bf16');
  const bv = widenHalfToF32(b, 'bf16');
  const got = widenHalfToF32(out, 'bf16');
  for (let bt = 0; bt < c.batch; bt++) {
    for (let i = 0; i < c.m; i++) {
      for (let j = 0; j < c.n; j++) {
        let s = 0;
        let mag = 0;
        for (let p = 0; p < c.k; p++) {
          const x = av[bt * c.sa + (c.transA ? p * c.m + i : i * c.k + p)]!;
          const y = bv[bt * c.sb + (c.transB ? j * c.k + p : p * c.n + j)]!;
          s += x * y;
          mag += Math.abs(x * y);
        }
        const g = got[(bt * c.m + i) * c.n + j]!;
        // one bf16 ulp of the value, plus f32 accumulation error over k terms
        const tol = Math.abs(s) * 2 ** -7 + mag * c.k * 2 ** -24;
        assert.ok(Math.abs(g - s) <= tol, `${JSON.stringify(c)} [${bt},${i},${j}]: ${g} vs ${s} (tol ${tol})`);
      }
    }
  }
}

test('matmulBf16 on every ISA this CPU has: edge shapes against f64', { skip }, () => {
  onEachIsa(addon, () => {
    for (const c of CASES) check(c);
  });
});

test('matmulBf16 rejects arrays that are too short and non-Uint16 arrays with one line', { skip }, () => {
  const a = new Uint16Array(6);
  assert.throws(() => addon.matmulBf16!(a, a, new Uint16Array(3), 1, 2, 3, 2, false, false, 0, 0), /matmulBf16: a, b or out is too short/);
  assert.throws(
    () => addon.matmulBf16!(new Float32Array(6) as never, a, new Uint16Array(4), 1, 2, 3, 2, false, false, 0, 0),
    /matmulBf16: a, b and out must be Uint16Arrays/,
  );
});

test('native halfToF32 / f32ToHalf equal the engine casts of src/io/half.ts bit for bit on every ISA (all 16-bit patterns; 200k f32 patterns)', {
  skip: skip || (typeof addon.halfToF32 !== 'function' && 'no conversions'),
}, () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const bits = new Uint32Array(200000);
  let s = 99;
  for (let i = 0; i < bits.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    bits[i] = s;
  }
  bits.set([0x7f800001, 0xffc00000, 0x7f7fffff, 0x477fefff, 0x477ff000, 0x33800000, 0x00000001, 0x80000000], 0);
  const f = new Float32Array(bits.buffer);
  onEachIsa(addon, (isa) => {
    for (const fmt of ['bf16', 'f16'] as const) {
      const wide = new Float32Array(65536);
      addon.halfToF32!(all, wide, fmt === 'f16');
      assert.deepEqual(new Uint32Array(wide.buffer), new Uint32Array(widenHalfToF32(all, fmt).buffer), `${isa} ${fmt} widening`);
      const narrow = new Uint16Array(f.length);
      addon.f32ToHalf!(f, narrow, fmt === 'f16');
      assert.deepEqual(narrow, narrowToHalf(f, fmt), `${isa} ${fmt} narrowing`);
    }
  });
});

test("native bf16 conversions at every length 0..40, starting one element in: the vector loops' tails, NaN payloads, ties, denormals; nothing written past the end", {
  skip: skip || (typeof addon.halfToF32 !== 'function' && 'no conversions'),
}, () => {
  // NaN payloads of both signs and quiet / signalling, infinities, max finite (rounds to inf), denormals, ties to even and just off them
  const special = [
    0x7f800001, 0xff800001, 0x7fc12345, 0xffa5a5a5, 0x7fffffff, 0xffffffff, 0x7f800000, 0xff800000, 0x7f7fffff, 0x00000001, 0x807fffff,
    0x00008000, 0x00018000, 0x3f808000, 0x3f818000, 0x3f808001, 0xbf817fff, 0x80000000, 0,
  ];
  const bits = new Uint32Array(41 + 1);
  for (let i = 0; i < bits.length; i++) bits[i] = special[i % special.length]! ^ (i >= special.length ? 0x00010000 * i : 0);
  const f = new Float32Array(bits.buffer);
  const h = new Uint16Array(bits.length).map((_, i) => (bits[i]! >>> 16) ^ (i & 1));
  onEachIsa(addon, (isa) => {
    for (let n = 0; n <= 40; n++) {
      const src = f.subarray(1, 1 + n); // one element in: not on a vector boundary
      const narrow = new Uint16Array(n + 1).fill(0xabcd);
      addon.f32ToHalf!(src, narrow, false);
      assert.deepEqual(narrow.subarray(0, n), narrowToHalf(src, 'bf16'), `${isa} narrowing, length ${n}`);
      assert.equal(narrow[n], 0xabcd, `${isa} narrowing wrote past length ${n}`);
      const hs = h.subarray(1, 1 + n);
      const wide = new Float32Array(n + 1).fill(-7);
      addon.halfToF32!(hs, wide, false);
      assert.deepEqual(
        new Uint32Array(wide.buffer, 0, n),
        new Uint32Array(widenHalfToF32(hs, 'bf16').buffer),
        `${isa} widening, length ${n}`,
      );
      assert.equal(wide[n], -7, `${isa} widening wrote past length ${n}`);
    }
  });
});

test('native f32ToBf16ScaledRows equals each f32 product rounded by the engine cast, bit for bit on every ISA (row lengths 1..37, specials); bad shapes are one line', {
  skip: skip || (typeof addon.f32ToBf16ScaledRows !== 'function' && 'no scaled conversion'),
}, () => {
  const bits = new Uint32Array(37 * 9);
  let s = 7;
  for (let i = 0; i < bits.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    bits[i] = i % 11 === 3 ? 0x7fc00001 : i % 13 === 5 ? 0x3f808000 : s; // a NaN, a tie
  }
  const f = new Float32Array(bits.buffer);
  onEachIsa(addon, (isa) => {
    for (const len of [1, 2, 15, 16, 17, 37]) {
      const rows = Math.floor(f.length / len) - 1;
      const src = f.subarray(1, 1 + rows * len); // one element in: off the vector boundary
      const scale = Float32Array.from({ length: rows }, (_, r) => (r % 5 === 2 ? 0 : 0.75 + r / 7));
      const want = new Float32Array(src.length);
      for (let q = 0; q < src.length; q++) want[q] = src[q]! * scale[Math.floor(q / len)]!;
      const out = new Uint16Array(src.length + 1).fill(0xabcd);
      addon.f32ToBf16ScaledRows!(src, scale, out);
      assert.deepEqual(out.subarray(0, src.length), narrowToHalf(want, 'bf16'), `${isa} rows of ${len}`);
      assert.equal(out[src.length], 0xabcd, `${isa} wrote past the end`);
    }
  });
  assert.throws(
    () => addon.f32ToBf16ScaledRows!(new Float32Array(10), new Float32Array(3), new Uint16Array(10)),
    /^RangeError: f32ToBf16ScaledRows: src has 10 elements, not whole rows of 3 row scales$/,
  );
  assert.throws(() => addon.f32ToBf16ScaledRows!(new Float32Array(4), new Float32Array(2), new Uint16Array(3)), /out has 3 elements/);
});
