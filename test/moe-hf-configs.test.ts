// Configs that used to be rejected: DBRX's nested ffn_config, multimodal Llama-4's text_config,
// Phi-MoE (see moe-sparsemixer.test.ts), Grok-1's missing model_type; DeepSeek-V3's group mask.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { loadMoEBlockFromHf, moeLayerToHfTensors } from '../src/moe/hf/checkpoint.js';
import { MoELayer } from '../src/moe/layer.js';
import { moeConfigFromHf, presetFromHf } from '../src/moe/presets.js';
import { routeLogits } from '../src/moe/router.js';
import { fromArray } from '../src/index.js';
import { Generator } from '../src/tensor/random.js';
import { randF64 } from './helpers/gradcheck.js';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../models/${name}.json`, import.meta.url), 'utf8')) as Record<string, unknown>;

test('DBRX: sizes from ffn_config, L1-renormalised top-4 by default, moe_normalize_expert_weights null = none', () => {
  const c = moeConfigFromHf(fixture('dbrx'));
  assert.deepEqual([c.hiddenSize, c.router.numExperts, c.router.topK, c.experts.intermediateSize], [6144, 16, 4, 10752]);
  assert.deepEqual([c.router.renormalize, c.router.renormP], ['pnorm', 1]);
  assert.equal(c.losses.lbWeight, 0.05);
  const none = fixture('dbrx');
  none['ffn_config'] = { ...(none['ffn_config'] as object), moe_normalize_expert_weights: null };
  assert.equal(moeConfigFromHf(none).router.renormalize, 'none');
});

test('multimodal Llama-4: the block comes from text_config, loads under language_model.', () => {
  const c = moeConfigFromHf(fixture('llama-4-scout-17b-16e'));
  assert.deepEqual(
    [c.hiddenSize, c.router.numExperts, c.router.topK, c.experts.intermediateSize, c.shared?.intermediateSize],
    [5120, 16, 1, 8192, 8192],
  );
  const mm = {
    model_type: 'llama4',
    text_config: {
      model_type: 'llama4_text',
      hidden_size: 4,
      intermediate_size: 3,
      num_local_experts: 4,
      num_experts_per_tok: 1,
      interleave_moe_layer_step: 1,
    },
  };
  const layer = new MoELayer(presetFromHf('llama4', mm), { dtype: 'f64', generator: new Generator(2) });
  const prefix = 'language_model.model.layers.1.';
  const tensors = new Map(Object.entries(moeLayerToHfTensors(layer, 'llama4', 1, { prefix })));
  assert.ok(tensors.has('language_model.model.layers.1.feed_forward.router.weight'));
  const loaded = loadMoEBlockFromHf({ config: mm, layer: 1, tensors, prefix, dtype: 'f64' });
  const x = randF64([3, 4], 3);
  assert.deepEqual(Array.from(loaded.eval().forward(x).dataSync()), Array.from(layer.eval().forward(x).dataSync()));
});

test('DeepSeek-V3: masked groups are -inf by default, 0.0 on request; they pick differently when biased scores < 0', () => {
  const v3 = fixture('deepseek-v3');
  assert.equal(moeConfigFromHf(v3).router.groupLimit!.maskValue, 'neg-inf');
  assert.equal(moeConfigFromHf(v3, { groupMaskValue: 'zero' }).router.groupLimit!.maskValue, 'zero');
  // 4 experts in 2 groups, keep 1 group, top-2: the kept group {0, 1} has biased scores < 0
  const small = {
    model_type: 'deepseek_v3',
    hidden_size: 2,
    moe_intermediate_size: 2,
    n_routed_experts: 4,
    num_experts_per_tok: 2,
    n_group: 2,
    topk_group: 1,
  };
  const logits = fromArray(new Float64Array([3, 2, -4, -5]), [1, 4]);
  const bias = fromArray(new Float64Array([-1.5, -1.5, 0, -0.1]), [4]);
  const ids = (mask: 'zero' | 'neg-inf') =>
    Array.from(routeLogits(logits, moeConfigFromHf(small, { groupMaskValue: mask }).router, { selectionBias: bias }).topkIds.dataSync());
  // s' = σ(l) + b = [-0.547, -0.619, 0.018, -0.093]; group sums -1.166 vs -0.075: group 1 kept
  assert.deepEqual(ids('neg-inf'), [2, 3]);
  // masking group 0 to 0.0 puts it above expert 3's -0.093: expert 0 takes the second slot
  assert.deepEqual(ids('zero'), [2, 0]);
  const tensors = new Map(
    Object.entries(
      moeLayerToHfTensors(new MoELayer(moeConfigFromHf(small), { dtype: 'f64', generator: new Generator(1) }), 'deepseek_v3', 0),
    ),
  );
  assert.equal(loadMoEBlockFromHf({ config: small, layer: 0, tensors, groupMaskValue: 'zero' }).cfg.router.groupLimit!.maskValue, 'zero');
});

test('Grok-1 (no model_type) fails naming what is missing', () => {
  assert.throws(
    () =>
      moeConfigFromHf({
        architectures: ['Grok1ModelForCausalLM'],
        hidden_size: 6144,
        num_experts: 8,
        num_experts_per_tok: 2,
        widening_factor: 8,
      }),
    /model_type = undefined is invalid: expected one of .*looks like Grok-1, whose config has no model_type/,
  );
});
