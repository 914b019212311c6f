// HF checkpoints, for every preset and each of its formats (per-expert and fused): a random
// layer exported to the model's own names/layouts, written as a real .safetensors file, loaded
// back through loadMoEBlockFromHf; (a) outputs identical to the original; (b) output, routing
// weights, aux losses and gradients w.r.t. the input and EVERY checkpoint tensor against an
// independent step-by-step reference written from spec/hf-moe.md (f64 central differences).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fromArray } from '../src/index.js';
import { readSafetensorsSync, writeSafetensorsSync, type SafetensorsData } from '../src/io/safetensors.js';
import {
  HfCheckpointError,
  hfBlockConfig,
  hfExpertFormats,
  loadMoEBlockFromHf,
  moeLayerToHfTensors,
  type HfExpertFormat,
} from '../src/moe/hf/checkpoint.js';
import { FP4_E2M1_VALUES, dequantizeMxfp4, fp4E2M1 } from '../src/moe/hf/mxfp4.js';
import { MoELayer } from '../src/moe/layer.js';
import { PRESETS, type PresetName } from '../src/moe/presets.js';
import { route } from '../src/moe/router.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose, randF64 } from './helpers/gradcheck.js';
import { refHfMoE, type HfJson } from './helpers/hf-moe-reference.js';
import { numericGrad } from './helpers/moe-reference.js';

const H = 4;
const I = 3;
const E = 4;
const T = 5;
const N = 1; // decoder layer

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moekit-hf-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Small HF config.json objects with each model's own keys; layer 1 is an MoE layer in all. */
const CONFIGS: Record<PresetName, HfJson> = {
  mixtral: {
    model_type: 'mixtral',
    hidden_size: H,
    intermediate_size: I,
    num_local_experts: E,
    num_experts_per_tok: 2,
    router_aux_loss_coef: 0.02,
    router_jitter_noise: 0,
  },
  qwen2_moe: {
    model_type: 'qwen2_moe',
    hidden_size: H,
    intermediate_size: 16,
    moe_intermediate_size: I,
    num_experts: E,
    num_experts_per_tok: 2,
    shared_expert_intermediate_size: 5,
    norm_topk_prob: false,
    decoder_sparse_step: 1,
    mlp_only_layers: [0],
    router_aux_loss_coef: 0.001,
  },
  qwen3_moe: {
    model_type: 'qwen3_moe',
    hidden_size: H,
    moe_intermediate_size: I,
    num_experts: E,
    num_experts_per_tok: 2,
    norm_topk_prob: true,
    router_aux_loss_coef: 0.001,
  },
  olmoe: {
    model_type: 'olmoe',
    hidden_size: H,
    intermediate_size: I,
    num_experts: E,
    num_experts_per_tok: 2,
    norm_topk_prob: false,
    router_aux_loss_coef: 0.01,
    router_z_loss_coef: 0.001,
  },
  deepseek_v2: {
    model_type: 'deepseek_v2',
    hidden_size: H,
    intermediate_size: 16,
    moe_intermediate_size: I,
    n_routed_experts: E,
    num_experts_per_tok: 2,
    n_shared_experts: 2,
    topk_method: 'group_limited_greedy',
    n_group: 2,
    topk_group: 1,
    routed_scaling_factor: 1.5,
    norm_topk_prob: false,
    first_k_dense_replace: 1,
    moe_layer_freq: 1,
    router_aux_loss_coef: 0.003,
  },
  deepseek_v3: {
    model_type: 'deepseek_v3',
    hidden_size: H,
    intermediate_size: 16,
    moe_intermediate_size: I,
    n_routed_experts: E,
    num_experts_per_tok: 2,
    n_shared_experts: 1,
    n_group: 2,
    topk_group: 1,
    routed_scaling_factor: 2.5,
    norm_topk_prob: true,
    first_k_dense_replace: 1,
    router_aux_loss_coef: 0.01,
  },
  gpt_oss: {
    model_type: 'gpt_oss',
    hidden_size: H,
    intermediate_size: I,
    num_local_experts: E,
    experts_per_token: 2,
    swiglu_limit: 0.6,
    router_aux_loss_coef: 0.9,
  },
  granitemoe: {
    model_type: 'granitemoe',
    hidden_size: H,
    intermediate_size: I,
    num_local_experts: E,
    num_experts_per_tok: 2,
    router_aux_loss_coef: 0.01,
  },
  llama4: {
    model_type: 'llama4_text',
    hidden_size: H,
    intermediate_size: I,
    intermediate_size_mlp: 16,
    num_local_experts: E,
    num_experts_per_tok: 1,
    interleave_moe_layer_step: 1,
    router_aux_loss_coef: 0.01,
  },
  dbrx: {
    model_type: 'dbrx',
    d_model: H,
    n_heads: 2,
    n_layers: 2,
    vocab_size: 8,
    router_aux_loss_coef: 0.05,
    attn_config: { kv_n_heads: 1 },
    ffn_config: { ffn_hidden_size: I, moe_num_experts: E, moe_top_k: 2, moe_normalize_expert_weights: 1 },
  },
  phimoe: {
    model_type: 'phimoe',
    hidden_size: H,
    intermediate_size: I,
    num_local_experts: E,
    num_experts_per_tok: 2,
    router_jitter_noise: 0.4,
    router_aux_loss_coef: 0.01,
  },
};

/** A random layer of `preset` whose bank has the layout the checkpoint format implies. */
function randomLayer(preset: PresetName, format: HfExpertFormat, seed: number): MoELayer {
  const c = CONFIGS[preset];
  const fusedLayout = { gpt_oss: ['interleaved', 'in-out'], llama4: ['fused', 'in-out'], dbrx: ['separate', 'out-in'] }[
    preset as string
  ] ?? ['fused', 'out-in'];
  const cfg = hfBlockConfig(
    preset,
    c,
    format === 'per-expert' ? undefined : { layout: fusedLayout[0] as 'fused', orientation: fusedLayout[1] as 'out-in' },
  );
  const layer = new MoELayer(cfg, { dtype: 'f64', generator: new Generator(seed) });
  // a stronger router than the 0.02 init, so routing depends on the input; a non-zero selection bias
  layer.loadStateDict(new Map([['routerWeight', randF64([E, H], seed + 1, -1, 1)]]), { strict: false });
  if (layer.selectionBias) layer.loadStateDict(new Map([['scoreBias', randF64([E], seed + 2, -0.3, 0.3)]]), { strict: false });
  return layer;
}

for (const preset of PRESETS) {
  for (const format of hfExpertFormats(preset)) {
    test(`${preset} (${format}): export -> .safetensors -> load; outputs, routing, aux losses and gradients vs the spec reference`, () => {
      const c = CONFIGS[preset];
      const orig = randomLayer(preset, format, 40 + PRESETS.indexOf(preset));
      const file = path.join(dir, `${preset}-${format}.safetensors`);
      writeSafetensorsSync(file, moeLayerToHfTensors(orig, preset, N, { format }));
      const loaded = loadMoEBlockFromHf({ config: c, layer: N, tensors: file, dtype: 'f64' });
      assert.equal(loaded.cfg.experts.layout, orig.cfg.experts.layout, 'format detected from the keys');
      const fileTensors = readSafetensorsSync(file).tensors;
      const model = c['model_type'] as string;

      // (a) identical outputs
      const x = randF64([T, H], 7);
      orig.eval();
      loaded.eval();
      assert.deepEqual(Array.from(loaded.forward(x).dataSync()), Array.from(orig.forward(x).dataSync()));

      // (b) against the independent reference on the file's tensors
      const ref = refHfMoE(model, c, fileTensors, N, x.dataSync(), T, format);
      assertClose(loaded.forward(x).dataSync(), ref.y, 1e-12, 1e-10, 'output');
      const r = route(x, loaded.routerWeight, loaded.routerBias, loaded.cfg.router, { selectionBias: loaded.selectionBias?.bias ?? null });
      assert.deepEqual(Array.from(r.topkIds.dataSync()), ref.ids.flat(), 'routing ids');
      assertClose(r.topkWeights.dataSync(), ref.w.flat(), 1e-12, 1e-10, 'routing weights');

      // Phi-MoE's training forward samples its experts (sparsemixer): its gradients are held
      // to the reference in eval mode in test/moe-sparsemixer.test.ts
      if (preset === 'phimoe') return;
      loaded.train();
      const xg = randF64([T, H], 7);
      xg.requiresGrad = true;
      const y = loaded.forward(xg);
      const m = loaded.lastMetrics!;
      const lbW = (c['router_aux_loss_coef'] as number | undefined) ?? 0;
      const zW = (c['router_z_loss_coef'] as number | undefined) ?? 0;
      assertClose([m.lbLoss!, m.lbLossScaled!], [ref.lb, ref.lb * lbW], 1e-12, 1e-10, 'lb loss');
      if (zW > 0) assertClose([m.zLoss!, m.zLossScaled!], [ref.z, ref.z * zW], 1e-12, 1e-10, 'z loss');
      else assert.equal(m.zLoss, null);

      // gradients of L = Σ y·w + lbW·lb + zW·z: autograd (aux losses ride on y) vs reference differences
      const w = randF64([T, H], 8);
      y.backward(w);
      const wd = w.dataSync();
      const xd = Float64Array.from(x.dataSync());
      const L = (): number => {
        const rr = refHfMoE(model, c, fileTensors, N, xd, T, format);
        return rr.y.reduce((s, v, i) => s + v * wd[i]!, 0) + lbW * rr.lb + zW * rr.z;
      };
      assertClose(xg.grad!.dataSync(), numericGrad(L, xd), 1e-7, 1e-6, 'd/dx');
      const grads = moeLayerToHfTensors(loaded, preset, N, { format, grads: true });
      assert.deepEqual(Object.keys(grads).sort(), [...fileTensors.keys()].sort(), 'every checkpoint tensor has a gradient');
      for (const [k, t] of fileTensors) {
        assertClose(grads[k]!.data, numericGrad(L, t.data as Float64Array), 1e-7, 1e-6, `d/d ${k}`);
      }
    });
  }
}

test('fused checkpoint into a separate-layout bank (and back) gives the same block', () => {
  const orig = randomLayer('mixtral', 'fused', 3);
  const tensors = readBack(moeLayerToHfTensors(orig, 'mixtral', N, { format: 'fused' }));
  const sep = loadMoEBlockFromHf({
    config: CONFIGS.mixtral,
    layer: N,
    tensors,
    dtype: 'f64',
    expertLayout: 'separate',
    expertOrientation: 'in-out',
  });
  assert.equal(sep.cfg.experts.layout, 'separate');
  const x = randF64([T, H], 9);
  assertClose(sep.eval().forward(x).dataSync(), orig.eval().forward(x).dataSync(), 1e-14, 1e-12);
  const perExpert = moeLayerToHfTensors(sep, 'mixtral', N, { format: 'per-expert' });
  assert.ok('model.layers.1.block_sparse_moe.experts.3.w2.weight' in perExpert);
  const again = loadMoEBlockFromHf({ config: CONFIGS.mixtral, layer: N, tensors: readBack(perExpert), dtype: 'f64' });
  assertClose(again.eval().forward(x).dataSync(), orig.forward(x).dataSync(), 1e-14, 1e-12);
});

function readBack(t: ReturnType<typeof moeLayerToHfTensors>): Map<string, { shape: number[]; data: SafetensorsData }> {
  return new Map(Object.entries(t).map(([k, v]) => [k, { shape: v.shape, data: v.data }]));
}

test('errors name the key, the expected and the actual shape; all missing keys are listed', () => {
  const layer = randomLayer('qwen2_moe', 'per-expert', 5);
  const good = readBack(moeLayerToHfTensors(layer, 'qwen2_moe', N));
  const c = CONFIGS.qwen2_moe;
  const bad = new Map(good);
  bad.set('model.layers.1.mlp.experts.2.down_proj.weight', { shape: [I, H], data: new Float64Array(I * H) });
  assert.throws(
    () => loadMoEBlockFromHf({ config: c, layer: N, tensors: bad }),
    (e: unknown) => {
      assert.ok(e instanceof HfCheckpointError);
      assert.match(e.message, /'model\.layers\.1\.mlp\.experts\.2\.down_proj\.weight' has shape \[3, 4\], expected \[4, 3\]/);
      return true;
    },
  );
  const missing = new Map(good);
  missing.delete('model.layers.1.mlp.shared_expert_gate.weight');
  missing.delete('model.layers.1.mlp.experts.3.up_proj.weight');
  assert.throws(
    () => loadMoEBlockFromHf({ config: c, layer: N, tensors: missing }),
    (e: unknown) => {
      assert.ok(e instanceof HfCheckpointError);
      assert.deepEqual(e.missingKeys.sort(), [
        'model.layers.1.mlp.experts.3.up_proj.weight',
        'model.layers.1.mlp.shared_expert_gate.weight',
      ]);
      assert.match(e.message, /2 tensor\(s\) missing/);
      return true;
    },
  );
  assert.throws(() => loadMoEBlockFromHf({ config: c, layer: 0, tensors: good }), /layer 0 is a dense layer/);
  const extra = new Map(good);
  extra.set('model.layers.1.mlp.experts.9.up_proj.weight', { shape: [I, H], data: new Float64Array(I * H) });
  assert.throws(() => loadMoEBlockFromHf({ config: c, layer: N, tensors: extra, strict: true }), /unexpected tensor\(s\).*experts\.9/);
  assert.throws(() => moeLayerToHfTensors(layer, 'mixtral', N), /mixtral: its checkpoints have no shared expert/);
  assert.throws(() => moeLayerToHfTensors(layer, 'gpt_oss', N), /gpt_oss experts are 'gpt-oss'/);
  assert.throws(
    () => loadMoEBlockFromHf({ config: CONFIGS.granitemoe, layer: N, tensors: good, format: 'per-expert' }),
    /granitemoe: no 'per-expert' checkpoint format/,
  );
});

test('MXFP4: FP4 E2M1 codes, E8M0 scales, low nibble first; GPT-OSS blocks/scales load like their dequantised values', () => {
  for (let code = 0; code < 16; code++) assert.equal(Object.is(fp4E2M1(code), FP4_E2M1_VALUES[code]), true, `code ${code}`);
  // one block of 32: bytes 0x21 -> [code 1, code 2] = [0.5, 1]; scale 128 -> ×2
  const blocks = new Uint8Array(16).fill(0);
  blocks[0] = 0x21;
  blocks[15] = 0xf9; // low 9 -> -0.5, high 15 -> -6
  const d = dequantizeMxfp4(blocks, [1, 16], Uint8Array.of(128), [1]);
  assert.deepEqual(d.shape, [32]);
  assert.deepEqual([d.data[0], d.data[1], d.data[2], d.data[30], d.data[31]], [1, 2, 0, -1, -12]);
  assert.ok(Number.isNaN(dequantizeMxfp4(blocks, [1, 16], Uint8Array.of(255), [1]).data[0]));

  // a GPT-OSS block with H = I = 32: experts as MXFP4 vs the same values stored dense
  const Hq = 32;
  const Iq = 32;
  const Eq = 2;
  const c = { model_type: 'gpt_oss', hidden_size: Hq, intermediate_size: Iq, num_local_experts: Eq, experts_per_token: 1 };
  const g = new Generator(4);
  const rnd = (n: number, lo: number, hi: number) => Uint8Array.from({ length: n }, () => lo + Math.floor(g.uniform() * (hi - lo + 1)));
  const m = 'model.layers.0.mlp.';
  const guBlocks = rnd(Eq * 2 * Iq * (Hq / 32) * 16, 0, 255);
  const guScales = rnd(Eq * 2 * Iq, 120, 124);
  const dBlocks = rnd(Eq * Hq * (Iq / 32) * 16, 0, 255);
  const dScales = rnd(Eq * Hq, 120, 124);
  const dense = (b: Uint8Array, s: Uint8Array, out: number, inp: number) => {
    // dequantised [E, out, in] -> the checkpoint's [E, in, out]
    const v = dequantizeMxfp4(b, [Eq, out, inp / 32, 16], s, [Eq, out, inp / 32]).data;
    const t = new Float64Array(v.length);
    for (let e = 0; e < Eq; e++)
      for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) t[e * inp * out + i * out + o] = v[e * out * inp + o * inp + i]!;
    return t;
  };
  const common = {
    [`${m}router.weight`]: { dtype: 'F32', shape: [Eq, Hq], data: Float32Array.from(randF64([Eq, Hq], 1).dataSync()) },
    [`${m}router.bias`]: { dtype: 'F32', shape: [Eq], data: Float32Array.of(0.1, -0.1) },
    [`${m}experts.gate_up_proj_bias`]: { dtype: 'F32', shape: [Eq, 2 * Iq], data: new Float32Array(Eq * 2 * Iq).fill(0.01) },
    [`${m}experts.down_proj_bias`]: { dtype: 'F32', shape: [Eq, Hq], data: new Float32Array(Eq * Hq).fill(-0.02) },
  };
  const q = new Map<string, { dtype: string; shape: number[]; data: ArrayLike<number> }>(
    Object.entries({
      ...common,
      [`${m}experts.gate_up_proj_blocks`]: { dtype: 'U8', shape: [Eq, 2 * Iq, Hq / 32, 16], data: guBlocks },
      [`${m}experts.gate_up_proj_scales`]: { dtype: 'U8', shape: [Eq, 2 * Iq, Hq / 32], data: guScales },
      [`${m}experts.down_proj_blocks`]: { dtype: 'U8', shape: [Eq, Hq, Iq / 32, 16], data: dBlocks },
      [`${m}experts.down_proj_scales`]: { dtype: 'U8', shape: [Eq, Hq, Iq / 32], data: dScales },
    }),
  );
  const f = new Map<string, { dtype: string; shape: number[]; data: ArrayLike<number> }>(
    Object.entries({
      ...common,
      [`${m}experts.gate_up_proj`]: { dtype: 'F64', shape: [Eq, Hq, 2 * Iq], data: dense(guBlocks, guScales, 2 * Iq, Hq) },
      [`${m}experts.down_proj`]: { dtype: 'F64', shape: [Eq, Iq, Hq], data: dense(dBlocks, dScales, Hq, Iq) },
    }),
  );
  const a = loadMoEBlockFromHf({ config: c, layer: 0, tensors: q, dtype: 'f64' }).eval();
  const b = loadMoEBlockFromHf({ config: c, layer: 0, tensors: f, dtype: 'f64' }).eval();
  const x = randF64([3, Hq], 2);
  assert.deepEqual(Array.from(a.forward(x).dataSync()), Array.from(b.forward(x).dataSync()));
  // a real U8 file written by hand (independent of src/io's writer) loads through readSafetensorsSync
  const file = path.join(dir, 'gpt-oss-mxfp4.safetensors');
  writeU8Safetensors(file, q);
  const fromFile = loadMoEBlockFromHf({ config: c, layer: 0, tensors: file, dtype: 'f64' }).eval();
  assert.deepEqual(Array.from(fromFile.forward(x).dataSync()), Array.from(a.forward(x).dataSync()));
  const bad = new Map(q);
  bad.delete(`${m}experts.down_proj_scales`);
  assert.throws(() => loadMoEBlockFromHf({ config: c, layer: 0, tensors: bad }), /experts\.down_proj_scales/);
});

function writeU8Safetensors(file: string, tensors: Map<string, { dtype: string; shape: number[]; data: ArrayLike<number> }>): void {
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let off = 0;
  for (const [k, t] of tensors) {
    let buf: Buffer;
    if (t.dtype === 'U8') buf = Buffer.from(Uint8Array.from(t.data));
    else if (t.dtype === 'F64') buf = Buffer.from(Float64Array.from(t.data).buffer);
    else buf = Buffer.from(Float32Array.from(t.data).buffer);
    header[k] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + buf.length] };
    parts.push(buf);
    off += buf.length;
  }
  let json = JSON.stringify(header);
  while (json.length % 8 !== 0) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...parts]));
}

test('bf16 checkpoints load (widened to f32) and keep their values', () => {
  const layer = randomLayer('olmoe', 'per-expert', 11);
  const file = path.join(dir, 'olmoe-bf16.safetensors');
  writeSafetensorsSync(file, moeLayerToHfTensors(layer, 'olmoe', N, { dtype: 'BF16' }));
  const loaded = loadMoEBlockFromHf({ config: CONFIGS.olmoe, layer: N, tensors: file });
  assert.equal(loaded.routerWeight.dtype, 'f32');
  const w = readSafetensorsSync(file).tensors.get('model.layers.1.mlp.gate.weight')!;
  assert.deepEqual(Array.from(loaded.routerWeight.dataSync()), Array.from(w.data));
  assertClose(loaded.routerWeight.dataSync(), layer.routerWeight.dataSync(), 0, 1 / 128);
  void fromArray;
});
