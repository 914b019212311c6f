// The engine above the backend on webgpu: a small model (linear, LayerNorm, GELU, causal
// attention, log-softmax) trained three AdamW steps on webgpu and on the reference backend
// from the same f32 start; losses and parameters must agree. Reads only through `await data()`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend, setBackend, type BackendName } from '../src/backend/index.js';
import type { Tensor } from '../src/index.js';
import { AdamW, clipGradNorm } from '../src/optim/index.js';
import { clipGradNormAsync } from '../src/optim/clip.js';
import { fromArray, layerNorm, logSoftmax, matmul, mean, mul, reshape, scaledDotProductAttention } from '../src/ops/index.js';
import { webgpuOrSkip } from './helpers/webgpu.js';

const T = 6;
const H = 8;
const C = 4;

function values(n: number, seed: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * scale);
}

/** Losses of 3 steps and the final parameters, on `name`. */
async function train(name: BackendName): Promise<{ losses: number[]; params: Float32Array[] }> {
  setBackend(name);
  const x = fromArray(values(T * H, 1, 1), [T, H]);
  const target = fromArray(
    Float32Array.from({ length: T * C }, (_, i) => (i % C === Math.floor(i / C) % C ? 1 : 0)),
    [T, C],
  );
  const w1 = fromArray(values(H * H, 2, 0.4), [H, H]).requiresGrad_();
  const w2 = fromArray(values(H * C, 3, 0.4), [H, C]).requiresGrad_();
  const g = fromArray(
    values(H, 4, 0.1).map((v) => 1 + v),
    [H],
  ).requiresGrad_();
  const opt = new AdamW([w1, w2, g], { lr: 0.05, weightDecay: 0.01 });
  const losses: number[] = [];
  for (let step = 0; step < 3; step++) {
    const h = layerNorm(matmul(x, w1).gelu(), g);
    const q = reshape(h, [1, 1, T, H]);
    const a = reshape(scaledDotProductAttention(q, q, q, { causal: true }), [T, H]);
    const loss = mean(mul(logSoftmax(matmul(a.add(h), w2), -1), target)).neg();
    losses.push((await loss.data())[0]!);
    for (const p of [w1, w2, g]) p.zeroGrad();
    loss.backward();
    opt.step();
  }
  const params = await Promise.all([w1, w2, g].map(async (p: Tensor) => Float32Array.from(await p.data())));
  return { losses, params };
}

const gpu = await webgpuOrSkip('webgpu: a small model trains as on the reference backend');
if (gpu) {
  await initBackend('webgpu');
  test('webgpu: a small model trains as on the reference backend (losses, parameters after 3 AdamW steps)', async () => {
    const ref = await train('reference');
    const dev = await train('webgpu');
    setBackend('reference');
    assert.ok(ref.losses[2]! < ref.losses[0]!, `reference loss falls: ${ref.losses.join(', ')}`);
    dev.losses.forEach((l, i) =>
      assert.ok(
        Math.abs(l - ref.losses[i]!) <= 1e-4 * (1 + Math.abs(ref.losses[i]!)),
        `loss ${i}: webgpu ${l}, reference ${ref.losses[i]}`,
      ),
    );
    dev.params.forEach((p, k) =>
      p.forEach((v, i) =>
        assert.ok(Math.abs(v - ref.params[k]![i]!) <= 1e-4, `param ${k}[${i}]: webgpu ${v}, reference ${ref.params[k]![i]}`),
      ),
    );
  });
  test('webgpu: clipGradNormAsync clips on the device as clipGradNorm does on the reference (clipped, unclipped, NaN)', async () => {
    for (const [maxNorm, poison] of [
      [0.5, false],
      [100, false],
      [0.5, true],
    ] as const) {
      const grads = [values(12, 5, 2), values(7, 6, 3)];
      if (poison) grads[1]![3] = Number.NaN;
      const make = (name: BackendName) => {
        setBackend(name);
        return grads.map((g) => {
          const p = fromArray(new Float32Array(g.length), [g.length]).requiresGrad_();
          p.grad = fromArray(g, [g.length]);
          return p;
        });
      };
      const ref = make('reference');
      const want = clipGradNorm(ref, maxNorm);
      const dev = make('webgpu');
      setBackend('reference');
      const got = await clipGradNormAsync(dev, maxNorm);
      if (poison) assert.ok(Number.isNaN(got) && Number.isNaN(want), `NaN norm: ${got}, ${want}`);
      else assert.ok(Math.abs(got - want) <= 1e-5 * want, `norm: webgpu ${got}, reference ${want}`);
      for (let k = 0; k < ref.length; k++) {
        const g = await dev[k]!.grad!.data();
        ref[k]!.grad!.dataSync().forEach((v, i) => {
          const same = Number.isNaN(v) ? Number.isNaN(g[i]!) : Math.abs(g[i]! - v) <= 1e-6 + 1e-5 * Math.abs(v);
          assert.ok(same, `maxNorm ${maxNorm}: grad ${k}[${i}] webgpu ${g[i]}, reference ${v}`);
        });
      }
      if (!poison && maxNorm < want) assert.ok(Math.abs(ref[0]!.grad!.dataSync()[0]! - grads[0]![0]!) > 1e-3, 'the reference clipped');
    }
  });
  test('webgpu: dataSync and item point to await t.data()', () => {
    setBackend('webgpu');
    const t = fromArray(Float32Array.from([1]), [1]);
    setBackend('reference');
    assert.throws(() => t.item(), /await t\.data\(\)/);
  });
}
