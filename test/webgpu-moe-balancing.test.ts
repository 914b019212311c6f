// Load balancing on webgpu's 'device' path against the reference backend, over several training
// steps of one layer (outputs, input gradients, accumulated parameter gradients, each step's
// LB and z losses, the selection bias after each optimiser step): a padding mask, the LB loss
// per sequence ('instance'), global-batch LB over micro-batches, and aux-loss-free bias updates
// (both rules), none of which reads the device inside a step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend, setBackend } from '../src/backend/index.js';
import { fromArray, mul, sum } from '../src/index.js';
import { type MoEConfigInput, moeConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { Generator } from '../src/tensor/random.js';
import { assertCloseF32, seededValues, webgpuOrSkip } from './helpers/webgpu.js';

const [B, S, H] = [3, 4, 8];

/** Padding at the end of sequences 0 and 2 (sequence 1 is all real tokens). */
const MASK = Float32Array.from([1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0]);

interface Steps {
  y: Float32Array[];
  dx: Float32Array[];
  lb: number[];
  z: number[];
  grads: Map<string, Float32Array>;
  /** The selection bias after each postBatch. */
  bias: Float32Array[];
}

/** `steps` training forwards + backwards of [B, S, H] batches (postBatch after every `postEvery`). */
async function train(layer: MoELayer, on: 'reference' | 'webgpu', steps: number, postEvery: number, mask: boolean): Promise<Steps> {
  const out: Steps = { y: [], dx: [], lb: [], z: [], grads: new Map(), bias: [] };
  layer.train();
  for (let i = 0; i < steps; i++) {
    setBackend(on);
    const x = fromArray(seededValues(B * S * H, 10 + i, 1), [B, S, H]).requiresGrad_();
    const probe = fromArray(seededValues(B * S * H, 50 + i, 1), [B, S, H]);
    const y = layer.forward(x, mask ? { mask: fromArray(MASK, [B, S]) } : {});
    sum(mul(y, probe)).backward();
    if ((i + 1) % postEvery === 0) layer.postBatch();
    setBackend('reference');
    const m = (await layer.readMetrics())!;
    out.lb.push(m.lbLoss!);
    out.z.push(m.zLoss!);
    out.y.push(Float32Array.from(await y.data()));
    out.dx.push(Float32Array.from(await x.grad!.data()));
    if (layer.selectionBias && (i + 1) % postEvery === 0) out.bias.push(Float32Array.from(await layer.selectionBias.bias.data()));
  }
  for (const [name, p] of layer.namedParameters()) out.grads.set(name, Float32Array.from(await p.grad!.data()));
  return out;
}

async function agree(input: Partial<MoEConfigInput>, opts: { steps: number; postEvery: number; mask: boolean }): Promise<Steps> {
  const cfg = moeConfig({
    hiddenSize: H,
    router: { numExperts: 4, topK: 2, renormalize: 'sum' },
    experts: { kind: 'swiglu', intermediateSize: 6 },
    losses: { lbWeight: 0.5, zLossWeight: 0.01 },
    ...input,
  });
  setBackend('reference');
  const ref = new MoELayer(cfg, { generator: new Generator(3) });
  const state = ref.stateDict();
  const want = await train(ref, 'reference', opts.steps, opts.postEvery, opts.mask);
  setBackend('webgpu');
  const dev = new MoELayer(cfg, { generator: new Generator(3) });
  dev.loadStateDict(state);
  setBackend('reference');
  assert.equal(dev.executionPlan.path, 'device', dev.executionPlan.summary);
  const got = await train(dev, 'webgpu', opts.steps, opts.postEvery, opts.mask);
  for (let i = 0; i < opts.steps; i++) {
    assertCloseF32(got.y[i]!, want.y[i]!, `step ${i} y`);
    assertCloseF32(got.dx[i]!, want.dx[i]!, `step ${i} dx`);
  }
  assertCloseF32(got.lb, want.lb, 'LB loss per step');
  assertCloseF32(got.z, want.z, 'z loss per step');
  for (const [name, g] of want.grads) assertCloseF32(got.grads.get(name)!, g, `d ${name}`);
  assert.equal(got.bias.length, want.bias.length);
  want.bias.forEach((b, i) => assertCloseF32(got.bias[i]!, b, `selection bias after update ${i}`));
  return want;
}

const gpu = await webgpuOrSkip('webgpu: MoELayer load balancing equals the reference backend');
if (gpu) {
  await initBackend('webgpu');
  setBackend('reference');
  test('webgpu MoELayer: a padding mask (LB and z-loss over real tokens only), local-batch LB', async () => {
    const want = await agree({}, { steps: 2, postEvery: 1, mask: true });
    const unmasked = await agree({}, { steps: 2, postEvery: 1, mask: false });
    assert.ok(Math.abs(want.lb[0]! - unmasked.lb[0]!) > 1e-4, 'the mask changes the LB loss');
  });
  test("webgpu MoELayer: LB per sequence ('instance'), with the mask, sigmoid scores normalised", async () => {
    await agree(
      {
        router: { numExperts: 4, topK: 2, scoreFunc: 'sigmoid', renormalize: 'sum' },
        losses: { lbWeight: 0.5, lbGranularity: 'instance' },
      },
      { steps: 2, postEvery: 1, mask: true },
    );
  });
  test('webgpu MoELayer: global-batch LB over two micro-batches per step (running frequencies, reset by postBatch)', async () => {
    await agree({ losses: { lbWeight: 0.5, zLossWeight: 0.01, lbGranularity: 'global-batch' } }, { steps: 4, postEvery: 2, mask: true });
  });
  for (const rule of ['sign', 'sign-centered'] as const) {
    test(`webgpu MoELayer: aux-loss-free selection bias ('${rule}'), updated on the device after each step`, async () => {
      const want = await agree(
        // 5 experts: 24 slots never split evenly, so the centred rule's mean of signs is not 0
        { router: { numExperts: 5, topK: 2, scoreFunc: 'sigmoid', renormalize: 'sum', selectionBias: { gamma: 0.3, rule } } },
        { steps: 3, postEvery: 1, mask: false },
      );
      assert.ok(
        want.bias.some((b) => b.some((v) => v !== 0)),
        'the bias moves',
      );
    });
  }
}
