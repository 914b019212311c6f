// The native backend's host-array helpers of a training step against their JavaScript twins,
// bit for bit: dropout's mask (native/ops/dropout.c vs src/ops/dropout.ts fillMask: the same
// xoshiro128** draws, the same generator state after) and clipping's sum of squares
// (native/ops/optim.c sumSquares vs src/optim/clip.ts addSquares: the same order of float64
// additions). Fails (does not skip) when the addon cannot load and CI is set.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createNativeBackend } from '../src/backend/native/backend.js';
import { addSquares } from '../src/optim/clip.js';
import { fillMask } from '../src/ops/dropout.js';
import { Generator } from '../src/tensor/random.js';

const loaded = createNativeBackend();
const native = loaded.backend;

if (!native) {
  const reason = `native addon not available: ${loaded.reason}`;
  if (process.env['CI']) test('native addon loads (required in CI)', () => assert.fail(reason));
  else test('native step helpers', { skip: reason }, () => {});
} else {
  test("dropoutMask: the JavaScript fill's mask and generator state, f32 and f64, every p", () => {
    for (const [n, p, seed] of [
      [0, 0.1, 1],
      [1, 0.5, 2],
      [1000, 0.1, 42],
      [4097, 0.9, 7],
      [65536, 1e-9, 3],
      [3000, 0.999999, 11],
    ] as const) {
      for (const F of [Float32Array, Float64Array]) {
        const keep = 1 / (1 - p);
        const threshold = p * 4294967296;
        const gJs = new Generator(seed);
        const gNative = new Generator(seed);
        gJs.normal(); // a cached Box-Muller spare must survive both
        gNative.normal();
        const js = new F(n);
        const nat = new F(n).fill(Number.NaN);
        fillMask(js, threshold, keep, gJs);
        native.dropoutMask!(nat, gNative.stateWords(), threshold, keep);
        assert.deepEqual(nat, js, `n ${n}, p ${p}, ${F.name}`);
        assert.deepEqual(gNative.getState(), gJs.getState());
        assert.equal(gNative.nextU32(), gJs.nextU32());
      }
    }
    assert.throws(
      () => native.dropoutMask!(new Float32Array(4), new Uint32Array(3), 0, 1),
      /dropoutMask: state must be a Uint32Array of 4/,
    );
  });

  test("sumSquares: the JavaScript loop's float64 sum, f32 and f64, over a wide range of magnitudes", () => {
    const g = new Generator(5);
    for (const F of [Float32Array, Float64Array]) {
      for (const n of [0, 1, 7, 100_003]) {
        const a = new F(n).map(() => g.normal() * 2 ** (g.int(80) - 40));
        for (const start of [0, 1.25, 1e30]) {
          assert.equal(native.sumSquares!(a, start), addSquares(start, a), `${F.name} n ${n} start ${start}`);
        }
      }
    }
  });
}
