// Finite-difference (float64) gradient check of every differentiable op, on every backend.
import { test } from 'node:test';
import * as mk from '../src/index.js';
import { Generator, type Tensor } from '../src/index.js';
import { forEachBackend, gradcheck, randF64 } from './helpers/gradcheck.js';

const r = (shape: number[], seed: number, lo = -1, hi = 1) => randF64(shape, seed, lo, hi).requiresGrad_();
const ids = (values: number[], shape = [values.length]) => mk.tensor(values, { dtype: 'i32', shape });

forEachBackend('gradcheck', () => {
  const unary: [string, (x: Tensor) => Tensor, number, number][] = [
    ['neg', mk.neg, -1, 1],
    ['exp', mk.exp, -1, 1],
    ['log', mk.log, 0.5, 2],
    ['sqrt', mk.sqrt, 0.5, 2],
    ['rsqrt', mk.rsqrt, 0.5, 2],
    ['abs', mk.abs, -1, 1],
    ['tanh', mk.tanh, -2, 2],
    ['sigmoid', mk.sigmoid, -3, 3],
    ['silu', mk.silu, -3, 3],
    ['relu', mk.relu, -1, 1],
    ['gelu (erf)', (x) => mk.gelu(x), -3, 3],
    ['gelu (tanh)', (x) => mk.gelu(x, 'tanh'), -3, 3],
    ['square', mk.square, -2, 2],
    ['reciprocal', mk.reciprocal, 0.5, 2],
    ['clamp', (x) => mk.clamp(x, -0.5, 0.4), -1, 1],
    ['cast f64->f32->f64', (x) => mk.cast(mk.cast(x, 'f32'), 'f64').mul(1), -1, 1],
  ];
  for (const [name, f, lo, hi] of unary) {
    test(name, () => gradcheck(f, [r([3, 4], 1, lo, hi)], name.startsWith('cast') ? { atol: 1e-3, eps: 1e-3 } : {}));
  }

  test('add/sub/mul/div with broadcasting', () => {
    const a = r([2, 3, 4], 2);
    const b = r([3, 1], 3, 0.5, 1.5);
    gradcheck((x, y) => x.add(y), [a, b]);
    gradcheck((x, y) => x.sub(y), [a, b]);
    gradcheck((x, y) => x.mul(y), [a, b]);
    gradcheck((x, y) => x.div(y), [a, b]);
    gradcheck((x) => x.mul(2.5).add(1).div(3).sub(0.25), [a]);
  });

  test('pow (tensor and scalar exponents)', () => {
    gradcheck((x, y) => mk.pow(x, y), [r([2, 3], 4, 0.5, 2), r([2, 3], 5, -1, 2)]);
    gradcheck((x) => x.pow(3), [r([5], 6)]);
  });

  test('maximum / minimum', () => {
    gradcheck((x, y) => mk.maximum(x, y), [r([3, 4], 7), r([4], 8)]);
    gradcheck((x, y) => mk.minimum(x, y), [r([3, 4], 7), r([4], 8)]);
  });

  test('where', () => {
    const cond = ids([1, 0, 1, 0, 0, 1], [2, 3]);
    gradcheck((a, b) => mk.where(cond, a, b), [r([2, 3], 9), r([3], 10)]);
  });

  test('matmul: 2-D, transposes, batched, broadcast batch, rows of a 3-D tensor', () => {
    gradcheck((a, b) => mk.matmul(a, b), [r([3, 4], 11), r([4, 5], 12)]);
    gradcheck((a, b) => mk.matmul(a, b, { transA: true }), [r([4, 3], 13), r([4, 5], 14)]);
    gradcheck((a, b) => mk.matmul(a, b, { transB: true }), [r([3, 4], 15), r([5, 4], 16)]);
    gradcheck((a, b) => mk.matmul(a, b, { transA: true, transB: true }), [r([4, 3], 17), r([5, 4], 18)]);
    gradcheck((a, b) => mk.matmul(a, b), [r([2, 3, 4], 19), r([2, 4, 2], 20)]);
    gradcheck((a, b) => mk.matmul(a, b), [r([2, 2, 3, 4], 21), r([1, 4, 2], 22)]);
    gradcheck((a, b) => mk.matmul(a, b, { transB: true }), [r([2, 3, 4], 23), r([5, 4], 24)]);
    gradcheck((a, b) => mk.matmul(a, b, { transA: true }), [r([2, 4, 3], 25), r([4, 5], 26)]);
  });

  test('sum / mean / max / min / logsumexp over axes', () => {
    const x = r([2, 3, 4], 27);
    gradcheck((t) => t.sum(), [x]);
    gradcheck((t) => t.sum(1), [x]);
    gradcheck((t) => t.sum([0, 2], true), [x]);
    gradcheck((t) => t.mean(-1), [x]);
    gradcheck((t) => t.max(1), [x]);
    gradcheck((t) => t.min([0, 2]), [x]);
    gradcheck((t) => t.logsumexp(-1), [x]);
    gradcheck((t) => t.logsumexp(0, true), [x]);
  });

  test('cumsum', () => {
    gradcheck((t) => t.cumsum(1), [r([2, 5, 3], 28)]);
  });

  test('softmax / logSoftmax (last and inner axis)', () => {
    gradcheck((t) => t.softmax(-1), [r([3, 5], 29, -2, 2)]);
    gradcheck((t) => t.logSoftmax(-1), [r([3, 5], 30, -2, 2)]);
    gradcheck((t) => t.softmax(0), [r([4, 3], 31, -2, 2)]);
  });

  test('reshape / permute / transpose / broadcastTo', () => {
    const x = r([2, 3, 4], 32);
    gradcheck((t) => t.reshape([4, -1]).mul(t.reshape([4, 6])), [x]);
    gradcheck((t) => t.permute([2, 0, 1]), [x]);
    gradcheck((t) => t.transpose(0, 2), [x]);
    gradcheck((t) => t.broadcastTo([5, 2, 3, 4]), [x]);
  });

  test('slice / narrow / split / chunk / concat / stack', () => {
    const x = r([3, 5], 33);
    gradcheck((t) => t.slice(1, 1, -1), [x]);
    gradcheck((t) => t.narrow(0, 1, 2), [x]);
    gradcheck((t) => mk.concat(t.split([2, 3], 1).reverse(), 1), [x]);
    gradcheck((t) => mk.concat(t.chunk(2, 0), 0), [x]);
    gradcheck((a, b) => mk.concat([a, b, a], 0), [r([2, 3], 34), r([1, 3], 35)]);
    gradcheck((a, b) => mk.stack([a, b], 1), [r([2, 3], 36), r([2, 3], 37)]);
  });

  test('gather / scatterAdd / indexSelect / indexAdd / embedding', () => {
    const x = r([3, 4], 38);
    const gi = ids([0, 3, 3, 1, 2, 0], [3, 2]);
    gradcheck((t) => t.gather(1, gi), [x]);
    gradcheck((t, s) => t.scatterAdd(1, gi, s), [x, r([3, 2], 39)]);
    gradcheck((t) => t.indexSelect(0, ids([2, 0, 2])), [x]);
    gradcheck((t) => t.indexSelect(1, ids([3, 1])), [x]);
    gradcheck((t, s) => t.indexAdd(0, ids([1, 1, 0]), s), [x, r([3, 4], 40)]);
    gradcheck((w) => mk.embedding(w, ids([1, 2, 1, 0], [2, 2])), [x]);
  });

  test('topk (values) and sort', () => {
    gradcheck((t) => t.topk(2).values, [r([3, 5], 41)]);
    gradcheck((t) => t.topk(2, 0, false).values, [r([4, 3], 42)]);
    gradcheck((t) => t.sort(-1, true).values, [r([2, 4], 43)]);
  });

  test('layerNorm (with and without affine) and rmsNorm', () => {
    gradcheck((x, w, b) => mk.layerNorm(x, w, b), [r([3, 6], 44), r([6], 45), r([6], 46)]);
    gradcheck((x) => mk.layerNorm(x), [r([2, 5], 47)]);
    gradcheck((x, w) => mk.rmsNorm(x, w), [r([3, 6], 48), r([6], 49)]);
    gradcheck((x) => mk.rmsNorm(x), [r([2, 5], 50)]);
  });

  test('dropout (fixed mask from a seeded generator)', () => {
    gradcheck((x) => mk.dropout(x, 0.3, true, new Generator(7)), [r([4, 5], 51)]);
  });

  test('crossEntropy with ignore index and label smoothing', () => {
    const t = ids([2, -100, 0, 4]);
    gradcheck((l) => mk.crossEntropy(l, t), [r([4, 5], 52, -2, 2)]);
    gradcheck((l) => mk.crossEntropy(l, t, { labelSmoothing: 0.1 }), [r([4, 5], 53, -2, 2)]);
    gradcheck((l) => mk.crossEntropy(l, ids([1, 3], [1, 2]), { reduction: 'sum' }), [r([1, 2, 5], 54, -2, 2)]);
  });

  test('scaled dot-product attention (causal and full, Tq != Tk)', () => {
    gradcheck(
      (q, k, v) => mk.scaledDotProductAttention(q, k, v, { causal: true }),
      [r([1, 2, 4, 3], 55), r([1, 2, 4, 3], 56), r([1, 2, 4, 3], 57)],
    );
    gradcheck((q, k, v) => mk.scaledDotProductAttention(q, k, v), [r([2, 1, 3, 2], 58), r([2, 1, 5, 2], 59), r([2, 1, 5, 2], 60)]);
    gradcheck(
      (q, k, v) => mk.scaledDotProductAttention(q, k, v, { causal: true, scale: 0.7 }),
      [r([1, 1, 2, 3], 61), r([1, 1, 4, 3], 62), r([1, 1, 4, 3], 63)],
    );
  });
});
