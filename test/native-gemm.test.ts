// The native GEMM against a naive float64 triple loop: every ISA the CPU has,
// all transpose combinations, edge shapes around the micro-kernel tiles and cache
// blocks, skinny shapes (the direct path), batches with broadcast and gapped strides,
// accumulate, determinism across thread counts, and bad arguments.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

import { loadNativeAddon, type FloatArray, type NativeAddon, type NativeIsa } from '../src/backend/native/addon.js';
import { isasFromCurrent } from './helpers/isa.js';

const loaded = loadNativeAddon();
const skip = loaded.addon ? false : `native addon not available: ${loaded.reason}`;
const addon = loaded.addon as NativeAddon;

/** Deterministic values in [-1, 1). */
function fill(arr: FloatArray, seed: number): FloatArray {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < arr.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    arr[i] = s / 2147483648 - 1;
  }
  return arr;
}

interface Case {
  batch: number;
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
  sa: number; // a batch stride
  sb: number; // b batch stride
  accumulate: boolean;
}

/** Naive reference in float64 of what matmul must produce. */
function reference(c: Case, a: FloatArray, b: FloatArray, out0: FloatArray): Float64Array {
  const { batch, m, k, n, transA, transB, sa, sb } = c;
  const r = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    const ao = bi * sa;
    const bo = bi * sb;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[ao + p * m + i]! : a[ao + i * k + p]!;
          const bv = transB ? b[bo + j * k + p]! : b[bo + p * n + j]!;
          s += av * bv;
        }
        const o = bi * m * n + i * n + j;
        r[o] = (c.accumulate ? out0[o]! : 0) + s;
      }
    }
  }
  return r;
}

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

function check(c: Case, Arr: Ctor, isaLabel: string): void {
  const aLen = c.batch === 0 ? 0 : (c.batch - 1) * c.sa + c.m * c.k;
  const bLen = c.batch === 0 ? 0 : (c.batch - 1) * c.sb + c.k * c.n;
  const a = fill(new Arr(aLen), 11 + c.m);
  const b = fill(new Arr(bLen), 29 + c.n);
  const out = fill(new Arr(c.batch * c.m * c.n), 7 + c.k);
  const ref = reference(c, a, b, out);
  addon.matmul(a, b, out, c.batch, c.m, c.k, c.n, c.transA, c.transB, c.sa, c.sb, c.accumulate);
  // float32 rounding grows like sqrt(k); an indexing bug gives O(1) errors.
  const tol = Arr === Float32Array ? 2e-6 * (8 + Math.sqrt(c.k) * 4) : 1e-13 * (8 + c.k);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(out[i]! - ref[i]!) / (1 + Math.abs(ref[i]!));
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  assert.ok(
    worst <= tol,
    `${isaLabel} ${Arr.name} ${JSON.stringify(c)}: max rel err ${worst} at ${at} (got ${out[at]}, want ${ref[at]}), tol ${tol}`,
  );
}

// (m, k, n): tiny (direct path), tile edges for MR in {4,6,12,14} and NR in {8,16,32},
// K=1, K across several KC blocks (384 on Zen 4, 1024 on Zen 5: gemm_kernels.c), M across MC,
// N across NC, threaded sizes.
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [2, 3, 4],
  [17, 33, 65],
  [65, 17, 33],
  [33, 65, 17],
  [14, 32, 32],
  [15, 31, 33],
  [100, 1, 100],
  [1, 700, 300],
  [300, 700, 1],
  [3, 1000, 7],
  [64, 64, 64],
  [129, 257, 130],
  [200, 600, 90],
  [400, 40, 50],
  [20, 30, 4500],
  [9, 1500, 13],
  [256, 128, 256],
  [131, 300, 97],
  [70, 2100, 50],
];

test('matmul matches a float64 naive loop: all ISAs, shapes, transposes', { skip }, () => {
  const isas = isasFromCurrent(addon);
  try {
    for (const isa of isas) {
      assert.equal(addon.setIsa(isa), isa);
      for (const Arr of [Float32Array, Float64Array] as Ctor[]) {
        for (const [m, k, n] of SHAPES) {
          for (const transA of [false, true]) {
            for (const transB of [false, true]) {
              const accumulate = (m + k + n + Number(transA)) % 2 === 0;
              check({ batch: 1, m, k, n, transA, transB, sa: m * k, sb: k * n, accumulate }, Arr, isa);
            }
          }
        }
      }
    }
  } finally {
    addon.setIsa(isas[0]!);
  }
});

// Skinny shapes (M or N <= 32) take the direct path (A read in place): N around the
// one- and two-vector column panels (4, 8, 16, 32) and the cut-off (32, 33), small M
// (one row group up to 32 rows), row counts that need several row kernels, partial
// panels, K = 1, rows of A 4 KiB apart (copied aside: K = 1024 f32, 512 f64), K longer
// than the 256 chunk, and K split over tasks (small M and C, K >= 1024). The last three
// (small K only) stay on the packed path.
const SKINNY: Array<[number, number, number]> = [
  [37, 13, 1],
  [300, 130, 7],
  [45, 64, 8],
  [33, 40, 9],
  [130, 31, 16],
  [29, 70, 17],
  [5, 1, 8],
  [1, 100, 9],
  [70, 1, 3],
  [41, 1024, 8],
  [19, 512, 5],
  [250, 600, 4],
  [90, 50, 32],
  [60, 40, 33],
  [1, 300, 100],
  [7, 200, 70],
  [8, 700, 33],
  [9, 90, 130],
  [16, 300, 48],
  [17, 260, 31],
  [32, 100, 90],
  [33, 50, 60],
  [20, 1024, 70],
  [20, 512, 40],
  [3, 2100, 5],
  [13, 3000, 20],
  [1, 1500, 1],
  [300, 8, 500],
  [200, 1, 70],
  [150, 16, 40],
];

test('matmul skinny shapes (direct path) match a float64 naive loop: all ISAs, transposes', { skip }, () => {
  const isas = isasFromCurrent(addon);
  try {
    for (const isa of isas) {
      addon.setIsa(isa);
      for (const Arr of [Float32Array, Float64Array] as Ctor[]) {
        for (const [m, k, n] of SKINNY) {
          for (const transA of [false, true]) {
            for (const transB of [false, true]) {
              const accumulate = (m + n + Number(transB)) % 2 === 1;
              check({ batch: 1, m, k, n, transA, transB, sa: m * k, sb: k * n, accumulate }, Arr, isa);
            }
          }
        }
        // batched, with a broadcast operand, gaps and accumulate, through the K split
        for (const [m, k, n] of [
          [5, 2100, 9],
          [3, 40, 300],
          [200, 30, 6],
        ] as Array<[number, number, number]>) {
          for (const transA of [false, true]) {
            check({ batch: 3, m, k, n, transA, transB: !transA, sa: m * k + 3, sb: 0, accumulate: true }, Arr, isa);
            check({ batch: 2, m, k, n, transA, transB: transA, sa: 0, sb: k * n, accumulate: false }, Arr, isa);
          }
        }
      }
    }
  } finally {
    addon.setIsa(isas[0]!);
  }
});

test('matmul results are bitwise the same run to run and for any thread count', { skip }, () => {
  const threads = addon.getNumThreads();
  try {
    for (const Arr of [Float32Array, Float64Array] as Ctor[]) {
      // K split (M, N small), small N, small M, and the packed path
      for (const [m, k, n, transA] of [
        [6, 5000, 10, true],
        [2000, 300, 8, false],
        [12, 3000, 200, true],
        [200, 300, 150, false],
      ] as Array<[number, number, number, boolean]>) {
        const a = fill(new Arr(m * k), 3);
        const b = fill(new Arr(k * n), 5);
        const run = (t: number): FloatArray => {
          addon.setNumThreads(t);
          const out = new Arr(m * n);
          addon.matmul(a, b, out, 1, m, k, n, transA, false, 0, 0, false);
          return out;
        };
        const first = run(threads);
        for (const t of [threads, 1, 2, 3]) {
          assert.deepEqual(run(t), first, `${Arr.name} ${m}x${k}x${n}: ${t} threads differ from ${threads}`);
        }
      }
    }
  } finally {
    addon.setNumThreads(threads);
  }
});

test('matmul accumulate adds into out; k = 0 zeroes or keeps out', { skip }, () => {
  for (const Arr of [Float32Array, Float64Array] as Ctor[]) {
    for (const accumulate of [false, true]) {
      check({ batch: 1, m: 70, k: 300, n: 90, transA: false, transB: false, sa: 0, sb: 0, accumulate }, Arr, 'default');
      check({ batch: 2, m: 5, k: 0, n: 6, transA: false, transB: true, sa: 0, sb: 0, accumulate }, Arr, 'default');
    }
  }
});

test('matmul batches: broadcast (stride 0), gapped strides, single- and multi-threaded', { skip }, () => {
  const threads = addon.getNumThreads();
  try {
    for (const t of [1, threads]) {
      addon.setNumThreads(t);
      for (const Arr of [Float32Array, Float64Array] as Ctor[]) {
        const [m, k, n] = [37, 90, 70];
        const cases: Array<Partial<Case>> = [
          { sa: m * k, sb: k * n },
          { sa: 0, sb: k * n }, // one A for every batch entry
          { sa: m * k, sb: 0 }, // one B (shared weights)
          { sa: m * k + 5, sb: k * n + 3 }, // gaps between batch entries
        ];
        for (const cs of cases) {
          for (const transA of [false, true]) {
            for (const transB of [false, true]) {
              check({ batch: 5, m, k, n, transA, transB, sa: 0, sb: 0, accumulate: transA, ...cs }, Arr, `threads=${t}`);
            }
          }
        }
        check(
          { batch: 3, m: 160, k: 200, n: 150, transA: false, transB: false, sa: 160 * 200, sb: 0, accumulate: false },
          Arr,
          `threads=${t}`,
        );
      }
    }
  } finally {
    addon.setNumThreads(threads);
  }
});

test('matmul rejects wrong argument types and short arrays', { skip }, () => {
  const f32 = (n: number): Float32Array => new Float32Array(n);
  const call = (a: unknown, b: unknown, out: unknown, ...rest: unknown[]): void => {
    const args = [a, b, out, ...rest] as Parameters<NativeAddon['matmul']>;
    addon.matmul(...args);
  };
  const dims = [1, 2, 3, 4, false, false, 6, 12, false];
  assert.throws(() => call(new Int32Array(6), f32(12), f32(8), ...dims), {
    name: 'TypeError',
    message: /matmul: a must be a Float32Array or Float64Array, got Int32Array/,
  });
  assert.throws(() => call([1, 2], f32(12), f32(8), ...dims), { name: 'TypeError', message: /matmul: a must be/ });
  assert.throws(() => call(f32(6), new Float64Array(12), f32(8), ...dims), {
    name: 'TypeError',
    message: /matmul: b must be a Float32Array like a, got Float64Array/,
  });
  assert.throws(() => call(f32(6), f32(12), new Float64Array(8), ...dims), {
    name: 'TypeError',
    message: /matmul: out must be a Float32Array/,
  });
  assert.throws(() => call(f32(6), f32(12), f32(8), 1, 2, 3, 4, false, false, 6, 12), {
    name: 'TypeError',
    message: /expected 12 arguments/,
  });
  assert.throws(() => call(f32(6), f32(12), f32(8), 1, 2, 3, 4, 'no', false, 6, 12, false), {
    name: 'TypeError',
    message: /transA must be a boolean/,
  });
  assert.throws(() => call(f32(6), f32(12), f32(8), 1, 2.5, 3, 4, false, false, 6, 12, false), {
    name: 'TypeError',
    message: /m must be an integer/,
  });
  assert.throws(() => call(f32(6), f32(12), f32(8), -1, 2, 3, 4, false, false, 6, 12, false), {
    name: 'RangeError',
    message: /batch must be in/,
  });
  assert.throws(() => call(f32(5), f32(12), f32(8), ...dims), { name: 'RangeError', message: /a has 5 elements, needs 6/ });
  assert.throws(() => call(f32(6), f32(11), f32(8), ...dims), { name: 'RangeError', message: /b has 11 elements, needs 12/ });
  assert.throws(() => call(f32(6), f32(12), f32(7), ...dims), { name: 'RangeError', message: /out has 7 elements, needs 8/ });
  // batch 2 with a stride of 10: a needs 10 + 6 elements
  assert.throws(() => call(f32(15), f32(12), f32(16), 2, 2, 3, 4, false, false, 10, 0, false), {
    name: 'RangeError',
    message: /a has 15 elements, needs 16/,
  });
  const buf = new Float32Array(32);
  assert.throws(() => call(buf.subarray(0, 6), f32(12), buf.subarray(4, 12), ...dims), {
    name: 'RangeError',
    message: /must not share memory/,
  });
  // Disjoint views of one buffer are fine.
  call(buf.subarray(0, 6), f32(12), buf.subarray(6, 14), ...dims);
});

test('thread count and cpu info', { skip }, () => {
  const info = addon.cpuInfo();
  assert.ok(['avx512', 'avx2', 'scalar'].includes(info.isa));
  assert.ok(Number.isInteger(info.threads) && info.threads >= 1);
  const t = addon.getNumThreads();
  addon.setNumThreads(1);
  assert.equal(addon.getNumThreads(), 1);
  addon.setNumThreads(0); // default
  assert.ok(addon.getNumThreads() >= 1);
  addon.setNumThreads(t);
  assert.equal(addon.getNumThreads(), t);
  assert.throws(() => addon.setIsa('sse' as NativeIsa), { name: 'RangeError' });
});

// The GEMM's cache blocking comes from these sizes (native/gemm/gemm_kernels.c
// block_from_caches); where Linux lists cpu0's caches, cpuid's leaves must agree with it.
test('cpu info: data cache sizes agree with sysfs', { skip }, () => {
  const { caches } = addon.cpuInfo();
  assert.ok(caches.l1dKiB >= 8 && caches.l2KiB >= caches.l1dKiB, JSON.stringify(caches));
  const dir = '/sys/devices/system/cpu/cpu0/cache';
  if (!existsSync(`${dir}/index0/size`)) return;
  const sysfs: Record<number, number> = {};
  for (let i = 0; existsSync(`${dir}/index${i}`); i++) {
    if (readFileSync(`${dir}/index${i}/type`, 'utf8').trim() === 'Instruction') continue;
    const size = readFileSync(`${dir}/index${i}/size`, 'utf8').trim();
    sysfs[Number(readFileSync(`${dir}/index${i}/level`, 'utf8'))] = Number.parseInt(size, 10) * (size.endsWith('M') ? 1024 : 1);
  }
  assert.deepEqual([caches.l1dKiB, caches.l2KiB, caches.l3KiB], [sysfs[1], sysfs[2], sysfs[3] ?? 0], caches.source);
});
