// Phi-MoE's sparsemixer (transformers modeling_phimoe): eval forward by hand and its gradient by
// central differences; training: Gumbel-sampled experts within the kept set, the 1 / (1/3)
// Heun factor, and the custom gradient w_o·(onehot − p) that ignores that factor.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray } from '../src/index.js';
import { routerConfig } from '../src/moe/config.js';
import { moeConfigFromHf } from '../src/moe/presets.js';
import { routeLogits } from '../src/moe/router.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose, randF64 } from './helpers/gradcheck.js';
import { numericGrad } from './helpers/moe-reference.js';

const cfgFor = (E: number, eps: number) => routerConfig({ numExperts: E, topK: 2, sparseMixer: { jitterEps: eps } });

/** One sparsemixer round (eval) written from the model file: kept set, softmax over it. */
function refRound(s: number[], excluded: number, eps: number): { id: number; p: number[] } {
  const cand = s.map((v, j) => (j === excluded ? -Infinity : v));
  const m = Math.max(...cand);
  const id = cand.indexOf(m);
  const kept = cand.map((v, j) => (v === -Infinity || (m - s[j]!) / Math.max(Math.abs(s[j]!), m) > 2 * eps ? -Infinity : v));
  const z = kept.reduce((a, v) => a + Math.exp(v - m), 0);
  return { id, p: kept.map((v) => Math.exp(v - m) / z) };
}

test('eval forward by hand: [2, 1.9, 0.5, -1] with eps 0.05 -> experts 0, 1 with weights σ(0.1), 1', () => {
  const r = routeLogits(fromArray(new Float64Array([2, 1.9, 0.5, -1]), [1, 4]), cfgFor(4, 0.05));
  assert.deepEqual(Array.from(r.topkIds.dataSync()), [0, 1]);
  assertClose(r.topkWeights.dataSync(), [1 / (1 + Math.exp(-0.1)), 1], 1e-15, 1e-14);
  // a wider gap keeps expert 2 in round 2: (1.9 - 0.5) / 1.9 = 0.737 <= 2·0.4
  const wide = routeLogits(fromArray(new Float64Array([2, 1.9, 0.5, -1]), [1, 4]), cfgFor(4, 0.4));
  assertClose([wide.topkWeights.dataSync()[1]!], [1 / (1 + Math.exp(-1.4))], 1e-15, 1e-14);
});

test('eval: weights and their gradient against the reference by central differences', () => {
  const T = 6;
  const E = 5;
  const eps = 0.3;
  const logits = randF64([T, E], 11, -1.5, 1.5);
  logits.requiresGrad = true;
  const r = routeLogits(logits, cfgFor(E, eps));
  const g = randF64([T, 2], 12);
  const ld = Float64Array.from(logits.dataSync());
  const ref = () => {
    const w: number[] = [];
    for (let t = 0; t < T; t++) {
      const s = Array.from(ld.subarray(t * E, (t + 1) * E));
      const a = refRound(s, -1, eps);
      const b = refRound(s, a.id, eps);
      w.push(a.p[a.id]!, b.p[b.id]!);
    }
    return w;
  };
  assertClose(r.topkWeights.dataSync(), ref(), 1e-14, 1e-12, 'weights');
  r.topkWeights.backward(g);
  const gd = g.dataSync();
  assertClose(
    logits.grad!.dataSync(),
    numericGrad(() => ref().reduce((a, v, i) => a + v * gd[i]!, 0), ld),
    1e-7,
    1e-6,
    'd/dlogits',
  );
});

test('training: sampled experts lie in the kept set, weights carry the 1 or 0.3333 factor, the gradient ignores it', () => {
  const T = 40;
  const E = 6;
  const eps = 0.3;
  const logits = randF64([T, E], 21, -1, 1);
  logits.requiresGrad = true;
  const r = routeLogits(logits, cfgFor(E, eps), { training: true, generator: new Generator(5) });
  const ids = r.topkIds.dataSync();
  const w = r.topkWeights.dataSync();
  const g = randF64([T, 2], 22).dataSync();
  r.topkWeights.backward(fromArray(Float64Array.from(g), [T, 2]));
  const want = new Float64Array(T * E);
  const ld = logits.dataSync();
  let differsFromEval = 0;
  for (let t = 0; t < T; t++) {
    const s = Array.from(ld.subarray(t * E, (t + 1) * E));
    let excluded = -1;
    for (let k = 0; k < 2; k++) {
      const id = ids[t * 2 + k]!;
      const { p, id: evalId } = refRound(s, excluded, eps);
      if (id !== evalId) differsFromEval++;
      assert.ok(p[id]! > 0, `token ${t} slot ${k}: expert ${id} is outside the kept set`);
      const lambda = w[t * 2 + k]! / p[id]!;
      assert.ok(Math.abs(lambda - 1) < 1e-12 || Math.abs(lambda - 0.3333) < 1e-12, `lambda ${lambda}`);
      for (let j = 0; j < E; j++) want[t * E + j] += g[t * 2 + k]! * p[id]! * ((j === id ? 1 : 0) - p[j]!);
      excluded = id;
    }
  }
  assert.ok(differsFromEval > 0, 'training samples: some choices differ from the argmax');
  assertClose(logits.grad!.dataSync(), want, 1e-12, 1e-10, 'd/dlogits (factor ignored)');
});

test('training statistics: uniform samples among equal kept scores, P(factor 1) = 1/4 + 3/4·1/4', () => {
  const T = 4000;
  const E = 4;
  const logits = fromArray(new Float64Array(T * E), [T, E]);
  const r = routeLogits(logits, cfgFor(E, 0.01), { training: true, generator: new Generator(9) });
  const ids = r.topkIds.dataSync();
  const w = r.topkWeights.dataSync();
  const first = new Array<number>(E).fill(0);
  let ones = 0;
  for (let t = 0; t < T; t++) {
    first[ids[t * 2]!]!++;
    if (Math.abs(w[t * 2]! - 0.25) < 1e-12) ones++;
  }
  // 4000 draws: a 25% share has a standard deviation of 0.7 points; allow 3 points
  for (const c of first) assert.ok(Math.abs(c / T - 0.25) < 0.03, `expert share ${c / T}`);
  assert.ok(Math.abs(ones / T - 0.4375) < 0.03, `factor-1 share ${ones / T}`);
});

test('phimoe preset: sparsemixer from router_jitter_noise, input jitter from input_jitter_noise; only top-2', () => {
  const cfg = moeConfigFromHf({
    model_type: 'phimoe',
    hidden_size: 8,
    intermediate_size: 4,
    num_local_experts: 4,
    num_experts_per_tok: 2,
    router_jitter_noise: 0.01,
    input_jitter_noise: 0.02,
  });
  assert.deepEqual(cfg.router.sparseMixer, { jitterEps: 0.01 });
  assert.equal(cfg.router.jitterEps, 0.02);
  assert.throws(
    () => routerConfig({ numExperts: 4, topK: 3, sparseMixer: { jitterEps: 0.01 } }),
    /router\.topK = 3 is invalid: expected 2 with sparseMixer/,
  );
  assert.throws(
    () => routerConfig({ numExperts: 4, topK: 2, renormalize: 'sum', sparseMixer: { jitterEps: 0.01 } }),
    /router\.sparseMixer = .* is invalid/,
  );
});
