// tensor/gc.ts: gradients dropped by zeroGrad() are freed before a kernel allocates new large
// outputs (so two steps' gradients are never resident at once).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { zeros } from '../src/ops/creation.js';
import { collectBeforeLargeOutputs } from '../src/tensor/gc.js';

const BIG = 128 << 20;

test('collectBeforeLargeOutputs frees the gradients zeroGrad() dropped', async () => {
  const p = zeros([BIG / 4]).requiresGrad_();
  p.grad = zeros([BIG / 4]);
  const storage = new WeakRef(p.grad.storage as object);
  p.zeroGrad();
  assert.equal(p.grad, null);
  await new Promise((r) => setImmediate(r)); // WeakRef targets stay alive until the current job ends
  collectBeforeLargeOutputs(BIG);
  await new Promise((r) => setImmediate(r));
  assert.ok(storage.deref() === undefined, 'the dropped gradient is still reachable after the collection');
});
