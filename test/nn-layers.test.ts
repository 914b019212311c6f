import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Dropout, Embedding, GELU, LayerNorm, Linear, RMSNorm, manualSeed, tensor } from '../src/index.js';
import { assertClose, forEachBackend, randF64 } from './helpers/gradcheck.js';

forEachBackend('nn layers', () => {
  test('Linear forward = x Wᵀ + b by hand loops; grads reach W and b', () => {
    const lin = new Linear(5, 3, { dtype: 'f64' });
    const x = randF64([2, 4, 5], 11);
    const y = lin.forward(x);
    assert.deepEqual(y.shape, [2, 4, 3]);
    const X = x.dataSync();
    const W = lin.weight.dataSync();
    const B = lin.bias!.dataSync();
    const expected = new Float64Array(8 * 3);
    for (let r = 0; r < 8; r++) {
      for (let o = 0; o < 3; o++) {
        let s = B[o]!;
        for (let i = 0; i < 5; i++) s += X[r * 5 + i]! * W[o * 5 + i]!;
        expected[r * 3 + o] = s;
      }
    }
    assertClose(y.dataSync(), expected, 1e-12, 1e-12, 'linear');
    y.sum().backward();
    // d(sum y)/dW[o, i] = sum over rows of x[r, i]; d/db[o] = rows
    const gw = new Float64Array(15);
    for (let o = 0; o < 3; o++) for (let i = 0; i < 5; i++) for (let r = 0; r < 8; r++) gw[o * 5 + i]! += X[r * 5 + i]!;
    assertClose(lin.weight.grad!.dataSync(), gw, 1e-12, 1e-12, 'dW');
    assertClose(lin.bias!.grad!.dataSync(), [8, 8, 8], 1e-12, 0, 'db');
    assert.equal(new Linear(2, 2, { bias: false }).bias, null);
    assert.throws(() => lin.forward(randF64([2, 4], 1)), /last axis must be 5 \(got shape \[2, 4\]\)/);
  });

  test('LayerNorm forward by hand (biased variance), with affine params', () => {
    const ln = new LayerNorm(6, { dtype: 'f64', eps: 1e-5 });
    ln.weight!.storage.set([1, 2, 3, 0.5, -1, 1]);
    ln.bias!.storage.set([0, 0.1, 0.2, 0.3, 0.4, 0.5]);
    const x = randF64([3, 6], 4, -2, 2);
    const y = ln.forward(x).dataSync();
    const X = x.dataSync();
    const W = ln.weight!.dataSync();
    const B = ln.bias!.dataSync();
    const expected: number[] = [];
    for (let r = 0; r < 3; r++) {
      const row = Array.from({ length: 6 }, (_, i) => X[r * 6 + i]!);
      const mu = row.reduce((p, v) => p + v, 0) / 6;
      const variance = row.reduce((p, v) => p + (v - mu) ** 2, 0) / 6;
      row.forEach((v, i) => expected.push(((v - mu) / Math.sqrt(variance + 1e-5)) * W[i]! + B[i]!));
    }
    assertClose(y, expected, 1e-12, 1e-12, 'layerNorm');
    const plain = new LayerNorm(6, { elementwiseAffine: false });
    assert.equal(plain.parameters().length, 0);
    assert.equal(new LayerNorm(6, { bias: false }).parameters().length, 1);
  });

  test('RMSNorm forward by hand', () => {
    const n = new RMSNorm(4, { dtype: 'f64', eps: 1e-6 });
    const x = randF64([2, 4], 8);
    const X = x.dataSync();
    const expected: number[] = [];
    for (let r = 0; r < 2; r++) {
      let ms = 0;
      for (let i = 0; i < 4; i++) ms += X[r * 4 + i]! ** 2 / 4;
      for (let i = 0; i < 4; i++) expected.push(X[r * 4 + i]! / Math.sqrt(ms + 1e-6));
    }
    assertClose(n.forward(x).dataSync(), expected, 1e-12, 1e-12, 'rmsNorm');
  });

  test('Embedding looks up rows', () => {
    const e = new Embedding(5, 3);
    const W = e.weight.dataSync();
    const y = e.forward(
      tensor(
        [
          [4, 0],
          [2, 2],
        ],
        { dtype: 'i32' },
      ),
    );
    assert.deepEqual(y.shape, [2, 2, 3]);
    const expected = [4, 0, 2, 2].flatMap((id) => [W[id * 3]!, W[id * 3 + 1]!, W[id * 3 + 2]!]);
    assert.deepEqual([...y.dataSync()], expected);
    assert.throws(() => e.forward(tensor([1])), /ids must have dtype i32/);
  });

  test('Dropout: identity in eval, inverted scaling in training, seeded', () => {
    const d = new Dropout(0.25);
    const x = randF64([1000], 3, 1, 2);
    d.eval();
    assert.equal(d.forward(x), x);
    d.train();
    manualSeed(7);
    const y = d.forward(x).dataSync();
    manualSeed(7);
    const y2 = d.forward(x).dataSync();
    assert.deepEqual(y, y2);
    const X = x.dataSync();
    let zerosCount = 0;
    for (let i = 0; i < y.length; i++) {
      if (y[i] === 0) zerosCount++;
      else assert.ok(Math.abs(y[i]! - X[i]! / 0.75) < 1e-12);
    }
    assert.ok(zerosCount > 180 && zerosCount < 320, `dropped ${zerosCount}`);
    assert.throws(() => new Dropout(1), /p must be in \[0, 1\) \(got 1\)/);
  });

  test('GELU (exact) by hand', () => {
    const x = tensor([-2, -0.5, 0, 0.7, 3], { dtype: 'f64' });
    // x * Phi(x): Phi values from a table (scipy.stats.norm.cdf)
    const cdf = [0.022750131948179195, 0.3085375387259869, 0.5, 0.758036347776927, 0.9986501019683699];
    assertClose(
      new GELU().forward(x).dataSync(),
      [-2, -0.5, 0, 0.7, 3].map((v, i) => v * cdf[i]!),
      1e-7,
      1e-7,
      'gelu',
    );
  });
});
