// OLMo-core MoE checkpoints: hand-built tensors in MoEMLP (bmm, [E·d, h]) and DroplessMoEMLP
// (grouped GEMM, [E·h, d]) layouts and the flat router.weight [E·d]; the loaded layer against a
// forward written from OLMo-core's source, and export back to the same bytes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { moeConfig } from '../src/moe/config.js';
import { HfCheckpointError } from '../src/moe/hf/checkpoint.js';
import { loadMoEBlockFromOlmoCore, moeLayerToOlmoCoreTensors } from '../src/moe/olmo-core/checkpoint.js';
import type { MoEType as OlmoCoreMoEType } from '../src/moe/olmo-core/config.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose, randF64 } from './helpers/gradcheck.js';
import { silu, softmaxRow, topkIdx } from './helpers/moe-reference.js';

const E = 3;
const d = 4;
const h = 2;
const hs = 5;
const K = 2;
const T = 6;

function handBuilt(seed: number): Record<string, { shape: number[]; data: Float64Array }> {
  const g = new Generator(seed);
  const arr = (n: number) => Float64Array.from({ length: n }, () => g.uniform() * 2 - 1);
  return {
    'router.weight': { shape: [E * d], data: arr(E * d) },
    'experts.mlp.w1': { shape: [0], data: arr(E * d * h) },
    'experts.mlp.w3': { shape: [0], data: arr(E * d * h) },
    'experts.mlp.w2': { shape: [E * h, d], data: arr(E * h * d) },
    'shared_mlp.w1.weight': { shape: [hs, d], data: arr(hs * d) },
    'shared_mlp.w3.weight': { shape: [hs, d], data: arr(hs * d) },
    'shared_mlp.w2.weight': { shape: [d, hs], data: arr(d * hs) },
  };
}

/** OLMo-core's forward on one token, from its source: softmax router on router.weight.view(E, d), top-k, SwiGLU experts, then shared/(K+1) + routed·K/(K+1). */
function reference(type: OlmoCoreMoEType, t: ReturnType<typeof handBuilt>, x: ArrayLike<number>): Float64Array {
  const logits = Array.from({ length: E }, (_, e) =>
    Array.from({ length: d }, (_, i) => t['router.weight'].data[e * d + i]! * x[i]!).reduce((a, v) => a + v, 0),
  );
  const p = softmaxRow(logits);
  const y = new Float64Array(d);
  // default: x·w1[e] with w1[e] = rows e·d.. of [E·d, h]; dropless: x·w1[e]ᵀ with w1[e] = rows e·h.. of [E·h, d]
  const proj = (w: Float64Array, e: number, j: number) =>
    Array.from({ length: d }, (_, i) => x[i]! * (type === 'default' ? w[(e * d + i) * h + j]! : w[(e * h + j) * d + i]!)).reduce(
      (a, v) => a + v,
      0,
    );
  for (const e of topkIdx(p, K)) {
    const a = Array.from({ length: h }, (_, j) => silu(proj(t['experts.mlp.w1'].data, e, j)) * proj(t['experts.mlp.w3'].data, e, j));
    for (let o = 0; o < d; o++) y[o]! += p[e]! * a.reduce((s, v, j) => s + v * t['experts.mlp.w2'].data[(e * h + j) * d + o]!, 0);
  }
  const lin = (w: Float64Array, rows: number, cols: number, v: ArrayLike<number>) =>
    Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => w[r * cols + c]! * v[c]!).reduce((a, b) => a + b, 0));
  const s1 = lin(t['shared_mlp.w1.weight'].data, hs, d, x);
  const s3 = lin(t['shared_mlp.w3.weight'].data, hs, d, x);
  const s = lin(
    t['shared_mlp.w2.weight'].data,
    d,
    hs,
    s1.map((v, j) => silu(v) * s3[j]!),
  );
  return y.map((v, o) => (v * K) / (K + 1) + s[o]! / (K + 1));
}

const cfg = moeConfig({
  hiddenSize: d,
  router: { numExperts: E, topK: K },
  experts: { intermediateSize: h },
  shared: { intermediateSize: hs, mix: 'olmo' },
});

for (const type of ['default', 'dropless'] as const) {
  test(`${type}: hand-built OLMo-core tensors load to the forward of its source, and export back bit for bit`, () => {
    const t = handBuilt(type === 'default' ? 1 : 2);
    const w13 = type === 'default' ? [E * d, h] : [E * h, d];
    t['experts.mlp.w1'].shape = w13;
    t['experts.mlp.w3'].shape = w13;
    const layer = loadMoEBlockFromOlmoCore({ config: cfg, tensors: t, moeType: type, dtype: 'f64' }).eval();
    const x = randF64([T, d], 5);
    const y = layer.forward(x).dataSync();
    const xd = x.dataSync();
    for (let tt = 0; tt < T; tt++)
      assertClose(y.subarray(tt * d, (tt + 1) * d), reference(type, t, xd.subarray(tt * d, (tt + 1) * d)), 1e-13, 1e-12, `token ${tt}`);
    const back = moeLayerToOlmoCoreTensors(layer, { moeType: type });
    assert.deepEqual(Object.keys(back).sort(), Object.keys(t).sort());
    for (const [k, v] of Object.entries(t)) {
      assert.deepEqual(back[k]!.shape, v.shape, k);
      assert.deepEqual(Array.from(back[k]!.data), Array.from(v.data), k);
    }
    // older OLMo-core: the same bytes as 3-D tensors
    const threeD = moeLayerToOlmoCoreTensors(layer, { moeType: type, threeD: true });
    assert.deepEqual(threeD['experts.mlp.w1']!.shape, type === 'default' ? [E, d, h] : [E, h, d]);
    const again = loadMoEBlockFromOlmoCore({ config: cfg, tensors: threeD, moeType: type, dtype: 'f64' }).eval();
    assert.deepEqual(Array.from(again.forward(x).dataSync()), Array.from(y));
  });
}

test('the two layouts are not interchangeable, and errors name the key and shapes', () => {
  const t = handBuilt(3);
  t['experts.mlp.w1'].shape = [E * d, h];
  t['experts.mlp.w3'].shape = [E * d, h];
  assert.throws(
    () => loadMoEBlockFromOlmoCore({ config: cfg, tensors: t, moeType: 'dropless' }),
    /tensor 'experts\.mlp\.w1' has shape \[12, 2\], expected \[6, 4\] or \[3, 2, 4\]/,
  );
  const { 'router.weight': _, ...noRouter } = t;
  assert.throws(
    () => loadMoEBlockFromOlmoCore({ config: cfg, tensors: noRouter, moeType: 'default' }),
    (e: unknown) => e instanceof HfCheckpointError && e.missingKeys.join() === 'router.weight',
  );
  const gpt = moeConfig({ hiddenSize: d, router: { numExperts: E, topK: K }, experts: { intermediateSize: h, kind: 'gpt-oss' } });
  assert.throws(
    () => loadMoEBlockFromOlmoCore({ config: gpt, tensors: t, moeType: 'default' }),
    /OLMo-core experts are SwiGLU without biases/,
  );
});
