// Tidy scopes (src/tensor/scope.ts) and the storage pool behind them (src/backend/storage-pool.ts):
// what a scope releases, what it must never recycle, and CT-MoE training steps in scopes against
// the same steps without, bit for bit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clearIdleStorage, idleStorageBytes } from '../src/backend/storage-pool.js';
import { uninitializedFloatArrayLike } from '../src/backend/types.js';
import { CtMoeGPT, VARIANTS, experimentConfig } from '../src/experiments/ctmoe/index.js';
import { AdamW, clipGradNorm, fromArray, keep, manualSeed, openScope, randn, type Tensor, tidy, zeros } from '../src/index.js';
import { Generator } from '../src/tensor/random.js';
import { makeOutput } from '../src/tensor/tensor.js';

const RELEASED = /Tensor #\d+ \[64, 64\] f32 was released at the end of the tidy scope that created it; /;

test('tidy: the returned tensor survives, the rest is released, and using a released tensor throws one line', () => {
  const w = randn([64, 64]);
  let inner!: Tensor;
  const out = tidy(() => {
    inner = w.matmul(w);
    return { y: [inner.add(1)] };
  });
  assert.equal(out.y[0]!.isReleased, false);
  assert.equal(w.isReleased, false, 'created before the scope');
  assert.ok(inner.isReleased);
  assert.throws(
    () => inner.add(1),
    (e: Error) => RELEASED.test(e.message) && !e.message.includes('\n'),
  );
  assert.throws(() => inner.dataSync(), RELEASED);
  // the survivor's values are the product's, though inner's storage went back to the pool
  const expect = w.matmul(w).add(1).dataSync();
  assert.deepEqual(out.y[0]!.dataSync(), expect);
});

test('backward through a graph whose tensors a scope released throws instead of leaving grads out', () => {
  const w = randn([64, 64]).requiresGrad_();
  const loss = tidy(() => w.matmul(w).tanh().sum());
  assert.throws(() => loss.backward(), /was released at the end of the tidy scope/);
});

test('a released storage is handed out again for its type and length; zeroed allocations come back zeroed', () => {
  clearIdleStorage();
  let buffer!: ArrayBufferLike;
  tidy(() => {
    const t = randn([4096]).mul(2);
    buffer = (t.storage as Float32Array).buffer;
  });
  assert.ok(idleStorageBytes() >= 4096 * 4);
  const z = zeros([4096]);
  assert.equal((z.storage as Float32Array).buffer, buffer, 'the pooled buffer is reused');
  assert.ok((z.dataSync() as Float32Array).every((v) => v === 0));
});

test('never recycled: arrays read out, typed arrays and tensors reachable from the roots, storages given to older tensors', () => {
  clearIdleStorage();
  const n = 4096;
  const older = zeros([n]);
  const root: { cache: Float32Array | null; t: Tensor | null; nested: Map<string, Tensor[]> } = {
    cache: null,
    t: null,
    nested: new Map(),
  };
  let read!: Float32Array;
  let withGrad!: Tensor;
  tidy(() => {
    read = randn([n]).mul(1).dataSync() as Float32Array;
    root.t = randn([n]).mul(2);
    root.cache = randn([n]).mul(3).storage as Float32Array;
    older.storage = randn([n]).mul(4).storage;
    withGrad = randn([n]).mul(5);
    withGrad.grad = randn([n]).mul(6);
    root.nested.set('k', [withGrad]);
  }, root);
  const before = [read, root.t!.dataSync(), root.cache!, older.dataSync(), withGrad.dataSync(), withGrad.grad!.dataSync()].map((a) =>
    Float32Array.from(a),
  );
  const protectedBuffers = new Set(
    [read, root.t!.storage, root.cache!, older.storage, withGrad.storage, withGrad.grad!.storage].map((a) => (a as Float32Array).buffer),
  );
  // take every pooled buffer of this size and overwrite it
  for (let i = 0; i < 12; i++) {
    const t = zeros([n]).add(7);
    assert.ok(!protectedBuffers.has((t.storage as Float32Array).buffer));
  }
  const after = [read, root.t!.dataSync(), root.cache!, older.dataSync(), withGrad.dataSync(), withGrad.grad!.dataSync()];
  after.forEach((a, i) => assert.deepEqual(Float32Array.from(a), before[i], `array ${i} changed`));
});

test('nested scopes, keep(), openScope and a throwing fn', () => {
  let a!: Tensor;
  let b!: Tensor;
  const r = tidy(() => {
    a = tidy(() => randn([64]).mul(2)); // survives the inner scope, belongs to the outer one
    assert.equal(a.isReleased, false);
    b = a.mul(3);
    return b.sum();
  });
  assert.ok(a.isReleased && b.isReleased && !r.isReleased);
  let k!: Tensor;
  tidy(() => {
    k = keep(randn([8]).mul(2));
  });
  assert.equal(k.isReleased, false);
  let t!: Tensor;
  assert.throws(
    () =>
      tidy(() => {
        t = randn([8]).mul(2);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(t.isReleased, false, 'a failed scope releases nothing');
  const outer = openScope();
  const inner = openScope();
  assert.throws(() => outer.close(), /reverse order/);
  inner.close();
  outer.close();
  assert.throws(() => outer.close(), /already closed/);
});

test('CT-MoE training steps in tidy scopes give the same losses and weights as without, bit for bit, and reuse storage', () => {
  const cfg = experimentConfig('tiny', {
    vocabSize: 256,
    seqLen: 32,
    dModel: 64,
    nHead: 2,
    nLayer: 2,
    numExperts: 4,
    topK: 2,
    dropout: 0.1,
    batchSize: 4,
  });
  const g = new Generator(11);
  const batches = Array.from({ length: 4 }, () => {
    const ids = Int32Array.from({ length: cfg.batchSize * (cfg.seqLen + 1) }, () => g.int(cfg.vocabSize));
    const input = new Int32Array(cfg.batchSize * cfg.seqLen);
    const target = new Int32Array(cfg.batchSize * cfg.seqLen);
    for (let b = 0; b < cfg.batchSize; b++) {
      input.set(ids.subarray(b * (cfg.seqLen + 1), b * (cfg.seqLen + 1) + cfg.seqLen), b * cfg.seqLen);
      target.set(ids.subarray(b * (cfg.seqLen + 1) + 1, (b + 1) * (cfg.seqLen + 1)), b * cfg.seqLen);
    }
    return { input, target };
  });
  const train = (scoped: boolean) => {
    manualSeed(5);
    const model = new CtMoeGPT(cfg, VARIANTS[0]!.flags);
    const optimizer = new AdamW(
      [
        { params: model.otherParameters(), lr: 3e-3, weightDecay: 0.1 },
        { params: model.topologyParameters(), lr: 0.3, weightDecay: 0 },
      ],
      { lr: 3e-3 },
    );
    const params = model.parameters();
    model.train();
    const losses: number[] = [];
    const idle: number[] = [];
    for (const b of batches) {
      const step = () => {
        model.zeroGrad();
        const { total } = model.loss(fromArray(b.input, [cfg.batchSize, cfg.seqLen]), fromArray(b.target, [cfg.batchSize, cfg.seqLen]));
        total.backward();
        losses.push(total.item(), clipGradNorm(params, 0.5));
        optimizer.step();
        model.zeroGrad();
      };
      if (scoped) tidy(step, model, optimizer);
      else step();
      idle.push(idleStorageBytes());
    }
    return { losses, weights: params.map((p) => Array.from(p.dataSync())), idle };
  };
  clearIdleStorage();
  const plain = train(false);
  assert.equal(Math.max(...plain.idle), 0);
  const scoped = train(true);
  assert.deepEqual(scoped.losses, plain.losses);
  assert.deepEqual(scoped.weights, plain.weights);
  assert.ok(
    scoped.idle.every((b) => b > 256 << 10),
    `idle bytes after each step: ${scoped.idle.join(', ')}`,
  );
});

test('inside a scope, backward gives spent intermediate gradients back during the pass; the gradients equal the unscoped ones', () => {
  const run = (scoped: boolean) => {
    manualSeed(9);
    const x = randn([32, 64]);
    const w = randn([64, 64]).requiresGrad_();
    const b = randn([64]).requiresGrad_();
    const s = randn([64], { dtype: 'f64' }).requiresGrad_();
    let idleAfterBackward = 0;
    const body = () => {
      const h = x.matmul(w).add(b).tanh();
      // h feeds three uses (accumulated gradients), through views that share storage
      const h2 = h.mul(h).reshape([64, 32]).reshape([32, 64]).add(h).retainGrad();
      h2.mul(s).sum().backward(); // f32 x f64: h2's gradient comes back cast to f32
      idleAfterBackward = idleStorageBytes();
      return [w, b, s, h2].map((t) => Array.from(t.grad!.dataSync()));
    };
    clearIdleStorage();
    return { grads: scoped ? tidy(body, w, b, s) : body(), idleAfterBackward };
  };
  const plain = run(false);
  const scoped = run(true);
  assert.deepEqual(scoped.grads, plain.grads);
  assert.equal(plain.idleAfterBackward, 0);
  assert.ok(scoped.idleAfterBackward >= 32 * 64 * 4, `idle after the backward: ${scoped.idleAfterBackward} bytes`);
});

test('a stale view of a recycled gradient never gives its buffer back again: the buffer may have another owner by then', () => {
  clearIdleStorage();
  const n = 4096;
  const x = randn([n]).requiresGrad_();
  let gBuffer!: ArrayBufferLike;
  let stashes!: Float32Array[];
  tidy(() => {
    // an op whose backward makes a view of its gradOutput and returns another tensor: the
    // gradOutput is recycled when the node returns, the view is left pointing at its buffer
    const z = makeOutput(x.backend, x.backend.copy(x.storage), [n], {
      name: 'viewing',
      inputs: [x],
      backward: (g) => {
        gBuffer = (g.storage as Float32Array).buffer;
        const v = g.reshape([64, 64]);
        return [v.mul(2).reshape([n])];
      },
    });
    z.sum().backward();
    // owners no scope sees (as the experts node's scratch pool) take the recycled buffers
    stashes = Array.from({ length: 4 }, () => uninitializedFloatArrayLike(new Float32Array(0), n) as Float32Array);
    assert.ok(
      stashes.some((a) => a.buffer === gBuffer),
      'the recycled gradient buffer is handed out again',
    );
    for (const a of stashes) a.fill(5);
  }, x);
  for (let i = 0; i < 8; i++) zeros([n]).add(1);
  assert.ok(
    stashes.every((a) => a.every((v) => v === 5)),
    'a stash was overwritten: a stale view gave its buffer back',
  );
  assert.ok(x.grad!.dataSync().every((v) => v === 2));
});
