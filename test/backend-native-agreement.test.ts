// Every native kernel against its reference twin on the same inputs: f32 and f64, edge
// shapes (n = 1, empty, inner > 1), sizes that take the threaded path, broadcasting
// patterns, ties and NaN for the selection kernels, causal attention with tq != tk.
// Fails (does not skip) when the addon cannot load and CI is set.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Backend, BinaryOp, UnaryOp } from '../src/backend/backend.js';
import { createNativeBackend } from '../src/backend/native/backend.js';
import { referenceBackend as ref } from '../src/backend/reference/index.js';
import type { DType, FloatDType, Storage } from '../src/backend/types.js';
import { UNARY_CASES } from './helpers/unary-cases.js';

const loaded = createNativeBackend();

/** xorshift32 values in [lo, hi). */
function rand(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = seed >>> 0 || 1;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = lo + ((hi - lo) * s) / 4294967296;
  }
  return out;
}
/** Small integers 0..levels-1 (as floats): many ties. */
const ties = (n: number, seed: number, levels = 4) => rand(n, seed, 0, levels).map(Math.floor);
const SPECIAL = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 0.5, -2.5, 3e9, -3e9, 1e-30];

function arr(dtype: DType, values: number[]): Storage {
  return dtype === 'f32' ? Float32Array.from(values) : dtype === 'f64' ? Float64Array.from(values) : Int32Array.from(values);
}
const rnd = (dtype: DType, n: number, seed: number, lo = -1, hi = 1) => arr(dtype, rand(n, seed, lo, hi));
const prod = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
const FLOATS: FloatDType[] = ['f32', 'f64'];

/** Agreement: exact for int32, else |a - e| <= tol * (1 + |e|) (tol by dtype); NaN == NaN. */
function close(actual: Storage | null, expected: Storage | null, what: string, tolScale = 1): void {
  if (expected === null || actual === null) {
    assert.equal(actual, expected, `${what}: null mismatch`);
    return;
  }
  assert.equal(actual.constructor, expected.constructor, `${what}: array kind`);
  assert.equal(actual.length, expected.length, `${what}: length`);
  const tol = (expected instanceof Float32Array ? 2e-5 : expected instanceof Float64Array ? 1e-12 : 0) * tolScale;
  for (let i = 0; i < expected.length; i++) {
    const a: number = actual[i]!;
    const e: number = expected[i]!;
    if (Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)) || a === e) continue;
    if (!(Math.abs(a - e) <= tol * (1 + Math.abs(e)))) assert.fail(`${what}[${i}]: native ${a}, reference ${e}`);
  }
}

if (!loaded.backend) {
  const reason = `native addon not available: ${loaded.reason}`;
  if (process.env['CI']) test('native addon loads (required in CI)', () => assert.fail(reason));
  else test('native vs reference agreement', { skip: reason }, () => {});
} else {
  run(loaded.backend);
}

function run(nat: Backend): void {
  const both = <R>(f: (b: Backend) => R): [R, R] => [f(nat), f(ref)];

  describe('native vs reference: elementwise', () => {
    const unaryOps = UNARY_CASES;
    for (const dt of FLOATS) {
      test(`unary / unaryBackward (${dt})`, () => {
        for (const [op, lo, hi] of unaryOps) {
          for (const n of [0, 1, 7, 40000]) {
            const x = arr(dt, [...rand(n, 3 + n, lo, hi), ...(n === 7 ? SPECIAL : [])]);
            const dy = rnd(dt, x.length, 11 + n);
            const [a, e] = both((b) => b.unary(op, x));
            close(a, e, `${op} n=${n}`);
            const [ga, ge] = both((b) => b.unaryBackward(op, x, dy));
            close(ga, ge, `${op}' n=${n}`);
          }
        }
      });
    }

    const binOps: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'];
    // [aShape, bShape] -> broadcast to the elementwise max shape
    const patterns: [number[], number[]][] = [
      [
        [300, 200],
        [300, 200],
      ], // same shape, threaded
      [[300, 200], []], // scalar b
      [[], [5, 3]], // scalar a
      [[300, 200], [200]], // bias along rows
      [
        [300, 200],
        [300, 1],
      ], // per-row scalar
      [
        [4, 1, 5],
        [1, 3, 5],
      ], // generic
      [
        [2, 3, 1, 4],
        [3, 5, 1],
      ],
      [[0, 5], [5]], // empty
      [[1], [1]],
    ];
    const strides = (shape: number[], out: number[]): number[] => {
      const s: number[] = [];
      let acc = 1;
      for (let i = shape.length - 1; i >= 0; i--) {
        s.unshift(shape[i] === 1 ? 0 : acc);
        acc *= shape[i]!;
      }
      while (s.length < out.length) s.unshift(0);
      return s;
    };
    const bshape = (a: number[], b: number[]): number[] => {
      const r = Math.max(a.length, b.length);
      const pa = [...Array(r - a.length).fill(1), ...a];
      const pb = [...Array(r - b.length).fill(1), ...b];
      return pa.map((d, i) => (d === 1 ? pb[i]! : d));
    };
    for (const dt of ['f32', 'f64', 'i32'] as DType[]) {
      test(`binary, all broadcast patterns (${dt})`, () => {
        for (const op of binOps) {
          if (dt === 'i32' && (op === 'mul' || op === 'div' || op === 'pow')) continue;
          for (const [sa, sb] of patterns) {
            const out = bshape(sa, sb);
            const lo = op === 'pow' ? 0.1 : -2;
            const mk = (n: number, seed: number) =>
              dt === 'i32'
                ? arr(
                    dt,
                    ties(n, seed, 7).map((v) => v - 3),
                  )
                : arr(
                    dt,
                    ties(n, seed, 5).map((v, i) => (i % 3 ? v + rand(1, seed + i, lo, 2)[0]! : v)),
                  );
            const a = mk(prod(sa), 5);
            const b = mk(prod(sb), 6);
            const [x, y] = both((be) => be.binary(op, a, strides(sa, out), b, strides(sb, out), out, dt));
            close(x, y, `${op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`);
          }
        }
        if (dt !== 'i32') {
          const a = arr(
            dt,
            SPECIAL.flatMap((v) => SPECIAL.map(() => v)),
          );
          const b = arr(
            dt,
            SPECIAL.flatMap(() => SPECIAL),
          );
          const s = [1];
          for (const op of binOps) close(...both((be) => be.binary(op, a, s, b, s, [a.length], dt)), `${op} specials`);
        } else {
          const a = Int32Array.from([2147483647, -2147483648, 5, -7]);
          const b = Int32Array.from([1, -1, -9, 7]);
          for (const op of ['add', 'sub', 'maximum', 'lt'] as BinaryOp[])
            close(...both((be) => be.binary(op, a, [1], b, [1], [4], 'i32')), `${op} wrap`);
        }
      });
    }

    test('where (cond f32 / f64 / i32; values f32 / f64 / i32; broadcast)', () => {
      for (const cdt of ['f32', 'f64', 'i32'] as DType[]) {
        for (const vdt of ['f32', 'f64', 'i32'] as DType[]) {
          const cond = arr(cdt, [...ties(298, 9, 2), NaN, 0].slice(0, 300));
          const a = rnd(vdt, 300 * 200, 1, -5, 5);
          const b = rnd(vdt, 200, 2, -5, 5);
          close(...both((be) => be.where(cond, [1, 0], a, [200, 1], b, [0, 1], [300, 200])), `where ${cdt}/${vdt}`);
          close(...both((be) => be.where(cond, [1, 0], a, [200, 1], b, [0, 1], [0, 200])), `where empty`);
        }
      }
    });

    for (const dt of FLOATS) {
      test(`clamp (${dt})`, () => {
        const x = arr(dt, [...rand(40000, 4, -3, 3), ...SPECIAL]);
        for (const [lo, hi] of [
          [-0.5, 0.4],
          [-Infinity, 0.1],
          [0.3, Infinity],
          [0.1, 0.1],
        ] as [number, number][]) {
          close(...both((be) => be.clamp(x, lo, hi)), `clamp ${lo} ${hi}`);
        }
      });
    }

    test('cast between every pair of dtypes', () => {
      for (const from of ['f32', 'f64', 'i32'] as DType[]) {
        for (const to of ['f32', 'f64', 'i32'] as DType[]) {
          const x = arr(from, [...SPECIAL, 2.7, -2.7, 16777217, 2 ** 40 + 3, -(2 ** 33) - 5, ...rand(40000, 8, -1e3, 1e3)]);
          close(...both((be) => be.cast(x, to)), `cast ${from}->${to}`);
        }
      }
    });
  });

  describe('native vs reference: reductions', () => {
    const layouts: [number, number, number][] = [
      [3, 5, 1],
      [2, 4, 3],
      [1, 1, 1],
      [4, 0, 3],
      [0, 3, 2],
      [5, 1, 7],
      [300, 200, 1],
      [20, 50, 100],
      [2, 7, 300],
      [1, 40000, 1],
    ];
    for (const dt of FLOATS) {
      test(`reduce / argReduce / cumsum (${dt})`, () => {
        for (const [o, n, i] of layouts) {
          const x = rnd(dt, o * n * i, o + n + i, -3, 3);
          const t = arr(dt, ties(o * n * i, 7 + n));
          for (const op of ['sum', 'max', 'min', 'logsumexp'] as const) {
            close(...both((be) => be.reduce(op, x, o, n, i)), `${op} [${o},${n},${i}]`, n > 1000 ? 10 : 1);
          }
          for (const op of ['argmax', 'argmin'] as const) {
            close(...both((be) => be.argReduce(op, t, o, n, i)), `${op} ties [${o},${n},${i}]`);
            close(...both((be) => be.argReduce(op, x, o, n, i)), `${op} [${o},${n},${i}]`);
          }
          for (const rev of [false, true]) close(...both((be) => be.cumsum(x, o, n, i, rev)), `cumsum rev=${rev} [${o},${n},${i}]`, 10);
        }
        // NaN / Inf propagation
        const s = arr(dt, [1, NaN, 2, -Infinity, -Infinity, -Infinity, Infinity, 1, 2, 3, 3, 3]);
        for (const [o, n, i] of [
          [4, 3, 1],
          [1, 4, 3],
          [2, 3, 2],
        ] as [number, number, number][]) {
          for (const op of ['sum', 'max', 'min', 'logsumexp'] as const)
            close(...both((be) => be.reduce(op, s, o, n, i)), `${op} specials [${o},${n},${i}]`);
          for (const op of ['argmax', 'argmin'] as const) close(...both((be) => be.argReduce(op, s, o, n, i)), `${op} specials`);
        }
      });
    }
  });

  describe('native vs reference: row-wise', () => {
    const shapes: [number, number][] = [
      [1, 1],
      [3, 7],
      [2, 0],
      [0, 4],
      [300, 200],
      [4, 1000],
    ];
    for (const dt of FLOATS) {
      test(`softmax / log-softmax and backward (${dt})`, () => {
        for (const [r, n] of shapes) {
          const x = rnd(dt, r * n, r + n, -6, 6);
          if (r * n > 3) x[1] = -Infinity; // a masked entry
          const dy = rnd(dt, r * n, 99);
          for (const log of [false, true]) {
            const [y, ye] = both((be) => be.softmax(x, r, n, log));
            close(y, ye, `softmax log=${log} [${r},${n}]`);
            close(...both((be) => be.softmaxBackward(ye, dy, r, n, log)), `softmaxBackward log=${log} [${r},${n}]`);
          }
        }
      });
      test(`layerNorm / rmsNorm and backward (${dt})`, () => {
        for (const [r, n] of shapes.filter(([, n]) => n > 0)) {
          const x = rnd(dt, r * n, r * 3 + n, -2, 3);
          const dy = rnd(dt, r * n, 5);
          const w = rnd(dt, n, 6, 0.5, 1.5);
          const bias = rnd(dt, n, 7);
          for (const [ww, bb] of [
            [w, bias],
            [w, null],
            [null, bias],
            [null, null],
          ] as [Storage | null, Storage | null][]) {
            const [f, fe] = both((be) => be.layerNorm(x, ww, bb, r, n, 1e-5));
            close(f.y, fe.y, `layerNorm y [${r},${n}]`);
            close(f.mean, fe.mean, 'layerNorm mean');
            close(f.rstd, fe.rstd, 'layerNorm rstd');
            const [g, ge] = both((be) => be.layerNormBackward(dy, x, ww, fe.mean, fe.rstd, r, n, bb !== null));
            close(g.dx, ge.dx, `layerNormBackward dx [${r},${n}]`, 5);
            close(g.dw, ge.dw, `layerNormBackward dw [${r},${n}]`, 20);
            close(g.db, ge.db, `layerNormBackward db [${r},${n}]`, 20);
          }
          for (const ww of [w, null]) {
            const [f, fe] = both((be) => be.rmsNorm(x, ww, r, n, 1e-6));
            close(f.y, fe.y, `rmsNorm y [${r},${n}]`);
            close(f.rstd, fe.rstd, 'rmsNorm rstd');
            const [g, ge] = both((be) => be.rmsNormBackward(dy, x, ww, fe.rstd, r, n));
            close(g.dx, ge.dx, `rmsNormBackward dx [${r},${n}]`, 5);
            close(g.dw, ge.dw, `rmsNormBackward dw [${r},${n}]`, 20);
          }
        }
      });
    }
  });

  describe('native vs reference: layout', () => {
    const perms = (r: number): number[][] =>
      r <= 1
        ? [[...Array(r).keys()]]
        : perms(r - 1).flatMap((p) => [...Array(r).keys()].map((i) => [...p.slice(0, i), r - 1, ...p.slice(i)]));
    test('permute: every permutation of small ranks, large 2-D / 3-D transposes, all dtypes', () => {
      for (const dt of ['f32', 'f64', 'i32'] as DType[]) {
        const cases: number[][] = [[2, 3, 4], [5, 1, 7], [3, 4, 2, 5], [300, 200], [64, 8, 40], [33, 65, 2], [0, 3], [1]];
        for (const shape of cases) {
          const x = rnd(dt, prod(shape), 3, -100, 100);
          for (const p of shape.length <= 4 ? perms(shape.length) : [[1, 0]]) {
            close(...both((be) => be.permute(x, shape, p)), `permute ${dt} ${JSON.stringify(shape)} ${JSON.stringify(p)}`);
          }
        }
      }
    });
    test('sliceCopy / sliceAddInPlace', () => {
      for (const dt of ['f32', 'f64', 'i32'] as DType[]) {
        const cases: [number[], number[], number[]][] = [
          [
            [4, 5, 6],
            [1, 0, 2],
            [2, 5, 3],
          ],
          [
            [300, 200],
            [10, 0],
            [250, 200],
          ],
          [
            [300, 200],
            [0, 50],
            [300, 120],
          ],
          [[7], [3], [0]],
          [
            [3, 4],
            [0, 0],
            [3, 4],
          ],
        ];
        for (const [shape, starts, sizes] of cases) {
          const x = rnd(dt, prod(shape), 4, -100, 100);
          close(...both((be) => be.sliceCopy(x, shape, starts, sizes)), `sliceCopy ${JSON.stringify([shape, starts, sizes])}`);
          const src = rnd(dt, prod(sizes), 5, -100, 100);
          const [t1, t2] = [x.slice(), x.slice()];
          nat.sliceAddInPlace(t1, shape, starts, src, sizes);
          ref.sliceAddInPlace(t2, shape, starts, src, sizes);
          close(t1, t2, `sliceAddInPlace ${JSON.stringify([shape, starts, sizes])}`);
        }
      }
    });
  });

  describe('native vs reference: indexing', () => {
    const layouts: [number, number, number, number][] = [
      [2, 5, 3, 7],
      [1, 6, 1, 9],
      [3, 4, 0, 2],
      [0, 4, 3, 2],
      [1, 64, 512, 300],
      [50, 30, 40, 20],
    ]; // [outer, n, inner, m]
    for (const dt of ['f32', 'f64', 'i32'] as DType[]) {
      test(`indexSelect / indexAdd / gather / scatterAdd (${dt})`, () => {
        for (const [o, n, i, m] of layouts) {
          const x = rnd(dt, o * n * i, 1, -100, 100);
          const idx = Int32Array.from(ties(m, 2, n)); // duplicates
          close(...both((be) => be.indexSelect(x, o, n, i, idx)), `indexSelect [${o},${n},${i}] m=${m}`);
          const src = rnd(dt, o * m * i, 3, -100, 100);
          const [t1, t2] = [x.slice(), x.slice()];
          nat.indexAddInPlace(t1, o, n, i, idx, src);
          ref.indexAddInPlace(t2, o, n, i, idx, src);
          close(t1, t2, `indexAdd [${o},${n},${i}] m=${m}`);
          const gidx = Int32Array.from(ties(o * m * i, 4, n));
          close(...both((be) => be.gather(x, o, n, i, gidx, m)), `gather [${o},${n},${i}] m=${m}`);
          const [s1, s2] = [x.slice(), x.slice()];
          nat.scatterAddInPlace(s1, o, n, i, gidx, src, m);
          ref.scatterAddInPlace(s2, o, n, i, gidx, src, m);
          close(s1, s2, `scatterAdd [${o},${n},${i}] m=${m}`);
        }
      });
    }
    test('out-of-range indices throw the reference RangeError, before writing', () => {
      const x = new Float32Array(2 * 4 * 3);
      const bad = Int32Array.from([0, 3, 4, -1]);
      const gbad = Int32Array.from([
        ...Array(2 * 2 * 3)
          .fill(1)
          .map((v, i) => (i === 7 ? -2 : v)),
      ]);
      const cases: [string, (be: Backend, t: Storage) => unknown][] = [
        ['indexSelect', (be) => be.indexSelect(x, 2, 4, 3, bad)],
        ['indexAdd', (be, t) => be.indexAddInPlace(t, 2, 4, 3, bad, new Float32Array(2 * 4 * 3))],
        ['gather', (be) => be.gather(x, 2, 4, 3, gbad, 2)],
        ['scatterAdd', (be, t) => be.scatterAddInPlace(t, 2, 4, 3, gbad, new Float32Array(12).fill(1), 2)],
      ];
      for (const [name, f] of cases) {
        let refMsg = '';
        try {
          f(ref, x.slice());
        } catch (e) {
          refMsg = (e as Error).message;
        }
        const t = x.slice();
        assert.throws(
          () => f(nat, t),
          (e: unknown) => e instanceof RangeError && e.message === refMsg,
          name,
        );
        assert.ok(
          t.every((v) => v === 0),
          `${name}: target untouched`,
        );
      }
    });
  });

  describe('native vs reference: selection / sorting', () => {
    for (const dt of ['f32', 'f64', 'i32'] as DType[]) {
      test(`topk / argsort with ties and NaN (${dt})`, () => {
        const cases: [number, number][] = [
          [1, 1],
          [3, 8],
          [5, 100],
          [200, 300],
          [2, 1000],
        ];
        for (const [r, n] of cases) {
          const vals = [...ties(r * n, r + n, 6)];
          if (dt !== 'i32') for (let i = 0; i < vals.length; i += 7) vals[i] = [NaN, -0, 0, Infinity, -Infinity][i % 5]!;
          const x = arr(dt, vals);
          const xr = rnd(dt, r * n, 17, -1e3, 1e3);
          for (const k of [1, 3, Math.min(n, 20), n].filter((v) => v <= n)) {
            for (const largest of [true, false]) {
              for (const [input, tag] of [
                [x, 'ties'],
                [xr, 'random'],
              ] as [Storage, string][]) {
                const [a, e] = both((be) => be.topk(input, r, n, k, largest));
                close(a.indices, e.indices, `topk ${tag} indices [${r},${n}] k=${k} largest=${largest}`);
                close(a.values, e.values, `topk ${tag} values [${r},${n}] k=${k}`);
              }
            }
          }
          for (const desc of [false, true]) {
            close(...both((be) => be.argsort(x, r, n, desc)), `argsort ties [${r},${n}] desc=${desc}`);
            close(...both((be) => be.argsort(xr, r, n, desc)), `argsort random [${r},${n}] desc=${desc}`);
          }
        }
      });
    }
  });

  describe('native vs reference: attention', () => {
    const cases: [number, number, number, number][] = [
      [1, 1, 1, 1],
      [2, 5, 5, 8],
      [2, 3, 7, 8],
      [2, 7, 3, 4],
      [3, 70, 70, 16],
      [4, 100, 130, 16],
      [2, 33, 65, 40],
      [1, 4, 0, 4],
    ]; // [bh, tq, tk, d]
    for (const dt of FLOATS) {
      test(`attention / attentionBackward, causal and full, tq != tk (${dt})`, () => {
        for (const [bh, tq, tk, d] of cases) {
          const q = rnd(dt, bh * tq * d, 1, -2, 2);
          const k = rnd(dt, bh * tk * d, 2, -2, 2);
          const v = rnd(dt, bh * tk * d, 3, -2, 2);
          const dout = rnd(dt, bh * tq * d, 4);
          for (const causal of [true, false]) {
            const tag = `[${bh},${tq},${tk},${d}] causal=${causal}`;
            const [f, fe] = both((be) => be.attention(q, k, v, bh, tq, tk, d, 1 / Math.sqrt(d), causal));
            close(f.out, fe.out, `attention out ${tag}`, 5);
            close(f.lse, fe.lse, `attention lse ${tag}`, 5);
            const [g, ge] = both((be) => be.attentionBackward(q, k, v, fe.out, fe.lse, dout, bh, tq, tk, d, 1 / Math.sqrt(d), causal));
            close(g.dq, ge.dq, `attention dq ${tag}`, 20);
            close(g.dk, ge.dk, `attention dk ${tag}`, 20);
            close(g.dv, ge.dv, `attention dv ${tag}`, 20);
          }
        }
      });
    }
  });

  describe('native vs reference: optimiser', () => {
    for (const dt of FLOATS) {
      test(`adamwInPlace / axpyInPlace are bit-identical (${dt})`, () => {
        for (const n of [0, 1, 13, 50000]) {
          const h = {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weightDecay: 0.1,
            biasCorrection1: 1 - 0.9 ** 3,
            biasCorrection2: 1 - 0.999 ** 3,
          };
          const p = rnd(dt, n, 1);
          const g = rnd(dt, n, 2);
          const m = rnd(dt, n, 3, -0.1, 0.1);
          const v = rnd(dt, n, 4, 0, 0.01);
          const s1 = [p.slice(), m.slice(), v.slice()];
          const s2 = [p.slice(), m.slice(), v.slice()];
          nat.adamwInPlace(s1[0]!, g, s1[1]!, s1[2]!, h);
          ref.adamwInPlace(s2[0]!, g, s2[1]!, s2[2]!, h);
          for (let j = 0; j < 3; j++) assert.deepEqual(s1[j], s2[j], `adamw ${['param', 'm', 'v'][j]} n=${n}`);
          const [y1, y2] = [p.slice(), p.slice()];
          nat.axpyInPlace(y1, g, -0.37);
          ref.axpyInPlace(y2, g, -0.37);
          assert.deepEqual(y1, y2, `axpy n=${n}`);
        }
      });
    }
  });

  describe('native addon argument checks', () => {
    const addon = (loaded as { addon: import('../src/backend/native/addon.js').NativeAddon }).addon;
    test('wrong kinds throw TypeError, short arrays RangeError', () => {
      assert.throws(() => addon.softmax(new Int32Array(4) as unknown as Float32Array, 2, 2, false, new Float32Array(4)), TypeError);
      assert.throws(() => addon.softmax(new Float32Array(4), 2, 2, false, new Float64Array(4)), TypeError);
      assert.throws(() => addon.softmax(new Float32Array(3), 2, 2, false, new Float32Array(4)), RangeError);
      assert.throws(() => addon.unary('nope' as UnaryOp, new Float32Array(4), new Float32Array(4)), RangeError);
      assert.throws(() => addon.binary('add', new Float32Array(4), [1], new Float32Array(3), [1], [4], new Float32Array(4)), RangeError);
      assert.throws(() => addon.permute(new Float32Array(6), [2, 3], [0, 0], new Float32Array(6)), RangeError);
      assert.throws(() => addon.sliceCopy(new Float32Array(6), [2, 3], [1, 2], [1, 2], new Float32Array(2)), RangeError);
      assert.throws(() => addon.topk(new Float32Array(6), 2, 3, 4, true, new Float32Array(8), new Int32Array(8)), RangeError);
      assert.throws(
        () =>
          addon.attention(
            new Float32Array(8),
            new Float32Array(8),
            new Float32Array(7),
            1,
            2,
            2,
            4,
            1,
            true,
            new Float32Array(8),
            new Float32Array(2),
          ),
        RangeError,
      );
    });
  });
}
