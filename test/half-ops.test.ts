// bf16 / f16 ops on each backend against the same ops in f64 on the same (rounded) inputs.
// An op computes in f32 and rounds its result once, so each element is within half an ulp of
// the format of the exact value, plus f32's own error (tiny beside it): the tolerance is one
// ulp of the format relative to the value, plus 1e-5 of the output's largest magnitude.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HalfDType } from '../src/backend/types.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { randn, tensor } from '../src/ops/creation.js';
import * as ops from '../src/ops/index.js';
import { Linear } from '../src/nn/layers.js';
import { forEachBackend } from './helpers/gradcheck.js';

const MANT: Record<HalfDType, number> = { bf16: 7, f16: 10 };

function assertClose(got: Tensor, want: Tensor, dtype: HalfDType, what: string, ulps = 1): void {
  const expectDtype = dtype;
  assert.equal(got.dtype, expectDtype, `${what}: dtype`);
  const g = got.dataSync();
  const w = want.dataSync();
  assert.equal(g.length, w.length, what);
  let max = 0;
  for (const v of w) max = Math.max(max, Math.abs(v));
  const ulp = ulps * 2 ** -MANT[dtype];
  for (let i = 0; i < w.length; i++) {
    const tol = Math.abs(w[i]!) * ulp + 1e-5 * max;
    assert.ok(Math.abs(g[i]! - w[i]!) <= tol, `${what} [${i}]: ${g[i]} vs f64 ${w[i]} (tol ${tol})`);
  }
}

/** A random tensor rounded to `dtype`, and the same values in f64. */
function pair(shape: number[], dtype: HalfDType, seed: number, scale = 1): [Tensor, Tensor] {
  const h = ops.mul(randn(shape, { generator: new Generator(seed) }), scale).to(dtype);
  return [h, h.to('f64')];
}

for (const dtype of ['bf16', 'f16'] as const) {
  forEachBackend(`${dtype} ops against f64`, () => {
    test('unary, binary (with broadcast and a scalar), where, clamp', () => {
      const [x, x64] = pair([5, 7], dtype, 1);
      const [y, y64] = pair([1, 7], dtype, 2);
      const unary = {
        exp: ops.exp,
        tanh: ops.tanh,
        sigmoid: ops.sigmoid,
        silu: ops.silu,
        relu: ops.relu,
        gelu: ops.gelu,
        abs: ops.abs,
        neg: ops.neg,
        square: ops.square,
      };
      for (const [name, f] of Object.entries(unary)) assertClose(f(x), f(x64), dtype, name);
      assertClose(ops.add(x, y), ops.add(x64, y64), dtype, 'add');
      assertClose(ops.mul(x, y), ops.mul(x64, y64), dtype, 'mul');
      assertClose(ops.div(x, 3), ops.div(x64, 3), dtype, 'div scalar');
      assertClose(ops.where(ops.gt(x, 0), x, y), ops.where(ops.gt(x64, 0), x64, y64), dtype, 'where');
      assertClose(ops.clamp(x, -0.5, 0.5), ops.clamp(x64, -0.5, 0.5), dtype, 'clamp');
    });

    test('reductions accumulate in f32: sum / mean / max over 4096 elements, cumsum', () => {
      const [x, x64] = pair([3, 4096], dtype, 3);
      assertClose(ops.sum(x, -1), ops.sum(x64, -1), dtype, 'sum');
      assertClose(ops.mean(x, -1), ops.mean(x64, -1), dtype, 'mean');
      assertClose(ops.max(x, -1), ops.max(x64, -1), dtype, 'max');
      const [c, c64] = pair([2, 64], dtype, 4);
      assertClose(ops.cumsum(c, -1), ops.cumsum(c64, -1), dtype, 'cumsum');
    });

    test('matmul (k = 512: f32 accumulation), batched and transposed, and its gradients', () => {
      const [a, a64] = pair([6, 512], dtype, 5);
      const [b, b64] = pair([512, 9], dtype, 6);
      assertClose(ops.matmul(a, b), ops.matmul(a64, b64), dtype, 'matmul');
      const [p, p64] = pair([2, 4, 8], dtype, 7);
      const [q, q64] = pair([2, 5, 8], dtype, 8);
      assertClose(ops.matmul(p, q, { transB: true }), ops.matmul(p64, q64, { transB: true }), dtype, 'batched transB');
      a.requiresGrad_();
      b.requiresGrad_();
      a64.requiresGrad_();
      b64.requiresGrad_();
      ops.sum(ops.matmul(a, b)).backward();
      ops.sum(ops.matmul(a64, b64)).backward();
      assertClose(a.grad!, a64.grad!, dtype, 'dA');
      assertClose(b.grad!, b64.grad!, dtype, 'dB');
    });

    test('softmax / logSoftmax / layerNorm / rmsNorm / attention', () => {
      const [x, x64] = pair([4, 33], dtype, 9, 3);
      assertClose(ops.softmax(x), ops.softmax(x64), dtype, 'softmax');
      assertClose(ops.logSoftmax(x), ops.logSoftmax(x64), dtype, 'logSoftmax');
      const [w, w64] = pair([33], dtype, 10);
      const [bb, bb64] = pair([33], dtype, 11);
      assertClose(ops.layerNorm(x, w, bb), ops.layerNorm(x64, w64, bb64), dtype, 'layerNorm');
      assertClose(ops.rmsNorm(x, w), ops.rmsNorm(x64, w64), dtype, 'rmsNorm');
      const [q, q64] = pair([1, 2, 5, 8], dtype, 12);
      const [k, k64] = pair([1, 2, 5, 8], dtype, 13);
      const [v, v64] = pair([1, 2, 5, 8], dtype, 14);
      assertClose(
        ops.scaledDotProductAttention(q, k, v, { causal: true }),
        ops.scaledDotProductAttention(q64, k64, v64, { causal: true }),
        dtype,
        'attention',
      );
    });

    test('element moves keep the bits: permute, slice, indexSelect, gather, topk, concat', () => {
      const [x, x64] = pair([3, 4, 5], dtype, 15);
      assertClose(ops.permute(x, [2, 0, 1]), ops.permute(x64, [2, 0, 1]), dtype, 'permute');
      assertClose(ops.narrow(x, 1, 1, 2), ops.narrow(x64, 1, 1, 2), dtype, 'narrow');
      const idx = tensor([2, 0, 2], { dtype: 'i32' });
      assertClose(ops.indexSelect(x, 0, idx), ops.indexSelect(x64, 0, idx), dtype, 'indexSelect');
      assertClose(ops.topk(x, 2, -1).values, ops.topk(x64, 2, -1).values, dtype, 'topk');
      assert.deepEqual(ops.topk(x, 2, -1).indices.toArray(), ops.topk(x64, 2, -1).indices.toArray());
      assertClose(ops.concat([x, x], 0), ops.concat([x64, x64], 0), dtype, 'concat');
    });

    test('a Linear module in bf16 / f16 (Module.to): forward and parameter gradients in the module dtype', () => {
      const lin = new Linear(16, 4, { generator: new Generator(16) });
      const lin64 = new Linear(16, 4, { generator: new Generator(16) });
      lin.to(dtype);
      lin64.to('f64');
      lin64.loadStateDict(lin.stateDict()); // the rounded weights, in f64
      const [x, x64] = pair([3, 16], dtype, 17);
      const y = lin.forward(x);
      const y64 = lin64.forward(x64);
      assertClose(y, y64, dtype, 'linear', 2); // two roundings: the GEMM's and the bias add's
      ops.sum(y).backward();
      ops.sum(y64).backward();
      assertClose(lin.weight.grad!, lin64.weight.grad!, dtype, 'dW');
      assertClose(lin.bias!.grad!, lin64.bias!.grad!, dtype, 'db');
    });
  });
}
