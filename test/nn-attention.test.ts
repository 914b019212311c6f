import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CausalSelfAttention, Generator, type Tensor, concat, manualSeed, normal_ } from '../src/index.js';
import { assertClose, forEachBackend, randF64 } from './helpers/gradcheck.js';

function gradsOf(m: CausalSelfAttention, x: Tensor): { y: Float64Array; grads: Float64Array[]; dx: Float64Array } {
  m.zeroGrad();
  x.grad = null;
  const y = m.forward(x);
  const w = randF64([...y.shape], 99);
  y.mul(w).sum().backward();
  return {
    y: Float64Array.from(y.dataSync()),
    grads: m.parameters().map((p) => Float64Array.from(p.grad!.dataSync())),
    dx: Float64Array.from(x.grad!.dataSync()),
  };
}

forEachBackend('CausalSelfAttention', () => {
  test('fused and composed paths agree (dropout 0), forward and backward', () => {
    manualSeed(3);
    const m = new CausalSelfAttention({ dModel: 12, nHead: 3, dtype: 'f64' });
    const x = randF64([2, 5, 12], 5).requiresGrad_();
    m.impl = 'fused';
    const a = gradsOf(m, x);
    m.impl = 'composed';
    const b = gradsOf(m, x);
    assertClose(a.y, b.y, 1e-12, 1e-10, 'y');
    assertClose(a.dx, b.dx, 1e-12, 1e-10, 'dx');
    a.grads.forEach((g, i) => assertClose(g, b.grads[i]!, 1e-12, 1e-10, `grad ${m.namedParameters()[i]![0]}`));
  });

  test('matches a per-head hand computation', () => {
    manualSeed(4);
    const [B, T, D, H] = [1, 4, 6, 2];
    const m = new CausalSelfAttention({ dModel: D, nHead: H, dtype: 'f64', bias: false });
    const x = randF64([B, T, D], 6);
    const y = m.forward(x).dataSync();
    const X = x.dataSync();
    const Wqkv = m.qkv.weight.dataSync();
    const Wo = m.proj.weight.dataSync();
    const dh = D / H;
    const qkv = (t: number, o: number) => {
      let s = 0;
      for (let i = 0; i < D; i++) s += X[t * D + i]! * Wqkv[o * D + i]!;
      return s;
    };
    const merged = new Float64Array(T * D);
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const scores: number[] = [];
        for (let u = 0; u <= t; u++) {
          let s = 0;
          for (let d = 0; d < dh; d++) s += qkv(t, h * dh + d) * qkv(u, D + h * dh + d);
          scores.push(s / Math.sqrt(dh));
        }
        const mx = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - mx));
        const z = e.reduce((p, v) => p + v, 0);
        for (let d = 0; d < dh; d++) {
          let s = 0;
          for (let u = 0; u <= t; u++) s += (e[u]! / z) * qkv(u, 2 * D + h * dh + d);
          merged[t * D + h * dh + d] = s;
        }
      }
    }
    const expected = new Float64Array(T * D);
    for (let t = 0; t < T; t++)
      for (let o = 0; o < D; o++) for (let i = 0; i < D; i++) expected[t * D + o]! += merged[t * D + i]! * Wo[o * D + i]!;
    assertClose(y, expected, 1e-12, 1e-10, 'attention');
  });

  test('causal: outputs at t do not depend on later positions', () => {
    const m = new CausalSelfAttention({ dModel: 8, nHead: 2, dtype: 'f64' });
    const x = randF64([1, 6, 8], 7);
    const y1 = m.forward(x).dataSync().slice();
    const x2 = concat([x.narrow(1, 0, 4), normal_(randF64([1, 2, 8], 1), 0, 5, new Generator(1))], 1);
    const y2 = m.forward(x2).dataSync();
    assertClose(y2.subarray(0, 4 * 8), y1.subarray(0, 4 * 8), 1e-12, 1e-12, 'prefix');
    assert.ok(Math.abs(y2[5 * 8]! - y1[5 * 8]!) > 1e-6, 'the perturbed positions do change');
  });

  test('attention dropout: composed path in training, fused in eval; seeded', () => {
    const m = new CausalSelfAttention({ dModel: 8, nHead: 2, dropout: 0.5, dtype: 'f64' });
    const x = randF64([2, 5, 8], 8);
    m.eval();
    const yEval = m.forward(x).dataSync().slice();
    m.impl = 'fused';
    assertClose(m.forward(x).dataSync(), yEval, 0, 0, 'eval is deterministic');
    m.impl = 'auto';
    m.train();
    manualSeed(11);
    const yTrain = m.forward(x).dataSync().slice();
    manualSeed(11);
    assert.deepEqual(m.forward(x).dataSync(), yTrain);
    assert.notDeepEqual([...yTrain], [...yEval]);
  });

  test('config errors name the field and value', () => {
    assert.throws(() => new CausalSelfAttention({ dModel: 10, nHead: 3 }), /dModel \(10\) must be divisible by nHead \(3\)/);
    assert.throws(() => new CausalSelfAttention({ dModel: 8, nHead: 0 }), /nHead must be an integer >= 1 \(got 0\)/);
    assert.throws(() => new CausalSelfAttention({ dModel: 8, nHead: 2, dropout: 1.5 }), /dropout must be in \[0, 1\) \(got 1.5\)/);
  });
});
