// Every webgpu kernel against its reference twin on the same f32 / i32 inputs (small sizes:
// CI runs them on Mesa's software GL through Dawn): broadcasting, edge shapes (n = 1, empty,
// inner > 1), ties and NaN for the selection kernels, causal attention with tq != tk, the
// in-place kernels, and the errors (f64, synchronous reads). Skips only where no adapter
// exists and CI is not set.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Backend, BinaryOp, ReduceOp, UnaryOp } from '../src/backend/backend.js';
import { referenceBackend as ref } from '../src/backend/reference/index.js';
import type { Storage, TypedArray } from '../src/backend/types.js';
import { readAll, webgpuOrSkip } from './helpers/webgpu.js';
import { UNARY_CASES } from './helpers/unary-cases.js';

/** xorshift32 values in [lo, hi). */
function rand(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return lo + ((hi - lo) * s) / 4294967296;
  });
}
const f32 = (n: number, seed: number, lo = -1, hi = 1) => Float32Array.from(rand(n, seed, lo, hi));
const ints = (n: number, seed: number, below: number) => Int32Array.from(rand(n, seed, 0, below), Math.floor);
/** Small integers as floats: many ties. */
const tied = (n: number, seed: number) => Float32Array.from(rand(n, seed, 0, 4), Math.floor);

/** |a - e| <= tol * (1 + |e|) for floats, exact for i32; NaN == NaN; same array kind. */
function close(actual: TypedArray, expected: TypedArray, what: string, tol: number): void {
  assert.equal(actual.constructor.name, expected.constructor.name, `${what}: array kind`);
  assert.equal(actual.length, expected.length, `${what}: length`);
  const t = expected instanceof Int32Array ? 0 : tol;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    if (!(Math.abs(a - e) <= t * (1 + Math.abs(e)))) assert.fail(`${what}[${i}]: webgpu ${a}, reference ${e}`);
  }
}

const gpu = await webgpuOrSkip('webgpu vs reference agreement');
if (gpu) run(gpu);

function run(gpu: Backend): void {
  /**
   * f on the reference (host copies of `inputs`) and on webgpu (uploads), then every storage
   * f returns (outputs, or in-place targets) compared.
   */
  async function agree(what: string, inputs: TypedArray[], f: (b: Backend, s: Storage[]) => (Storage | null)[], tol = 2e-5): Promise<void> {
    const expected = f(
      ref,
      inputs.map((a) => a.slice()),
    );
    const outs = f(
      gpu,
      inputs.map((a) => gpu.fromArray(a.slice())),
    );
    assert.equal(outs.length, expected.length);
    for (let i = 0; i < outs.length; i++) {
      const o = outs[i];
      const e = expected[i];
      if (!o || !e) {
        assert.equal(o, e, `${what} output ${i}: null mismatch`);
        continue;
      }
      const [a] = await readAll(gpu, [o]);
      close(a!, e, `${what} output ${i}`, tol);
    }
  }

  describe('webgpu vs reference: elementwise', () => {
    // tanh over ±12 here: the WGSL tanh is checked well into saturation
    const unaryOps = UNARY_CASES.map(([op, lo, hi]): [UnaryOp, number, number] => (op === 'tanh' ? [op, -12, 12] : [op, lo, hi]));
    test('unary and unaryBackward, every op (f32; i32 for neg / abs / square)', async () => {
      for (const [op, lo, hi] of unaryOps) {
        for (const n of [0, 1, 130]) {
          await agree(
            `${op} n=${n}`,
            [f32(n, 3 + n, lo, hi), f32(n, 7 + n)],
            (b, [x, dy]) => [b.unary(op, x!), b.unaryBackward(op, x!, dy!)],
            3e-5,
          );
        }
      }
      for (const op of ['neg', 'abs', 'square'] as UnaryOp[])
        await agree(`${op} i32`, [Int32Array.from([-3, 0, 2, 7])], (b, [x]) => [b.unary(op, x!)]);
    });

    const binaryOps: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'];
    test('binary with broadcast strides, every op; i32 operands; a scalar', async () => {
      for (const op of binaryOps) {
        // a [3, 1, 4] and b [1, 5, 4] -> [3, 5, 4]; pow gets positive bases and one negative with integral exponents
        const a = op === 'pow' ? Float32Array.from([...rand(11, 5, 0.1, 2), -2]) : tied(12, 5);
        const b = op === 'pow' ? Float32Array.from(rand(20, 6, -2, 3).map((v, i) => (i % 4 === 3 ? Math.round(v) : v))) : tied(20, 6);
        await agree(`${op} broadcast`, [a, b], (be, [x, y]) => [be.binary(op, x!, [4, 0, 1], y!, [0, 4, 1], [3, 5, 4], 'f32')], 3e-5);
      }
      for (const op of ['add', 'mul', 'div', 'maximum', 'lt'] as BinaryOp[]) {
        await agree(`${op} i32`, [Int32Array.from([7, -7, 3, 0]), Int32Array.from([2, 3, -2, 5])], (be, [x, y]) => [
          be.binary(op, x!, [1], y!, [1], [4], 'i32'),
        ]);
      }
      await agree('mul f32 x i32 scalar', [f32(6, 9), Int32Array.from([3])], (be, [x, y]) => [
        be.binary('mul', x!, [3, 1], y!, [0, 0], [2, 3], 'f32'),
      ]);
      await agree('maximum NaN', [Float32Array.from([NaN, 1, 2]), Float32Array.from([0, NaN, 1])], (be, [x, y]) => [
        be.binary('maximum', x!, [1], y!, [1], [3], 'f32'),
      ]);
    });

    test('where, clamp, cast, full, copy', async () => {
      await agree('where', [Int32Array.from([1, 0, 1]), f32(12, 1), f32(4, 2)], (b, [c, x, y]) => [
        b.where(c!, [1, 0], x!, [4, 1], y!, [0, 1], [3, 4]),
      ]);
      await agree('clamp', [f32(50, 3, -3, 3)], (b, [x]) => [b.clamp(x!, -1, 0.5), b.clamp(x!, -Infinity, 0), b.clamp(x!, 0.25, Infinity)]);
      await agree('cast', [Float32Array.from([-2.7, -0.5, 0, 0.5, 2.7, 1e6]), Int32Array.from([-3, 0, 9])], (b, [x, i]) => [
        b.cast(x!, 'i32'),
        b.cast(i!, 'f32'),
        b.cast(x!, 'f32'),
      ]);
      await agree('full / copy', [f32(9, 4)], (b, [x]) => [b.full('f32', 70, 2.5), b.full('i32', 5, -4), b.full('f32', 0, 1), b.copy(x!)]);
    });
  });

  describe('webgpu vs reference: reductions, scans, row-wise', () => {
    const shapes: [number, number, number][] = [
      [2, 5, 3],
      [1, 150, 1],
      [3, 1, 2],
      [2, 0, 2],
    ];
    test('reduce (sum / max / min / logsumexp), argmax / argmin with ties, cumsum both ways', async () => {
      for (const [o, n, i] of shapes) {
        const len = o * n * i;
        for (const op of ['sum', 'max', 'min', 'logsumexp'] as ReduceOp[]) {
          await agree(`${op} [${o},${n},${i}]`, [f32(len, 13 + n, -3, 3)], (b, [x]) => [b.reduce(op, x!, o, n, i)], 3e-5);
        }
        if (n > 0)
          await agree(`argReduce [${o},${n},${i}]`, [tied(len, 17)], (b, [x]) => [
            b.argReduce('argmax', x!, o, n, i),
            b.argReduce('argmin', x!, o, n, i),
          ]);
        await agree(
          `cumsum [${o},${n},${i}]`,
          [f32(len, 19)],
          (b, [x]) => [b.cumsum(x!, o, n, i, false), b.cumsum(x!, o, n, i, true)],
          1e-4,
        );
      }
      await agree('max with NaN', [Float32Array.from([1, NaN, 3, 2])], (b, [x]) => [
        b.reduce('max', x!, 1, 4, 1),
        b.reduce('min', x!, 1, 4, 1),
      ]);
      await agree('sum i32', [Int32Array.from([1, 2, 3, 4, 5, 6])], (b, [x]) => [b.reduce('sum', x!, 2, 3, 1)]);
    });

    test('softmax / log-softmax and backward; layerNorm / rmsNorm with and without affine, backward', async () => {
      for (const [rows, n] of [
        [3, 7],
        [2, 130],
        [1, 1],
      ] as const) {
        for (const log of [false, true]) {
          await agree(`softmax log=${log} [${rows},${n}]`, [f32(rows * n, 23, -4, 4), f32(rows * n, 29)], (b, [x, dy]) => {
            const y = b.softmax(x!, rows, n, log);
            return [y, b.softmaxBackward(y, dy!, rows, n, log)];
          });
        }
        for (const affine of [false, true]) {
          const inputs = [f32(rows * n, 31, -2, 2), f32(n, 37, 0.5, 1.5), f32(n, 41), f32(rows * n, 43)];
          await agree(
            `layerNorm affine=${affine} [${rows},${n}]`,
            inputs,
            (b, [x, w, bias, dy]) => {
              const r = b.layerNorm(x!, affine ? w! : null, affine ? bias! : null, rows, n, 1e-5);
              const g = b.layerNormBackward(dy!, x!, affine ? w! : null, r.mean, r.rstd, rows, n, affine);
              return [r.y, r.mean, r.rstd, g.dx, g.dw, g.db];
            },
            1e-4,
          );
          await agree(
            `rmsNorm affine=${affine} [${rows},${n}]`,
            inputs,
            (b, [x, w, , dy]) => {
              const r = b.rmsNorm(x!, affine ? w! : null, rows, n, 1e-6);
              const g = b.rmsNormBackward(dy!, x!, affine ? w! : null, r.rstd, rows, n);
              return [r.y, r.rstd, g.dx, g.dw];
            },
            1e-4,
          );
        }
      }
    });
  });

  describe('webgpu vs reference: matmul, layout, indexing, selection, attention, optimiser', () => {
    test('matmul: every transpose, batch strides (0 broadcasts), edge tiles', async () => {
      for (const [m, k, n] of [
        [33, 17, 35],
        [1, 1, 1],
        [5, 0, 3],
        [2, 40, 3],
      ] as const) {
        for (const ta of [false, true]) {
          for (const tb of [false, true]) {
            await agree(
              `matmul ${m}x${k}x${n} ta=${ta} tb=${tb}`,
              [f32(2 * m * k, 47), f32(k * n, 53)],
              (b, [x, y]) => [b.matmul(x!, y!, 2, m, k, n, ta, tb, m * k, 0)],
              1e-4,
            );
          }
        }
      }
    });

    test('permute, sliceCopy, sliceAddInPlace', async () => {
      const shape = [2, 3, 4, 5];
      await agree('permute', [f32(120, 59)], (b, [x]) => [b.permute(x!, shape, [2, 0, 3, 1]), b.permute(x!, shape, [0, 1, 2, 3])]);
      await agree('sliceCopy', [f32(120, 61)], (b, [x]) => [b.sliceCopy(x!, shape, [1, 0, 2, 1], [1, 3, 2, 3])]);
      await agree('sliceAddInPlace', [f32(120, 67), f32(18, 71)], (b, [t, s]) => {
        b.sliceAddInPlace(t!, shape, [1, 0, 2, 1], s!, [1, 3, 2, 3]);
        return [t!];
      });
    });

    test('indexSelect / indexAddInPlace (repeated indices), gather / scatterAddInPlace', async () => {
      const [o, n, inner, m] = [2, 5, 3, 7];
      await agree('indexSelect / indexAdd', [f32(o * n * inner, 73), ints(m, 79, n), f32(o * m * inner, 83)], (b, [x, idx, src]) => {
        const t = b.copy(x!);
        b.indexAddInPlace(t, o, n, inner, idx!, src!);
        return [b.indexSelect(x!, o, n, inner, idx!), t];
      });
      await agree(
        'gather / scatterAdd',
        [f32(o * n * inner, 89), ints(o * m * inner, 97, n), f32(o * m * inner, 101)],
        (b, [x, idx, src]) => {
          const t = b.copy(x!);
          b.scatterAddInPlace(t, o, n, inner, idx!, src!, m);
          return [b.gather(x!, o, n, inner, idx!, m), t];
        },
      );
    });

    test('topk and argsort: ties keep the lower index first, NaN sorts as the largest', async () => {
      const x = tied(4 * 9, 103);
      x[3] = NaN;
      for (const largest of [true, false]) {
        await agree(`topk / argsort largest=${largest}`, [x], (b, [s]) => {
          const r = b.topk(s!, 4, 9, 3, largest);
          return [r.values, r.indices, b.argsort(s!, 4, 9, largest)];
        });
      }
    });

    test('attention forward and backward, causal and not, tq != tk', async () => {
      for (const [bh, tq, tk, d] of [
        [2, 5, 7, 4],
        [1, 6, 3, 8],
        [3, 4, 4, 3],
      ] as const) {
        for (const causal of [true, false]) {
          await agree(
            `attention bh=${bh} tq=${tq} tk=${tk} d=${d} causal=${causal}`,
            [f32(bh * tq * d, 107), f32(bh * tk * d, 109), f32(bh * tk * d, 113), f32(bh * tq * d, 127)],
            (b, [q, k, v, dout]) => {
              const r = b.attention(q!, k!, v!, bh, tq, tk, d, 0.5, causal);
              const g = b.attentionBackward(q!, k!, v!, r.out, r.lse, dout!, bh, tq, tk, d, 0.5, causal);
              return [r.out, r.lse, g.dq, g.dk, g.dv];
            },
            1e-4,
          );
        }
      }
    });

    test('adamwInPlace and axpyInPlace mutate their targets as the reference does', async () => {
      const h = {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weightDecay: 0.1,
        biasCorrection1: 1 - 0.9 ** 3,
        biasCorrection2: 1 - 0.99 ** 3,
      };
      await agree('adamw / axpy', [f32(100, 131), f32(100, 137), f32(100, 139, 0, 0.1), f32(100, 149, 0, 0.01)], (b, [p, g, m, v]) => {
        b.adamwInPlace(p!, g!, m!, v!, h);
        const acc = b.copy(g!);
        b.axpyInPlace(acc, p!, -0.5);
        return [p!, m!, v!, acc];
      });
    });
  });

  describe('webgpu vs reference: grids past 65535 workgroups (spread over y)', () => {
    test('a per-element op and a per-row reduction over more workgroups than one dimension holds', async () => {
      const n = 65535 * 64 + 100;
      await agree(`neg n=${n}`, [f32(n, 151)], (b, [x]) => [b.unary('neg', x!)]);
      await agree('sum of 70000 rows', [f32(140000, 157)], (b, [x]) => [b.reduce('sum', x!, 70000, 2, 1)]);
    });
  });

  describe('webgpu: errors', () => {
    test('f64 is refused with a message that says WebGPU has none', () => {
      assert.throws(() => gpu.fromArray(new Float64Array(2)), /f64 is not available on WebGPU/);
      assert.throws(() => gpu.full('f64', 2, 0), /f64 is not available on WebGPU/);
    });
    test('readSync points to await t.data()', () => {
      assert.throws(() => gpu.readSync(gpu.full('f32', 1, 0)), /await t\.data\(\)/);
    });
    test('a tensor too large for a binding names its size and the device limit', () => {
      assert.throws(() => gpu.full('f32', 2 ** 30, 0), /1073741824 elements needs \d+ bytes; this device binds at most \d+/);
    });
  });
}
