// Forward values of the ops against closed forms and hand computations, and their errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as mk from '../src/index.js';
import { assertClose, forEachBackend } from './helpers/gradcheck.js';

const t = (data: number[], shape: number[], dtype: 'f32' | 'f64' | 'i32' = 'f32') => mk.tensor(data, { shape, dtype });

forEachBackend('ops forward', () => {
  test('broadcasting arithmetic follows NumPy rules', () => {
    const a = t([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = t([10, 20, 30], [3]);
    assert.deepEqual(a.add(b).toArray(), [
      [11, 22, 33],
      [14, 25, 36],
    ]);
    assert.deepEqual(a.mul(t([2, 3], [2, 1])).toArray(), [
      [2, 4, 6],
      [12, 15, 18],
    ]);
    assert.deepEqual(a.sub(1).div(2).toArray(), [
      [0, 0.5, 1],
      [1.5, 2, 2.5],
    ]);
    assert.deepEqual(t([1, 2], [2, 1]).add(t([10, 20, 30], [1, 3])).shape, [2, 3]);
  });

  test('unary math matches Math.*', () => {
    const xs = [-2.5, -1, -0.1, 0, 0.3, 1.7];
    const x = t(xs, [6], 'f64');
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    assertClose(x.exp().dataSync(), xs.map(Math.exp), 1e-12);
    assertClose(x.tanh().dataSync(), xs.map(Math.tanh), 1e-12);
    assertClose(x.sigmoid().dataSync(), xs.map(sig), 1e-12);
    assertClose(
      x.silu().dataSync(),
      xs.map((v) => v * sig(v)),
      1e-12,
    );
    assertClose(
      x.relu().dataSync(),
      xs.map((v) => Math.max(v, 0)),
      0,
    );
    assertClose(x.abs().dataSync(), xs.map(Math.abs), 0);
    // gelu(x) = x * Phi(x): known values of the standard normal CDF
    assertClose(t([1, -1, 2], [3], 'f64').gelu().dataSync(), [0.8413447460685429, -0.15865525393145707, 1.9544997361036416], 1e-12);
    assertClose(
      x.gelu('tanh').dataSync(),
      xs.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))),
      1e-12,
    );
    assertClose(
      x.clamp(-1, 1).dataSync(),
      xs.map((v) => Math.min(Math.max(v, -1), 1)),
      0,
    );
  });

  test('matmul equals the triple loop, with transposes and batches', () => {
    const a = t([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = t([7, 8, 9, 10, 11, 12], [3, 2]);
    assert.deepEqual(a.matmul(b).toArray(), [
      [58, 64],
      [139, 154],
    ]);
    assert.deepEqual(mk.matmul(b, a, { transA: true, transB: true }).toArray(), [
      [58, 139],
      [64, 154],
    ]);
    const batched = mk.matmul(mk.stack([a, a.mul(2)]), b);
    assert.deepEqual(batched.toArray(), [
      [
        [58, 64],
        [139, 154],
      ],
      [
        [116, 128],
        [278, 308],
      ],
    ]);
  });

  test('reductions, argmax ties to the lowest index, cumsum', () => {
    const x = t([3, 1, 3, 2, 5, 5], [2, 3]);
    assert.deepEqual(x.sum(1).toArray(), [7, 12]);
    assert.deepEqual(x.mean(0).toArray(), [2.5, 3, 4]);
    assert.deepEqual(x.max(1).toArray(), [3, 5]);
    assert.deepEqual(x.min().item(), 1);
    assert.deepEqual(x.argmax(1).toArray(), [0, 1]);
    assert.deepEqual(x.cumsum(1).toArray(), [
      [3, 4, 7],
      [2, 7, 12],
    ]);
    assertClose(x.logsumexp(1).dataSync(), [Math.log(2 * Math.exp(3) + Math.exp(1)), Math.log(Math.exp(2) + 2 * Math.exp(5))], 1e-5, 1e-6);
  });

  test('softmax rows sum to one and match exp(x)/sum', () => {
    const x = t([1, 2, 3, -1, 0, 1000], [2, 3], 'f64');
    const s = x.softmax().dataSync();
    const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
    assertClose(s.slice(0, 3), [Math.exp(1) / z, Math.exp(2) / z, Math.exp(3) / z], 1e-12);
    assertClose(s.slice(3), [0, 0, 1], 1e-12);
    assertClose(x.logSoftmax().dataSync().slice(0, 3), [1 - Math.log(z), 2 - Math.log(z), 3 - Math.log(z)], 1e-12);
  });

  test('topk sorts, ties to the lowest index; argsort is stable', () => {
    const x = t([1, 3, 3, 2, 3], [1, 5]);
    const { values, indices } = x.topk(3);
    assert.deepEqual(values.toArray(), [[3, 3, 3]]);
    assert.deepEqual(indices.toArray(), [[1, 2, 4]]);
    assert.deepEqual(x.argsort().toArray(), [[0, 3, 1, 2, 4]]);
    assert.deepEqual(x.argsort(-1, true).toArray(), [[1, 2, 4, 3, 0]]);
  });

  test('gather, scatterAdd, indexSelect, indexAdd, oneHot, where', () => {
    const x = t([1, 2, 3, 4, 5, 6], [2, 3]);
    const idx = t([2, 0, 1, 1], [2, 2], 'i32');
    assert.deepEqual(x.gather(1, idx).toArray(), [
      [3, 1],
      [5, 5],
    ]);
    assert.deepEqual(
      mk
        .zeros([2, 3])
        .scatterAdd(1, idx, t([1, 1, 1, 1], [2, 2]))
        .toArray(),
      [
        [1, 0, 1],
        [0, 2, 0],
      ],
    );
    assert.deepEqual(x.indexSelect(0, t([1, 1, 0], [3], 'i32')).toArray(), [
      [4, 5, 6],
      [4, 5, 6],
      [1, 2, 3],
    ]);
    assert.deepEqual(
      mk
        .zeros([3, 2])
        .indexAdd(0, t([2, 2], [2], 'i32'), t([1, 2, 3, 4], [2, 2]))
        .toArray(),
      [
        [0, 0],
        [0, 0],
        [4, 6],
      ],
    );
    assert.deepEqual(mk.oneHot(t([2, 0], [2], 'i32'), 3).toArray(), [
      [0, 0, 1],
      [1, 0, 0],
    ]);
    assert.deepEqual(mk.where(t([1, 0, 1], [3], 'i32'), t([1, 2, 3], [3]), -1).toArray(), [1, -1, 3]);
  });

  test('layerNorm and rmsNorm match the formulas', () => {
    const xs = [1, 2, 4, 7];
    const x = t(xs, [1, 4], 'f64');
    const mu = 3.5;
    const v = xs.reduce((p, q) => p + (q - mu) ** 2, 0) / 4;
    assertClose(
      mk.layerNorm(x, null, null, 1e-5).dataSync(),
      xs.map((q) => (q - mu) / Math.sqrt(v + 1e-5)),
      1e-12,
    );
    const ms = xs.reduce((p, q) => p + q * q, 0) / 4;
    assertClose(
      mk.rmsNorm(x, t([1, 2, 1, 2], [4], 'f64'), 1e-6).dataSync(),
      xs.map((q, i) => (q / Math.sqrt(ms + 1e-6)) * (i % 2 ? 2 : 1)),
      1e-12,
    );
  });

  test('crossEntropy equals -log softmax at the target, ignores, smooths', () => {
    const logits = t([1, 2, 3, 1, 1, 1], [2, 3], 'f64');
    const lse0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    const ce = mk.crossEntropy(logits, t([2, -100], [2], 'i32')).item();
    assertClose([ce], [lse0 - 3], 1e-12);
    const eps = 0.2;
    const smooth = mk.crossEntropy(logits, t([2, 0], [2], 'i32'), { labelSmoothing: eps }).item();
    const row0 = (1 - eps) * (lse0 - 3) + (eps / 3) * (3 * lse0 - 6);
    const row1 = Math.log(3);
    assertClose([smooth], [(row0 + row1) / 2], 1e-12);
  });

  test('causal attention: the first query sees only the first key', () => {
    const q = mk.randn([1, 1, 3, 4], { dtype: 'f64' });
    const k = mk.randn([1, 1, 3, 4], { dtype: 'f64' });
    const v = mk.randn([1, 1, 3, 4], { dtype: 'f64' });
    const out = mk.scaledDotProductAttention(q, k, v, { causal: true }).dataSync();
    assertClose(out.slice(0, 4), v.dataSync().slice(0, 4), 1e-12);
    // composed reference: softmax(q k^T / sqrt(d) + mask) v
    const scores = mk.matmul(q, k, { transB: true }).mul(0.5);
    const mask = t([0, -Infinity, -Infinity, 0, 0, -Infinity, 0, 0, 0], [3, 3], 'f64');
    const ref = mk.matmul(scores.add(mask).softmax(-1), v).dataSync();
    assertClose(out, ref, 1e-12);
  });

  test('errors name the op, the shapes and the expected dtype', () => {
    assert.throws(() => t([1, 2, 3], [3]).add(t([1, 2], [2])), /add: shapes \[3\] and \[2\] cannot be broadcast/);
    assert.throws(
      () => mk.matmul(mk.zeros([2, 3]), mk.zeros([4, 5])),
      /matmul: inner dimensions differ: a \[2, 3\] has k=3, b \[4, 5\] has k=4/,
    );
    assert.throws(() => mk.zeros([2, 3]).gather(1, mk.zeros([2, 1])), /gather: index must have dtype i32 \(got f32\)/);
    assert.throws(() => mk.crossEntropy(mk.zeros([2, 3]), mk.zeros([2])), /crossEntropy: targets must have dtype i32/);
    assert.throws(() => mk.zeros([2, 3]).reshape([4, 2]), /reshape: cannot view \[2, 3\] \(6 elements\) as \[4, 2\]/);
    assert.throws(() => mk.zeros([2, 3]).sum(2), /sum: axis 2 is out of range for a tensor of rank 2/);
    assert.throws(() => mk.zeros([2, 3]).topk(4), /topk: k must be an integer in \[0, 3\]/);
  });

  test('autograd: accumulation, zeroing, detach, noGrad, retainGrad', () => {
    const w = mk.tensor([1, 2, 3]).requiresGrad_();
    w.mul(w).sum().backward();
    w.mul(3).sum().backward();
    assert.deepEqual(Array.from(w.grad!.dataSync()), [5, 7, 9]); // 2w + 3
    w.zeroGrad();
    assert.equal(w.grad, null);
    const y = mk.noGrad(() => w.mul(2));
    assert.equal(y.requiresGrad, false);
    assert.equal(w.mul(2).detach().requiresGrad, false);
    const h = w.mul(2).retainGrad();
    h.sum().backward();
    assert.deepEqual(Array.from(h.grad!.dataSync()), [1, 1, 1]);
    assert.throws(() => mk.tensor([1, 2]).mul(2).backward(), /does not require grad/);
  });

  test('seeded RNG is reproducible', () => {
    mk.manualSeed(42);
    const a = mk.randn([5]).dataSync().slice();
    mk.manualSeed(42);
    assert.deepEqual(Array.from(mk.randn([5]).dataSync()), Array.from(a));
    const g = new mk.Generator(1);
    const s = g.getState();
    const first = g.uniform();
    g.setState(s);
    assert.equal(g.uniform(), first);
  });
});

test('forEachBackend switches the backend the tests run on', async () => {
  const { getBackend, availableBackends } = await import('../src/backend/index.js');
  assert.ok(availableBackends().includes(getBackend().name as 'native' | 'reference'));
});
