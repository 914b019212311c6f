// OLMo-core native presets, parameter counts (OLMo-core num_params / num_active_params), and
// which layers are MoE (Diffulex rules + vLLM moe_layer_freq for DeepSeek + Llama-4 moe_layers).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMoeLayer } from '../src/moe/hf-config.js';
import { MoELayer } from '../src/moe/layer.js';
import { OLMO_CORE_PRESETS, moeParamCounts, olmoCorePreset, presetFromHf, presetNameFromHf } from '../src/moe/presets.js';
import { moeConfig } from '../src/moe/config.js';
import { Generator } from '../src/tensor/random.js';

test('isMoeLayer: DeepSeek first_k_dense_replace + moe_layer_freq (vLLM), Llama-4 moe_layers / interleave step', () => {
  const ds = { n_routed_experts: 64, first_k_dense_replace: 1, moe_layer_freq: 2 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6].filter((i) => isMoeLayer(ds, i)),
    [2, 4, 6],
  );
  assert.deepEqual(
    [0, 1, 2, 3].filter((i) => isMoeLayer({ n_routed_experts: 64, first_k_dense_replace: 1, moe_layer_freq: 1 }, i)),
    [1, 2, 3],
  );
  assert.deepEqual(
    [0, 1, 2, 3].filter((i) => isMoeLayer({ n_routed_experts: 64, moe_layer_freq: 3 }, i)),
    [0, 3],
  );
  assert.throws(() => isMoeLayer({ n_routed_experts: 64, first_k_dense_replace: 0, moe_layer_freq: 0 }, 1), /moe_layer_freq/);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].filter((i) => isMoeLayer({ num_local_experts: 16, interleave_moe_layer_step: 2 }, i)),
    [1, 3, 5],
  );
  assert.deepEqual(
    [0, 1, 2, 3].filter((i) => isMoeLayer({ num_local_experts: 16, moe_layers: [0, 3], interleave_moe_layer_step: 2 }, i)),
    [0, 3],
  );
  // unchanged Qwen rule
  assert.deepEqual(
    [0, 1, 2, 3].filter((i) => isMoeLayer({ num_experts: 8, decoder_sparse_step: 2 }, i)),
    [1, 3],
  );
});

test('OLMo-core presets: smallmoe and olmoe_1B_7B', () => {
  assert.deepEqual([...OLMO_CORE_PRESETS], ['smallmoe', 'olmoe_1B_7B']);
  const s = olmoCorePreset('smallmoe', 512);
  assert.equal(s.hiddenSize, 512);
  assert.deepEqual([s.router.numExperts, s.router.topK, s.router.scoreFunc, s.router.renormalize], [32, 4, 'softmax', 'none']);
  assert.equal(s.experts.intermediateSize, 256);
  assert.deepEqual(s.shared, { intermediateSize: 1024, gate: 'none', mix: 'olmo' });
  assert.deepEqual([s.losses.lbWeight, s.losses.zLossWeight, s.losses.lbConvention, s.losses.scaleByNumLayers], [0.01, 0.001, 'one', true]);
  assert.equal(s.dispatch.capacityFactor, 1.2);
  assert.equal(olmoCorePreset('smallmoe').hiddenSize, 768);
  const o = olmoCorePreset('olmoe_1B_7B');
  assert.deepEqual(
    [o.hiddenSize, o.router.numExperts, o.router.topK, o.experts.intermediateSize, o.dispatch.capacityFactor, o.shared],
    [2048, 64, 8, 1024, null, null],
  );
  assert.deepEqual([o.losses.lbWeight, o.losses.zLossWeight], [0.01, 0.001]);
});

test('parameter counts: router + 3·d·h·E + shared; active uses top_k; equal to the built layer', () => {
  const o = moeParamCounts(olmoCorePreset('olmoe_1B_7B'));
  assert.equal(o.total, 64 * 2048 + 3 * 2048 * 1024 * 64);
  assert.equal(o.active, 64 * 2048 + 3 * 2048 * 1024 * 8);
  const s = moeParamCounts(olmoCorePreset('smallmoe', 768));
  assert.equal(s.total, 32 * 768 + 3 * 768 * 384 * 32 + 3 * 768 * 1536);
  assert.equal(s.active, 32 * 768 + 3 * 768 * 384 * 4 + 3 * 768 * 1536);
  const hf = {
    hidden_size: 8,
    intermediate_size: 6,
    num_local_experts: 4,
    experts_per_token: 2,
    num_experts: 4,
    shared_expert_intermediate_size: 5,
    n_shared_experts: 1,
  };
  const cfgs = [
    olmoCorePreset('smallmoe', 16),
    presetFromHf('gpt_oss', hf),
    presetFromHf('qwen2_moe', hf),
    presetFromHf('deepseek_v3', { ...hf, n_group: 2, topk_group: 1 }),
    moeConfig({ hiddenSize: 8, router: { numExperts: 4, topK: 1 }, experts: { intermediateSize: 8, kind: 'gelu', bias: true } }),
  ];
  for (const cfg of cfgs) {
    const layer = new MoELayer(cfg, { generator: new Generator(1) });
    const n = layer.namedParameters().reduce((p, [, t]) => p + t.size, 0);
    // the selection bias is a buffer here, a stored parameter (e_score_correction_bias) in HF checkpoints
    const selectionBias = cfg.router.selectionBias ? cfg.router.numExperts : 0;
    assert.equal(moeParamCounts(cfg).total, n + selectionBias, JSON.stringify(cfg.experts));
  }
});

test('presetNameFromHf maps model_type (llama4_text -> llama4) and rejects others', () => {
  assert.equal(presetNameFromHf({ model_type: 'llama4_text' }), 'llama4');
  assert.equal(presetNameFromHf({ model_type: 'deepseek_v3' }), 'deepseek_v3');
  assert.throws(() => presetNameFromHf({ model_type: 'llama' }), /model_type = 'llama'/);
});
