import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Parameter, clipGradNorm, tensor, zeros } from '../src/index.js';

describe('clipGradNorm', () => {
  test('global L2 norm over all grads; scales by maxNorm / (norm + 1e-6) when above', () => {
    const a = new Parameter(zeros([3]));
    const b = new Parameter(zeros([2, 2], { dtype: 'f64' }));
    const c = new Parameter(zeros([2])); // no grad: ignored
    a.grad = tensor([3, 0, -4]);
    b.grad = tensor(
      [
        [1, 2],
        [-2, 4],
      ],
      { dtype: 'f64' },
    );
    const norm = Math.sqrt(9 + 16 + 1 + 4 + 4 + 16); // sqrt(50)
    const total = clipGradNorm([a, b, c], 1);
    assert.equal(total, norm);
    const coef = 1 / (norm + 1e-6);
    assert.deepEqual(
      [...b.grad!.dataSync()],
      [1, 2, -2, 4].map((v) => v * coef),
    );
    const ga = a.grad!.dataSync();
    [3, 0, -4].forEach((v, i) => assert.ok(Math.abs(ga[i]! - v * coef) < 1e-7));
    assert.equal(c.grad, null);
    const after = Math.sqrt([...ga, ...b.grad!.dataSync()].reduce((p, v) => p + v * v, 0));
    assert.ok(Math.abs(after - 1) < 1e-6);
  });

  test('below the threshold grads are untouched; shared grad tensors are not scaled twice', () => {
    const a = new Parameter(zeros([2]));
    a.grad = tensor([0.3, 0.4]);
    const g = a.grad;
    assert.ok(Math.abs(clipGradNorm([a], 1) - 0.5) < 1e-7);
    assert.equal(a.grad, g);
    const p = new Parameter(zeros([2]));
    const q = new Parameter(zeros([2]));
    p.grad = q.grad = tensor([3, 4]);
    assert.ok(Math.abs(clipGradNorm([p, q], 1) - Math.sqrt(50)) < 1e-6);
    const coef = 1 / (Math.sqrt(50) + 1e-6);
    for (const t of [p, q]) assert.ok(Math.abs(t.grad!.dataSync()[0]! - 3 * coef) < 1e-7);
    assert.throws(() => clipGradNorm([p], -1), /maxNorm must be >= 0/);
  });
});
