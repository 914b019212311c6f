// MoELayer on webgpu (the execution plan's 'device' path: routing, counts and the slot plan
// stay on the GPU) against the same layer on the reference backend: output, input gradient,
// every parameter's gradient and the metrics (read with `await readMetrics()`), in training
// mode so the aux losses ride on the output. Configurations: softmax top-k renormalised with
// SwiGLU experts; sigmoid + group-limited + scaled with a capacity that drops slots and a
// gated shared expert; GELU experts with biases and weights on the input; the CT-MoE preset
// with its topology on. Reads only through `await data()`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend, setBackend } from '../src/backend/index.js';
import { fromArray, mul, sum } from '../src/index.js';
import { type MoEConfigInput, moeConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import type { MoEMetrics } from '../src/moe/metrics.js';
import { ctMoePreset } from '../src/moe/topology/index.js';
import { Generator } from '../src/tensor/random.js';
import { assertCloseF32, seededValues, webgpuOrSkip } from './helpers/webgpu.js';

const T = 12;

interface Run {
  y: Float32Array;
  dx: Float32Array;
  grads: Map<string, Float32Array>;
  metrics: MoEMetrics;
}

/** One training-mode forward + backward of `layer` (on the current backend) with a fixed probe. */
async function run(layer: MoELayer, on: 'reference' | 'webgpu'): Promise<Run> {
  const H = layer.cfg.hiddenSize;
  setBackend(on);
  layer.train();
  const x = fromArray(seededValues(T * H, 7, 1), [T, H]).requiresGrad_();
  const probe = fromArray(seededValues(T * H, 8, 1), [T, H]);
  const y = layer.forward(x);
  sum(mul(y, probe)).backward();
  const grads = new Map<string, Float32Array>();
  for (const [name, p] of layer.namedParameters()) grads.set(name, Float32Array.from(await p.grad!.data()));
  const metrics = (await layer.readMetrics())!;
  setBackend('reference');
  return { y: Float32Array.from(await y.data()), dx: Float32Array.from(await x.grad!.data()), grads, metrics };
}

async function agree(cfg: ReturnType<typeof moeConfig>): Promise<Run> {
  setBackend('reference');
  const ref = new MoELayer(cfg, { generator: new Generator(3), numLayers: 2 });
  const want = await run(ref, 'reference');
  setBackend('webgpu');
  const dev = new MoELayer(cfg, { generator: new Generator(3), numLayers: 2 });
  dev.loadStateDict(ref.stateDict());
  setBackend('reference');
  assert.equal(dev.executionPlan.path, 'device', dev.executionPlan.summary);
  const got = await run(dev, 'webgpu');
  assertCloseF32(got.y, want.y, 'y');
  assertCloseF32(got.dx, want.dx, 'dx');
  for (const [name, g] of want.grads) assertCloseF32(got.grads.get(name)!, g, `d ${name}`);
  assert.deepEqual([...got.metrics.tokensPerExpert], [...want.metrics.tokensPerExpert], 'tokens per expert');
  for (const k of ['droppedFraction', 'routerEntropy', 'usageEntropy', 'loadImbalance', 'lbLoss', 'zLoss'] as const) {
    const a = got.metrics[k];
    const b = want.metrics[k];
    assert.ok(a === b || Math.abs(a! - b!) <= 1e-5 * (1 + Math.abs(b!)), `metric ${k}: webgpu ${a}, reference ${b}`);
  }
  return want;
}

const base = (over: Partial<MoEConfigInput>): ReturnType<typeof moeConfig> =>
  moeConfig({
    hiddenSize: 8,
    router: { numExperts: 4, topK: 2, renormalize: 'sum' },
    experts: { kind: 'swiglu', intermediateSize: 6 },
    losses: { lbWeight: 0.01, zLossWeight: 0.001 },
    ...over,
  });

const gpu = await webgpuOrSkip('webgpu: MoELayer equals the reference backend');
if (gpu) {
  await initBackend('webgpu');
  setBackend('reference');
  test('webgpu MoELayer: softmax top-2 renormalised, SwiGLU experts (output, gradients, metrics)', async () => {
    await agree(base({}));
  });
  test('webgpu MoELayer: sigmoid group-limited scaled router, capacity with drops, gated shared expert', async () => {
    const cfg = base({
      router: {
        numExperts: 8,
        topK: 2,
        scoreFunc: 'sigmoid',
        renormalize: 'sum',
        scalingFactor: 2.5,
        groupLimit: { numGroups: 4, topkGroups: 2, groupScore: 'top2-sum', maskValue: 'zero' },
      },
      dispatch: { capacityFactor: 0.5, capacityMultiple: 1 },
      shared: { intermediateSize: 4, gate: 'sigmoid', mix: 'add' },
    });
    const want = await agree(cfg);
    assert.ok(want.metrics.droppedFraction > 0, 'the capacity drops slots');
  });
  test('webgpu MoELayer: GELU experts with biases, weights on the input, capacity (padding rows carry the biases)', async () => {
    await agree(
      base({
        router: { numExperts: 4, topK: 2, renormalize: 'none' },
        experts: { kind: 'gelu', intermediateSize: 6, bias: true },
        dispatch: { weightsOn: 'input', capacityFactor: 0.75, capacityMultiple: 1 },
      }),
    );
  });
  test('webgpu MoELayer: GPT-OSS clamped SwiGLU experts (interleaved gate/up with biases), top-3 softmax', async () => {
    await agree(
      base({
        router: { numExperts: 4, topK: 3, renormalize: 'sum', routerBias: true },
        experts: { kind: 'gpt-oss', intermediateSize: 6, layout: 'interleaved', bias: true, swigluLimit: 0.8 },
      }),
    );
  });
  test('webgpu MoELayer: the CT-MoE preset with its topology (routing bias and collaboration)', async () => {
    await agree(ctMoePreset(8, 4, 2, { lbWeight: 0.01 }));
  });
  test('webgpu MoELayer: a router that reads its scores on the host is refused when the layer is built, naming it', () => {
    setBackend('webgpu');
    try {
      assert.throws(
        () => new MoELayer(base({ router: { numExperts: 4, topK: 2, kind: 'expert-choice' }, losses: { lbWeight: 0 } })),
        /router\.kind 'expert-choice' is not supported on device-resident routing/,
      );
    } finally {
      setBackend('reference');
    }
  });
}
