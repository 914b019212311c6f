// Mixed precision: autocast's dtype per op, GradScaler's scale sequences against closed forms,
// AdamW's f32 master weights, bf16 checkpoints kept as bf16.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { withAutocast } from '../src/amp/autocast.js';
import { GradScaler } from '../src/amp/grad-scaler.js';
import { BF16Array } from '../src/backend/types.js';
import { readSafetensorsSync, writeSafetensorsSync } from '../src/io/safetensors.js';
import { Linear } from '../src/nn/layers.js';
import { safetensorsToStateDict, stateDictToSafetensors } from '../src/nn/state.js';
import { AdamW } from '../src/optim/adamw.js';
import { clipGradNorm } from '../src/optim/clip.js';
import * as ops from '../src/ops/index.js';
import { randn, tensor } from '../src/ops/creation.js';
import { route } from '../src/moe/router.js';
import { routerConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { olmoCoreMoEConfig } from '../src/moe/olmo-core/config.js';
import { loadMoEBlockFromOlmoCore, moeLayerToOlmoCoreTensors } from '../src/moe/olmo-core/checkpoint.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';

const g = (seed: number) => ({ generator: new Generator(seed) });

describe('autocast dtype rules', () => {
  for (const d of ['bf16', 'f16'] as const) {
    test(`${d}: GEMMs low, softmax / norms / exp / log / losses f32, promotion elsewhere, f32 grads`, () => {
      const x = randn([4, 8], g(1)).requiresGrad_();
      const w = randn([8, 8], g(2)).requiresGrad_();
      const lin = new Linear(8, 3, g(3));
      const q = randn([1, 1, 4, 8], g(4));
      const out = withAutocast(d, () => {
        const h = ops.matmul(x, w);
        assert.equal(h.dtype, d, 'matmul');
        assert.equal(lin.forward(x).dtype, d, 'Linear (bias joins the GEMM dtype)');
        assert.equal(ops.scaledDotProductAttention(q, q, q).dtype, d, 'attention');
        assert.equal(ops.softmax(h).dtype, 'f32', 'softmax');
        assert.equal(ops.logSoftmax(h).dtype, 'f32', 'logSoftmax');
        assert.equal(ops.layerNorm(h).dtype, 'f32', 'layerNorm');
        assert.equal(ops.rmsNorm(h).dtype, 'f32', 'rmsNorm');
        assert.equal(ops.exp(h).dtype, 'f32', 'exp');
        assert.equal(ops.log(ops.abs(h)).dtype, 'f32', 'log');
        assert.equal(ops.gelu(h).dtype, d, 'gelu follows its input');
        assert.equal(ops.add(h, x).dtype, 'f32', 'bf16 + f32 promotes');
        assert.equal(ops.crossEntropy(h, tensor([0, 1, 2, 3], { dtype: 'i32' })).dtype, 'f32', 'crossEntropy');
        return ops.sum(ops.softmax(h));
      });
      assert.equal(ops.matmul(x, w).dtype, 'f32', 'outside autocast: f32');
      out.backward();
      assert.equal(x.grad!.dtype, 'f32', 'grads flow back in the parameters dtype');
      assert.equal(w.grad!.dtype, 'f32');
    });
  }

  test('the router GEMM and routing stay f32 under autocast and for a bf16 model', () => {
    const cfg = routerConfig({ numExperts: 4, topK: 2 });
    const x = randn([5, 8], g(5));
    const w = randn([4, 8], g(6));
    const r = withAutocast('bf16', () => route(x, w, null, cfg));
    assert.equal(r.logits.dtype, 'f32');
    assert.equal(r.topkWeights.dtype, 'f32');
    const ref = route(x, w, null, cfg); // f32, no autocast: identical (the router ignores autocast)
    assert.deepEqual([...r.logits.dataSync()], [...ref.logits.dataSync()]);
    assert.equal(route(x.to('bf16'), w.to('bf16'), null, cfg).logits.dtype, 'f32');
    // cross-entropy of half logits is computed in f32 even outside autocast
    assert.equal(ops.crossEntropy(randn([3, 5], g(13)).to('bf16'), tensor([0, 4, 2], { dtype: 'i32' })).dtype, 'f32');
  });

  test('withAutocast rejects other dtypes with one line and restores the previous state on throw', () => {
    assert.throws(() => withAutocast('f32' as never, () => 0), /withAutocast: dtype must be 'bf16', 'f16' or null \(got f32\)/);
    assert.throws(() =>
      withAutocast('bf16', () => {
        throw new Error('boom');
      }),
    );
    assert.equal(ops.matmul(randn([2, 2]), randn([2, 2])).dtype, 'f32');
  });
});

/** One parameter whose gradient we set directly, and an optimiser stepping it by SGD-like AdamW. */
function setup(grads: number[][]): { p: Tensor; opt: AdamW; feed: (i: number) => void } {
  const p = tensor([1, 2]).requiresGrad_();
  const opt = new AdamW([p], { lr: 0.1, weightDecay: 0 });
  const feed = (i: number): void => {
    p.grad = tensor(grads[i]!);
  };
  return { p, opt, feed };
}

describe('GradScaler', () => {
  test('defaults: scale 65536; scale() multiplies (an f16 loss is cast to f32 first)', () => {
    const s = new GradScaler();
    assert.equal(s.getScale(), 65536);
    const l = tensor([3]).to('f16');
    const scaled = s.scale(l);
    assert.equal(scaled.dtype, 'f32');
    assert.equal(scaled.item(), 3 * 65536);
  });

  test('growth after growthInterval clean steps, backoff and a skipped step on inf / NaN (closed form)', () => {
    const steps = [0, 0, 0, Infinity, 0, Number.NaN, 0, 0, 0, 0];
    const { p, opt, feed } = setup(steps.map((v) => [v === 0 ? 65536 : v, 131072]));
    const s = new GradScaler({ growthInterval: 3 });
    // closed form: scale halves at each bad step (tracker reset), doubles after 3 consecutive good ones
    let scale = 65536;
    let tracker = 0;
    let stepped = 0;
    for (const [i, v] of steps.entries()) {
      feed(i);
      const before = [...p.dataSync()];
      const did = s.step(opt);
      s.update();
      const bad = !Number.isFinite(v);
      assert.equal(did, !bad, `step ${i} skipped iff its grads held inf / NaN`);
      if (bad) {
        assert.deepEqual([...p.dataSync()], before, `step ${i}: parameters untouched`);
        scale *= 0.5;
        tracker = 0;
      } else {
        stepped++;
        if (++tracker === 3) {
          scale *= 2;
          tracker = 0;
        }
      }
      assert.equal(s.getScale(), scale, `scale after step ${i}`);
      assert.equal(s.stateDict().growthTracker, tracker);
    }
    assert.equal(opt.stepCount, stepped);
  });

  test('unscale_ divides the grads by the scale before clipping; step then does not unscale twice', () => {
    const { p, opt, feed } = setup([[3 * 1024, 4 * 1024]]);
    const s = new GradScaler({ initScale: 1024 });
    feed(0);
    s.unscale_(opt);
    assert.deepEqual([...p.grad!.dataSync()], [3, 4]);
    assert.equal(clipGradNorm([p], 1), 5);
    assert.throws(() => s.unscale_(opt), /already called/);
    assert.ok(s.step(opt));
    assert.throws(() => s.step(opt), /already called/);
    s.update();
    // AdamW's first step moves each weight by lr * sign(grad) (bias-corrected m / sqrt(v))
    const v = p.dataSync();
    assert.ok(Math.abs(v[0]! - 0.9) < 1e-6 && Math.abs(v[1]! - 1.9) < 1e-6, `${[...v]}`);
  });

  test('a growth that would overflow f32 keeps the scale; state round-trips; bad options are one line', () => {
    const { opt, feed } = setup([[1, 1]]);
    const s = new GradScaler({ initScale: 2 ** 127, growthInterval: 1 });
    feed(0);
    s.step(opt);
    s.update();
    assert.equal(s.getScale(), 2 ** 127);
    const t = new GradScaler({ growthInterval: 1 });
    t.loadStateDict({ ...s.stateDict(), growthInterval: 1 });
    assert.equal(t.getScale(), 2 ** 127);
    assert.throws(() => new GradScaler({ backoffFactor: 2 }), /GradScaler: backoffFactor must be in \(0, 1\) \(got 2\)/);
    assert.throws(() => new GradScaler({ growthInterval: 0.5 }), /growthInterval must be an integer > 0 \(got 0.5\)/);
    const off = new GradScaler({ enabled: false });
    assert.equal(off.getScale(), 1);
  });
});

describe('creating bf16 / f16 tensors and modules', () => {
  test('factories and initialisers draw f32 values and round them once (not bit patterns)', () => {
    for (const d of ['bf16', 'f16'] as const) {
      const want = randn([64], g(9)).to(d);
      assert.deepEqual([...randn([64], { dtype: d, ...g(9) }).dataSync()], [...want.dataSync()]);
      assert.deepEqual(tensor([1.5, -2, 3.25], { dtype: d }).toArray(), [1.5, -2, 3.25]);
      const lin = new Linear(64, 8, { dtype: d, ...g(10) });
      const w = lin.weight.dataSync();
      const bound = 1 / Math.sqrt(64); // kaiming uniform with a = sqrt(5)
      assert.ok(w.every((v) => Math.abs(v) <= bound * 1.01) && w.some((v) => Math.abs(v) > bound / 2), `${d} Linear init`);
    }
  });
});

describe('AdamW master weights and bf16 checkpoints', () => {
  test('a bf16 parameter follows its f32 master: small updates accumulate instead of rounding away', () => {
    // a weight of 1 in bf16 has an ulp of 2^-7; 100 steps of lr 1e-4 move the master by 0.01,
    // which a bf16 weight updated in place would lose at every step (1 - 1e-4 rounds to 1)
    const pb = tensor([1, -1]).to('bf16').requiresGrad_();
    const pf = tensor([1, -1]).requiresGrad_();
    const ob = new AdamW([pb], { lr: 1e-4, weightDecay: 0 });
    const of = new AdamW([pf], { lr: 1e-4, weightDecay: 0 });
    for (let i = 0; i < 100; i++) {
      pb.grad = tensor([0.5, -0.25]).to('bf16');
      pf.grad = tensor([0.5, -0.25]);
      ob.step();
      of.step();
    }
    assert.equal(pb.dtype, 'bf16');
    const master = ob.stateDict().state[0]!.master!;
    assert.equal(master.dtype, 'f32');
    assert.deepEqual([...master.dataSync()], [...pf.dataSync()], 'the master follows the f32 run exactly');
    assert.deepEqual([...pb.dataSync()], [...pf.to('bf16').dataSync()], 'the parameter is the master rounded once');
    assert.notEqual(pb.dataSync()[0], 1);
  });

  test('Module.to(bf16) then a safetensors round trip keeps bf16 bits (no f32 copy with half: keep)', () => {
    const lin = new Linear(6, 3, g(7)).to('bf16');
    assert.equal(lin.weight.dtype, 'bf16');
    const dir = mkdtempSync(join(tmpdir(), 'moekit-amp-'));
    try {
      const file = join(dir, 'w.safetensors');
      writeSafetensorsSync(file, stateDictToSafetensors(lin.stateDict()));
      const kept = readSafetensorsSync(file, { half: 'keep' });
      const e = kept.tensors.get('weight')!;
      assert.equal(e.dtype, 'BF16');
      assert.ok(e.data instanceof BF16Array);
      assert.deepEqual([...(e.data as BF16Array)], [...(lin.weight.storage as BF16Array)]);
      const sd = safetensorsToStateDict(kept.tensors);
      assert.equal(sd.weight!.dtype, 'bf16');
      const other = new Linear(6, 3, g(8)).to('bf16');
      other.loadStateDict(sd);
      assert.deepEqual([...(other.weight.storage as BF16Array)], [...(lin.weight.storage as BF16Array)]);
      assert.equal(readSafetensorsSync(file).tensors.get('weight')!.data.constructor, Float32Array, 'default: widened');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('module dtypes by name, and an OLMo-core checkpoint straight into bf16', () => {
  test("MoELayer takes OLMo-core's dtype names; a bad one is one line naming the field", () => {
    const cfg = olmoCoreMoEConfig({ numExperts: 4, hiddenSize: 8, router: { topK: 2 } }, 8);
    assert.equal(new MoELayer(cfg, { dtype: 'bfloat16' }).routerWeight.dtype, 'bf16');
    assert.equal(new MoELayer(cfg, { dtype: 'float16' }).routerWeight.dtype, 'f16');
    assert.equal(new MoELayer(cfg, { dtype: 'float32' }).routerWeight.dtype, 'f32');
    assert.throws(
      () => new MoELayer(cfg, { dtype: 'half' as never }),
      /MoELayer dtype: "half" is not a dtype; allowed: f32, f64, bf16, f16, float32/,
    );
  });

  test('BF16 safetensors read with half: keep load as bit patterns into a bfloat16 layer, equal to the widened load', () => {
    const cfg = olmoCoreMoEConfig({ name: 'dropless', numExperts: 4, hiddenSize: 8, router: { topK: 2 } }, 8);
    const src = new MoELayer(cfg, { generator: new Generator(11) });
    const dir = mkdtempSync(join(tmpdir(), 'moekit-amp-'));
    try {
      const file = join(dir, 'moe.safetensors');
      writeSafetensorsSync(file, moeLayerToOlmoCoreTensors(src, { moeType: 'dropless', dtype: 'BF16' }));
      const kept = readSafetensorsSync(file, { half: 'keep' }).tensors;
      assert.ok(kept.get('router.weight')!.data instanceof BF16Array);
      const a = loadMoEBlockFromOlmoCore({ config: cfg, tensors: kept, moeType: 'dropless', dtype: 'bfloat16' });
      const b = loadMoEBlockFromOlmoCore({ config: cfg, tensors: readSafetensorsSync(file).tensors, moeType: 'dropless', dtype: 'bf16' });
      for (const [[name, pa], [, pb]] of a.namedParameters().map((e, i) => [e, b.namedParameters()[i]!] as const)) {
        assert.equal(pa.dtype, 'bf16', name);
        assert.deepEqual([...(pa.storage as BF16Array)], [...(pb.storage as BF16Array)], name);
      }
      const x = randn([5, 8], g(12)).to('bf16');
      assert.deepEqual([...a.forward(x).dataSync()], [...b.forward(x).dataSync()]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
