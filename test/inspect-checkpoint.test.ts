// `moekit inspect` on checkpoint directories: every tensor checked by name from the headers,
// per-expert norms read from the experts' bytes only, single-file and sharded checkpoints.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readCheckpointIndex, readTensorRows, writeShardedSafetensors } from '../src/io/safetensors-sharded.js';
import type { SafetensorsTensor } from '../src/io/safetensors.js';
import { checkpointLayout } from '../src/inspect/checkpoint-layout.js';
import { modelSpecFromHf } from '../src/inspect/model-spec.js';
import { inspectTarget } from '../src/inspect/target.js';
import { Generator } from '../src/tensor/random.js';
import { runMoekit } from './helpers/cli.js';
import { TINY_DEEPSEEK_V3 } from './helpers/tiny-deepseek-v3.js';

const TINY = {
  model_type: 'mixtral',
  vocab_size: 10,
  hidden_size: 4,
  intermediate_size: 6,
  num_hidden_layers: 2,
  torch_dtype: 'float32',
  num_attention_heads: 2,
  num_key_value_heads: 1,
  num_local_experts: 3,
  num_experts_per_tok: 2,
  tie_word_embeddings: false,
};
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A checkpoint of random tensors for every name and shape the layout expects. */
function tensorsFor(config: Record<string, unknown>, seed = 1): Record<string, SafetensorsTensor> {
  const spec = modelSpecFromHf(config);
  const g = new Generator(seed);
  const out: Record<string, SafetensorsTensor> = {};
  for (const [name, e] of checkpointLayout(spec, new Set(), spec.modelType === 'mixtral' ? 'per-expert' : undefined).expected) {
    const n = e.shape.reduce((p, d) => p * d, 1);
    out[name] = { dtype: 'F32', shape: e.shape, data: Float32Array.from({ length: n }, () => g.normal()) };
  }
  return out;
}

function modelDir(config: Record<string, unknown>, tensors: Record<string, SafetensorsTensor>, maxShardBytes?: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'moekit-inspect-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeShardedSafetensors(dir, tensors, { maxShardBytes });
  return dir;
}

const frob = (...arrays: ArrayLike<number>[]) => Math.sqrt(arrays.reduce((s, a) => s + Array.from(a).reduce((t, v) => t + v * v, 0), 0));

test("a complete checkpoint matches; the norms are each expert's w1 + w3 + w2 Frobenius norm", () => {
  const tensors = tensorsFor(TINY);
  for (const shard of [undefined, 200]) {
    const dir = modelDir(TINY, tensors, shard);
    const r = inspectTarget(dir);
    if (shard) assert.ok(r.checkpoint!.files > 3, 'sharded');
    assert.equal(r.checkpoint!.ok, true, JSON.stringify(r.checkpoint));
    assert.equal(r.checkpoint!.tensors, Object.keys(tensors).length);
    for (const l of [0, 1]) {
      const want = [0, 1, 2].map((e) =>
        frob(...['w1', 'w3', 'w2'].map((w) => tensors[`model.layers.${l}.block_sparse_moe.experts.${e}.${w}.weight`]!.data)),
      );
      const got = r.expertNorms!.find((n) => n.layer === l)!.norms;
      got.forEach((v, e) => assert.ok(Math.abs(v - want[e]!) < 1e-4 * want[e]!, `layer ${l} expert ${e}: ${v} vs ${want[e]}`));
    }
  }
});

test('missing, unexpected, wrong shape and wrong dtype are listed by name', () => {
  const t = tensorsFor(TINY);
  delete t['model.layers.1.self_attn.k_proj.weight'];
  t['model.layers.0.block_sparse_moe.experts.3.w1.weight'] = { dtype: 'F32', shape: [6, 4], data: new Float32Array(24) };
  t['model.layers.0.self_attn.q_proj.weight'] = { dtype: 'F32', shape: [4, 3], data: new Float32Array(12) };
  t['model.norm.weight'] = { dtype: 'BF16', shape: [4], data: new Float32Array(4) };
  const c = inspectTarget(modelDir(TINY, t)).checkpoint!;
  assert.equal(c.ok, false);
  assert.deepEqual(c.missing, ['model.layers.1.self_attn.k_proj.weight']);
  assert.deepEqual(c.unexpected, ['model.layers.0.block_sparse_moe.experts.3.w1.weight']);
  assert.deepEqual(c.wrongShape, [{ name: 'model.layers.0.self_attn.q_proj.weight', expected: [4, 4], actual: [4, 3] }]);
  assert.deepEqual(c.wrongDtype, [{ name: 'model.norm.weight', expected: 'F32', actual: 'BF16' }]);
});

test('stacked experts: GPT-OSS MXFP4 blocks and DBRX [E·I, H] slices read only one expert each', () => {
  const gpt = {
    model_type: 'gpt_oss',
    vocab_size: 6,
    hidden_size: 32,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 8,
    num_local_experts: 2,
    num_experts_per_tok: 1,
    attention_bias: true,
    tie_word_embeddings: false,
  };
  const t = tensorsFor(gpt);
  const g = new Generator(3);
  for (const [w, out, inp] of [
    ['gate_up_proj', 64, 32],
    ['down_proj', 32, 32],
  ] as const) {
    delete t[`model.layers.0.mlp.experts.${w}`];
    t[`model.layers.0.mlp.experts.${w}_blocks`] = {
      dtype: 'U8',
      shape: [2, out, inp / 32, 16],
      data: Uint8Array.from({ length: 2 * out * 16 }, () => Math.floor(g.uniform() * 256)),
    };
    t[`model.layers.0.mlp.experts.${w}_scales`] = {
      dtype: 'U8',
      shape: [2, out, inp / 32],
      data: Uint8Array.from({ length: 2 * out }, () => 120 + Math.floor(g.uniform() * 10)),
    };
  }
  const r = inspectTarget(modelDir({ ...gpt, torch_dtype: 'float32' }, t));
  assert.equal(r.checkpoint!.ok, true, JSON.stringify(r.checkpoint));
  // independent: fp4 e2m1 value times 2^(scale - 127), byte low nibble first
  const fp4 = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
  const val = (code: number) => (code & 8 ? -1 : 1) * fp4[code & 7]!;
  for (const e of [0, 1]) {
    let ss = 0;
    for (const [w, out] of [
      ['gate_up_proj', 64],
      ['down_proj', 32],
    ] as const) {
      const b = t[`model.layers.0.mlp.experts.${w}_blocks`]!.data;
      const s = t[`model.layers.0.mlp.experts.${w}_scales`]!.data;
      for (let row = 0; row < out; row++) {
        const scale = 2 ** (s[e * out + row]! - 127);
        for (let i = 0; i < 16; i++) {
          const byte = b[(e * out + row) * 16 + i]!;
          ss += (val(byte & 15) * scale) ** 2 + (val(byte >> 4) * scale) ** 2;
        }
      }
    }
    assert.ok(Math.abs(r.expertNorms![0]!.norms[e]! - Math.sqrt(ss)) < 1e-6 * Math.sqrt(ss));
  }

  const dbrx = {
    model_type: 'dbrx',
    d_model: 4,
    n_heads: 2,
    n_layers: 1,
    vocab_size: 5,
    attn_config: { kv_n_heads: 1 },
    ffn_config: { ffn_hidden_size: 3, moe_num_experts: 2, moe_top_k: 1 },
  };
  const td = tensorsFor(dbrx);
  const rd = inspectTarget(modelDir(dbrx, td));
  assert.equal(rd.checkpoint!.ok, true, JSON.stringify(rd.checkpoint));
  const rows = (n: string, e: number) => td[`transformer.blocks.0.ffn.experts.mlp.${n}`]!.data.slice(e * 12, (e + 1) * 12);
  for (const e of [0, 1]) assert.ok(Math.abs(rd.expertNorms![0]!.norms[e]! - frob(rows('w1', e), rows('v1', e), rows('w2', e))) < 1e-5);
});

test('readTensorRows reads a row range; the shard index is cross-checked', () => {
  const t = tensorsFor(TINY);
  const dir = modelDir(TINY, t, 150);
  const idx = readCheckpointIndex(dir);
  const name = 'model.embed_tokens.weight';
  const rows = readTensorRows(name, idx.tensors.get(name)!, 3, 2);
  assert.deepEqual(rows.shape, [2, 4]);
  assert.deepEqual(Array.from(rows.data), Array.from(t[name]!.data.slice(12, 20)));
  assert.throws(() => readTensorRows(name, idx.tensors.get(name)!, 9, 2), /rows \[9, 11\) are outside \[0, 10\)/);
  assert.deepEqual(idx.listedButAbsent, []);
});

test('moekit inspect prints the table, --json the report, exit 2 on a mismatching checkpoint, 1 with a one-line error', () => {
  const run = (...args: string[]) => runMoekit(['inspect', ...args]);
  const table = run(join(import.meta.dirname, '..', 'models', 'mixtral-8x7b.json'));
  assert.equal(table.code, 0, table.why);
  assert.match(table.stdout, /0-31\s+moe\s+8\s+2/);
  assert.match(table.stdout, /46,702,792,704 \(46\.70B\)/);
  const t = tensorsFor(TINY);
  delete t['model.norm.weight'];
  const json = run(modelDir(TINY, t), '--json');
  assert.equal(json.code, 0, json.why);
  const parsed = JSON.parse(json.stdout) as { checkpoint: { missing: string[] }; model: { params: { total: number } } };
  assert.deepEqual(parsed.checkpoint.missing, ['model.norm.weight']);
  assert.equal(parsed.model.params.total, 652);
  const bad = run(modelDir(TINY, t));
  assert.equal(bad.code, 2, bad.why);
  assert.match(bad.stdout, /missing \(1\):\n {2}model\.norm\.weight/);
  const err = run(join(import.meta.dirname, 'helpers'));
  assert.equal(err.code, 1, err.why);
  assert.match(err.stderr.split('\n')[0]!, /^error: .*a model directory needs a config\.json$/);
  assert.doesNotMatch(err.stderr, /\n\s+at /, 'no stack trace');
  // a shipped model by name; an unknown name lists them
  const named = run('qwen3-30b-a3b', '--json');
  assert.equal(named.code, 0, named.why);
  assert.equal((JSON.parse(named.stdout) as { model: { params: { total: number } } }).model.params.total, 30_532_122_624);
  const unknown = run('no-such-model');
  assert.equal(unknown.code, 1, unknown.why);
  assert.match(unknown.stderr, /models: dbrx, deepseek-v2-lite, .*qwen3-30b-a3b/);
});

test("DeepSeek-V3's MTP layer after the decoder is outside the check, and the report says it is not counted", () => {
  const v3 = { ...TINY_DEEPSEEK_V3, num_nextn_predict_layers: 1 };
  const t = tensorsFor(v3);
  t['model.layers.2.eh_proj.weight'] = { dtype: 'F32', shape: [4, 8], data: new Float32Array(32) };
  const r = inspectTarget(modelDir(v3, t));
  assert.equal(r.checkpoint!.ok, true, JSON.stringify(r.checkpoint));
  assert.equal(r.checkpoint!.outside, 1);
  assert.match(r.model!.spec.notes[0]!, /multi-token-prediction module\(s\) are not counted/);
});

test('block-FP8 checkpoints (DeepSeek-V3 style): *_proj weights in F8_E4M3 with F32 weight_scale_inv; norms dequantised', () => {
  const v3 = {
    ...TINY_DEEPSEEK_V3,
    moe_intermediate_size: 3,
    torch_dtype: 'float32',
    quantization_config: { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: [2, 2] },
  };
  const g = new Generator(4);
  const fp8Values = [0.5, -1, 1.5, 2, -0.25, 3];
  const t: Record<string, SafetensorsTensor> = {};
  for (const [name, e] of checkpointLayout(modelSpecFromHf(v3), new Set(), 'per-expert').expected) {
    const n = e.shape.reduce((p, d) => p * d, 1);
    if (e.dtype === 'F8_E4M3')
      t[name] = { dtype: 'F8_E4M3', shape: e.shape, data: Float32Array.from({ length: n }, () => fp8Values[Math.floor(g.uniform() * 6)]!) };
    else t[name] = { dtype: 'F32', shape: e.shape, data: Float32Array.from({ length: n }, () => 0.5 + g.uniform()) };
  }
  // the router stays F32; the MLA projection with_mqa and the experts are FP8
  assert.equal(t['model.layers.1.mlp.gate.weight']!.dtype, 'F32');
  assert.equal(t['model.layers.0.self_attn.kv_a_proj_with_mqa.weight']!.dtype, 'F8_E4M3');
  assert.deepEqual(t['model.layers.1.mlp.experts.0.down_proj.weight_scale_inv']!.shape, [2, 2]); // [4, 3] in 2x2 blocks
  const r = inspectTarget(modelDir(v3, t));
  assert.equal(r.checkpoint!.ok, true, JSON.stringify(r.checkpoint));
  // expert 2 by hand: Σ (w · scale_inv[o/2, i/2])² over gate, up, down
  let ss = 0;
  for (const w of ['gate_proj', 'up_proj', 'down_proj']) {
    const k = `model.layers.1.mlp.experts.2.${w}.weight`;
    const [out, inp] = t[k]!.shape as [number, number];
    const sc = t[`${k}_scale_inv`]!.data;
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inp; i++) ss += (t[k]!.data[o * inp + i]! * sc[Math.floor(o / 2) * Math.ceil(inp / 2) + Math.floor(i / 2)]!) ** 2;
  }
  const got = r.expertNorms!.find((n) => n.layer === 1)!.norms[2]!;
  assert.ok(Math.abs(got - Math.sqrt(ss)) < 1e-5 * Math.sqrt(ss), `${got} vs ${Math.sqrt(ss)}`);
  // the selection bias may be kept in F32 whatever the model's dtype (1-D parameters)
  const bf16 = { ...v3, torch_dtype: 'bfloat16' };
  const asBf16 = Object.fromEntries(
    Object.entries(t).map(([k, v]) => [
      k,
      v.dtype === 'F32' && !k.endsWith('_scale_inv') && !k.endsWith('e_score_correction_bias') ? { ...v, dtype: 'BF16' as const } : v,
    ]),
  );
  assert.equal(inspectTarget(modelDir(bf16, asBf16)).checkpoint!.ok, true);
  // a BF16 weight where FP8 is expected is named
  t['model.layers.1.mlp.experts.0.up_proj.weight'] = { ...t['model.layers.1.mlp.experts.0.up_proj.weight']!, dtype: 'BF16' };
  const bad = inspectTarget(modelDir(v3, t)).checkpoint!;
  assert.deepEqual(bad.wrongDtype, [{ name: 'model.layers.1.mlp.experts.0.up_proj.weight', expected: 'F8_E4M3', actual: 'BF16' }]);
});
