// Cross-entropy's fused pick (src/ops/softmax.ts logSoftmaxPick, native rowwise.c) against the
// composed log-softmax + gather on the same backend: the same bits forward and backward, f32
// and f64, with extreme logits, NaN, -0 gradients (an ignored row) and a 2048-class vocabulary
// (several pool tasks); crossEntropy end to end; and the kernel's own argument checks.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { loadNativeAddon } from '../src/backend/native/addon.js';
import { type BackendName, getBackend, setBackend } from '../src/backend/index.js';
import { crossEntropy } from '../src/ops/loss.js';
import { fromArray } from '../src/ops/creation.js';
import { gather } from '../src/ops/indexing.js';
import { reshape, unsqueeze } from '../src/ops/shape.js';
import { logSoftmax, logSoftmaxPick } from '../src/ops/softmax.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';

const loaded = loadNativeAddon();
const skip = loaded.addon ? false : `native addon not available: ${loaded.reason}`;

function logits(rows: number, n: number, dtype: 'f32' | 'f64', seed: number, nan = true): Tensor {
  const g = new Generator(seed);
  const a = dtype === 'f32' ? new Float32Array(rows * n) : new Float64Array(rows * n);
  for (let i = 0; i < a.length; i++) a[i] = 8 * (g.uniform() - 0.5);
  a[3] = 80; // exp overflows without the max shift
  a[n + 1] = -1e30;
  if (nan && rows > 5) a[5 * n + 2] = Number.NaN;
  return fromArray(a, [rows, n]).requiresGrad_();
}

function targetsFor(rows: number, n: number, seed: number): Tensor {
  const g = new Generator(seed);
  return fromArray(
    Int32Array.from({ length: rows }, () => g.int(n)),
    [rows],
  );
}

/** The value and the logits' gradient for a cotangent w on the picks. */
function run(pick: (x: Tensor, t: Tensor) => Tensor, x: Tensor, t: Tensor, w: Tensor) {
  x.grad = null;
  const y = pick(x, t);
  y.backward(w);
  return { y: Array.from(y.dataSync()), dx: Array.from(x.grad!.dataSync()) };
}

test('logSoftmaxPick equals logSoftmax + gather bit for bit (native)', { skip }, () => {
  const prev = getBackend().name as BackendName;
  setBackend('native');
  try {
    for (const [rows, n, dtype] of [
      [7, 5, 'f64'],
      [64, 2048, 'f32'],
      [33, 300, 'f64'],
    ] as const) {
      const x = logits(rows, n, dtype, rows + n);
      const t = targetsFor(rows, n, n);
      const g = new Generator(rows);
      const wa = Array.from({ length: rows }, () => g.uniform() - 0.5);
      wa[1] = -0; // an ignored row's gradient
      const w = fromArray(dtype === 'f32' ? Float32Array.from(wa) : Float64Array.from(wa), [rows]);
      const fused = run((a, b) => logSoftmaxPick(a, b)!, x, t, w);
      const composed = run((a, b) => reshape(gather(logSoftmax(a), 1, unsqueeze(b, 1)), [rows]), x, t, w);
      assert.ok(fused.y.some((v) => Number.isNaN(v)) === rows > 5);
      assert.deepEqual(fused.y, composed.y, `${rows}x${n} ${dtype}: picks`);
      assert.deepEqual(fused.dx, composed.dx, `${rows}x${n} ${dtype}: gradient`);
      assert.ok(
        fused.dx.every((v, i) => Object.is(v, composed.dx[i])),
        'signed zeros agree too',
      );
    }
  } finally {
    setBackend(prev);
  }
});

test('crossEntropy takes the fused pick on native and keeps its loss and gradient', { skip }, () => {
  const prev = getBackend().name as BackendName;
  try {
    const results = (['native', 'reference'] as const).map((name) => {
      setBackend(name);
      const x = logits(16, 40, 'f64', 3, false);
      const t = fromArray(
        Int32Array.from({ length: 16 }, (_, i) => (i === 2 ? -100 : (i * 7) % 40)),
        [16],
      );
      const loss = crossEntropy(x, t);
      const names = new Set<string>();
      for (const stack = [loss]; stack.length > 0; ) {
        const node = stack.pop()!.gradFn;
        if (node) {
          names.add(node.name);
          stack.push(...node.inputs);
        }
      }
      assert.equal(names.has('logSoftmaxPick'), name === 'native', `${name}: ${[...names].join(', ')}`);
      loss.backward();
      return { loss: loss.item(), dx: Array.from(x.grad!.dataSync()) };
    });
    // f64: the reference backend's own arithmetic (Math.exp), close to native's
    assert.ok(Math.abs(results[0]!.loss - results[1]!.loss) < 1e-12, `${results[0]!.loss} vs ${results[1]!.loss}`);
    results[0]!.dx.forEach((v, i) => assert.ok(Math.abs(v - results[1]!.dx[i]!) < 1e-12, `dx[${i}]`));
  } finally {
    setBackend(prev);
  }
});

test('logSoftmaxPick kernel: targets outside [0, n) are a one-line error', { skip }, () => {
  const addon = loaded.addon!;
  const x = new Float32Array(6);
  assert.throws(() => addon.logSoftmaxPick(x, Int32Array.from([0, 3]), 2, 3, new Float32Array(2), new Float32Array(2)), {
    name: 'RangeError',
    message: 'logSoftmaxPick: targets[1] = 3 is outside [0, 3)',
  });
  assert.throws(() => addon.logSoftmaxPick(x, Int32Array.from([0]), 2, 3, new Float32Array(2), new Float32Array(2)), /targets/);
});
