// Whole-model accounting: hand-counted small configs, and the real models' configs held to
// their published total / active sizes at the published rounding.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { modelSpecFromHf } from '../src/inspect/model-spec.js';
import { expertParams, routerParams, sharedParams } from '../src/inspect/params.js';
import { inspectModel } from '../src/inspect/report.js';
import { hfBlockConfig } from '../src/moe/hf/checkpoint.js';
import { moeParamCounts, presetNameFromHf } from '../src/moe/presets.js';
import { hfTextConfig } from '../src/moe/hf-config.js';
import { TINY_DEEPSEEK_V3 } from './helpers/tiny-deepseek-v3.js';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../models/${name}.json`, import.meta.url), 'utf8')) as Record<string, unknown>;

const TINY_MIXTRAL = {
  model_type: 'mixtral',
  vocab_size: 10,
  hidden_size: 4,
  intermediate_size: 6,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  num_local_experts: 3,
  num_experts_per_tok: 2,
  tie_word_embeddings: false,
};

test('tiny Mixtral by hand: 652 total, 508 active, FLOPs and MXFP4 bytes', () => {
  // emb 40 + head 40 + final norm 4; per layer: attention q16 k8 v8 o16 = 48, norms 8, router 12,
  // experts 3 x (3·4·6 = 72) = 216 -> 284 (active: 2 experts -> 212)
  const r = inspectModel(TINY_MIXTRAL, { seqLen: 8 });
  assert.equal(r.spec.attention.kind, 'MQA');
  assert.equal(r.params.total, 40 + 40 + 4 + 2 * 284);
  assert.equal(r.params.active, 40 + 40 + 4 + 2 * 212);
  assert.deepEqual(r.params.perLayer, [
    { total: 284, active: 212 },
    { total: 284, active: 212 },
  ]);
  assert.equal(r.params.activeNonEmbedding, 508 - 40);
  // OLMo-core: 6·N + 12·L·h·(d/h)·t = 6·468 + 12·2·2·2·8
  assert.equal(r.flops.olmoCore, 6 * 468 + 768);
  assert.equal(r.flops.sixN, 6 * 468);
  // forward: 2·N + 2·L·h·t·(d_qk + d_v) = 936 + 2·2·2·8·4
  assert.equal(r.flops.forward, 936 + 256);
  assert.equal(r.flops.training, 3 * r.flops.forward);
  assert.equal(r.memory.fp32, 4 * 652);
  assert.equal(r.memory.bf16, 2 * 652);
  assert.equal(r.memory.mxfp4, (432 * 4.25) / 8 + 2 * (652 - 432));
  // tying the embedding drops the head
  assert.equal(inspectModel({ ...TINY_MIXTRAL, tie_word_embeddings: true }).params.total, 652 - 40);
});

test('tiny DeepSeek-V3 by hand: MLA with q LoRA, a dense first layer, shared expert, e_score_correction_bias', () => {
  const cfg = TINY_DEEPSEEK_V3;
  const r = inspectModel(cfg);
  assert.equal(r.spec.attention.kind, 'MLA');
  assert.deepEqual(
    r.layers.map((l) => l.ffn),
    ['dense', 'moe'],
  );
  // MLA: q_a 12 + norm 3 + q_b 3·2·3 = 18; kv_a 4·3 = 12 + norm 2 + kv_b 2·2·4 = 16; o 2·2·4 = 16 -> 79
  // layer 0: 79 + 8 + 3·4·5 = 147; layer 1: 79 + 8 + router 16 + bias 4 + 4 experts x 24 + shared 24 = 227
  assert.deepEqual(r.params.perLayer, [
    { total: 147, active: 147 },
    { total: 227, active: 179 },
  ]);
  assert.equal(r.params.total, 32 + 32 + 4 + 147 + 227);
  assert.equal(r.params.byPart.total.router, 20);
  // without q LoRA the query is one projection H x heads·(nope + rope) = 4·6
  const noLora = inspectModel({ ...cfg, q_lora_rank: null });
  assert.equal(noLora.params.perLayer[0]!.total, 147 - 33 + 24);
});

test('the MoE part of every layer equals moeParamCounts of the block the loader builds', () => {
  for (const name of [
    'mixtral-8x7b',
    'qwen1.5-moe-a2.7b',
    'qwen3-30b-a3b',
    'olmoe-1b-7b',
    'deepseek-v2-lite',
    'deepseek-v3',
    'gpt-oss-20b',
    'granite-3.0-1b-a400m',
    'llama-4-scout-17b-16e',
    'dbrx',
    'phi-3.5-moe',
  ]) {
    const c = fixture(name);
    const text = hfTextConfig(c);
    const spec = modelSpecFromHf(c);
    const moe = spec.layers.find((l) => l.kind === 'moe');
    assert.ok(moe && moe.kind === 'moe', name);
    const H = spec.hiddenSize;
    const mine = {
      total: routerParams(moe, H) + sharedParams(moe, H) + moe.numExperts * expertParams(moe, H),
      active: routerParams(moe, H) + sharedParams(moe, H) + moe.topK * expertParams(moe, H),
    };
    assert.deepEqual(mine, moeParamCounts(hfBlockConfig(presetNameFromHf(text), c)), name);
  }
});

/**
 * Published sizes (model cards / papers) and the convention each vendor's figure follows.
 * 'active' counts the input embedding unless `activeWithoutEmbedding` (OpenAI's gpt-oss card and
 * DeepSeek leave the embedding lookup out); vision towers count in total, never in active.
 * Rounding: 'nearest' unless 'floor' (Qwen3-30B-A3B's 3.35B is published as 3.3B,
 * DeepSeek-V2-Lite's 2.451B as 2.4B).
 */
const PUBLISHED: {
  file: string;
  total: number;
  active: number;
  digits: number;
  totalDigits?: number;
  activeWithoutEmbedding?: boolean;
  floor?: boolean;
}[] = [
  { file: 'mixtral-8x7b', total: 46.7, active: 12.9, digits: 1 },
  { file: 'mixtral-8x22b', total: 141, active: 39, digits: 0 },
  { file: 'olmoe-1b-7b', total: 6.9, active: 1.3, digits: 1 },
  { file: 'qwen1.5-moe-a2.7b', total: 14.3, active: 2.7, digits: 1 },
  { file: 'qwen3-30b-a3b', total: 30.5, active: 3.3, digits: 1, floor: true },
  { file: 'qwen3-235b-a22b', total: 235, active: 22, digits: 0 },
  { file: 'deepseek-v2-lite', total: 15.7, active: 2.4, digits: 1, activeWithoutEmbedding: true, floor: true },
  { file: 'deepseek-v3', total: 671, active: 37, digits: 0, activeWithoutEmbedding: true },
  { file: 'gpt-oss-20b', total: 21, active: 3.6, digits: 1, totalDigits: 0, activeWithoutEmbedding: true },
  { file: 'gpt-oss-120b', total: 117, active: 5.1, digits: 1, totalDigits: 0, activeWithoutEmbedding: true },
  { file: 'llama-4-scout-17b-16e', total: 109, active: 17, digits: 0 },
  { file: 'dbrx', total: 132, active: 36, digits: 0 },
  { file: 'phi-3.5-moe', total: 41.9, active: 6.6, digits: 1 },
  { file: 'granite-3.0-1b-a400m', total: 1.3, active: 0.4, digits: 1 },
];

test('real models: total / active at the published rounding', () => {
  for (const p of PUBLISHED) {
    const r = inspectModel(fixture(p.file)).params;
    const at = (n: number, floor = false, digits = p.digits) => {
      const s = 10 ** digits;
      return (floor ? Math.floor((n / 1e9) * s) : Math.round((n / 1e9) * s)) / s;
    };
    assert.equal(at(r.total, false, p.totalDigits ?? p.digits), p.total, `${p.file} total ${r.total}`);
    assert.equal(
      at(p.activeWithoutEmbedding ? r.activeNonEmbedding : r.active, p.floor),
      p.active,
      `${p.file} active ${r.active} / ${r.activeNonEmbedding}`,
    );
  }
});

test('gpt-oss: the model card to the 10 M (20.91B / 3.61B, 116.83B / 5.13B) and the MXFP4 checkpoint size', () => {
  const small = inspectModel(fixture('gpt-oss-20b'));
  const big = inspectModel(fixture('gpt-oss-120b'));
  assert.equal(Math.round(small.params.total / 1e7) / 100, 20.91);
  assert.equal(Math.round(small.params.activeNonEmbedding / 1e7) / 100, 3.61);
  assert.equal(Math.round(big.params.total / 1e7) / 100, 116.83);
  assert.equal(Math.round(big.params.activeNonEmbedding / 1e7) / 100, 5.13);
  // published checkpoints: 12.8 GiB and 60.8 GiB (experts MXFP4, the rest bf16)
  assert.equal(Math.round((small.memory.mxfp4 / 2 ** 30) * 10) / 10, 12.8);
  assert.equal(Math.round((big.memory.mxfp4 / 2 ** 30) * 10) / 10, 60.8);
});

test('layer maps: DeepSeek-V3 dense first 3, Qwen2-MoE shared + gate, Llama-4 vision outside active', () => {
  const v3 = inspectModel(fixture('deepseek-v3'));
  assert.deepEqual(
    v3.layers.slice(0, 4).map((l) => l.ffn),
    ['dense', 'dense', 'dense', 'moe'],
  );
  assert.equal(v3.layers.filter((l) => l.ffn === 'moe').length, 58);
  assert.equal(v3.spec.attention.kind, 'MLA');
  const q = inspectModel(fixture('qwen1.5-moe-a2.7b'));
  assert.equal(q.layers[0]!.shared, 5632);
  assert.equal(q.spec.attention.kind, 'MHA');
  const scout = inspectModel(fixture('llama-4-scout-17b-16e'));
  assert.equal(scout.spec.attention.kind, 'GQA');
  assert.ok(scout.params.byPart.total.extra > 8e8 && scout.params.byPart.active.extra === 0);
  assert.equal(inspectModel(fixture('mixtral-8x7b')).spec.attention.kind, 'GQA');
});

test('unsupported configs fail with one line naming the field; Grok-1 says what is missing', () => {
  assert.throws(() => modelSpecFromHf({ model_type: 'bert' }), /model_type = 'bert' is invalid: expected one of mixtral/);
  assert.throws(
    () => modelSpecFromHf({ architectures: ['Grok1ModelForCausalLM'], hidden_size: 6144, widening_factor: 8 }),
    /looks like Grok-1: its config has no model_type/,
  );
  assert.throws(() => modelSpecFromHf({ ...TINY_MIXTRAL, hidden_size: undefined }), /hidden_size = undefined is invalid/);
  assert.throws(
    () => modelSpecFromHf({ model_type: 'dbrx', d_model: 8, n_heads: 2, n_layers: 1, vocab_size: 4 }),
    /ffn_config = undefined is invalid/,
  );
});
