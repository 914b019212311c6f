// The seeds' remaining public surface, each held to the seed's semantics: Diffulex
// RouterMetadata.empty / fromTopkOutput and its optimised top-k's guards; OLMo-core MoEType and
// defaults, sigmoid + 1e-7, loss_div_factor, num_params / num_flops_per_token, post_batch(dry_run)
// and a model-wide postBatch; celmoe's CELMoEConfig / CELMoEOutput / ExpertModule names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray } from '../src/index.js';
import { Module } from '../src/nn/module.js';
import { routerConfig } from '../src/moe/config.js';
import { RouterMetadata } from '../src/moe/contracts.js';
import { MoELayer } from '../src/moe/layer.js';
import { auxLossWeights } from '../src/moe/losses.js';
import { routeLogits } from '../src/moe/router.js';
import { olmoCoreLoadBalancingLoss, olmoCoreRouterZLoss } from '../src/moe/olmo-core/losses.js';
import { olmoCoreMoEConfig, olmoCoreMoEFlopsPerToken, olmoCoreNumParams } from '../src/moe/olmo-core/config.js';
import { moePostBatch, postBatch } from '../src/moe/olmo-core/post-batch.js';
import {
  ExpertModule,
  HierarchicalCELMoE,
  celmoeConfig,
  type CELMoEOutput,
  type ExpertBatch,
  type ExpertResult,
} from '../src/moe/hierarchy/index.js';
import { mul } from '../src/ops/elementwise.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose, randF64 } from './helpers/gradcheck.js';

test('Diffulex RouterMetadata.empty: 0 tokens, ids i32 (-1 fill), logits / weights in the hidden dtype; frozen', () => {
  const h = randF64([3, 4], 1);
  const m = RouterMetadata.empty(h, 8, 2);
  assert.deepEqual(
    [m.routerLogits.shape, m.topkIds.shape, m.topkWeights.shape],
    [
      [0, 8],
      [0, 2],
      [0, 2],
    ],
  );
  assert.deepEqual([m.routerLogits.dtype, m.topkIds.dtype, m.topkWeights.dtype], ['f64', 'i32', 'f64']);
  assert.ok(Object.isFrozen(m));
  assert.throws(() => RouterMetadata.empty(h, 0, 2), /numExperts = 0 is invalid/);
});

test("Diffulex RouterMetadata.fromTopkOutput: the router output's own tensors (moekit names or TopKOutput names)", () => {
  const r = routeLogits(randF64([5, 6], 2), routerConfig({ numExperts: 6, topK: 2 }));
  const m = RouterMetadata.fromTopkOutput(r);
  assert.ok(m.routerLogits === r.logits && m.topkIds === r.topkIds && m.topkWeights === r.topkWeights);
  const t = RouterMetadata.fromTopkOutput({ weights: r.topkWeights, ids: r.topkIds, routerLogits: r.logits });
  assert.ok(t.routerLogits === r.logits && t.topkIds === r.topkIds && t.topkWeights === r.topkWeights);
});

test('Diffulex optimised top-k: NaN -> -1e20, clamp to +-1e20, ties to the lowest index, renormalised also at k = 1', () => {
  const x = fromArray(new Float64Array([NaN, 2, Infinity, 1, 1, 1, 1, 1]), [2, 4]);
  x.requiresGrad = true;
  const guarded = routeLogits(x, routerConfig({ numExperts: 4, topK: 2, scoreFunc: 'sigmoid', renormalize: 'sum', sanitizeLogits: true }));
  // row 0 becomes [-1e20, 2, 1e20, 1]: sigmoid [0, σ(2), 1, σ(1)] -> experts 2, 1; row 1 ties pick experts 0, 1
  assert.deepEqual(Array.from(guarded.topkIds.dataSync()), [2, 1, 0, 1]);
  const s2 = 1 / (1 + Math.exp(-2));
  assertClose(guarded.topkWeights.dataSync(), [1 / (1 + s2), s2 / (1 + s2), 0.5, 0.5], 1e-15, 1e-14);
  guarded.topkWeights.backward(fromArray(new Float64Array([1, 2, 3, 4]), [2, 2]));
  const g = x.grad!.dataSync();
  assert.equal(g[0], 0, 'no gradient into the NaN');
  assert.equal(g[2], 0, 'no gradient into the clamped +inf');
  // without the guard the NaN poisons the row
  const raw = routeLogits(
    fromArray(new Float64Array([NaN, 2, Infinity, 1]), [1, 4]),
    routerConfig({ numExperts: 4, topK: 2, scoreFunc: 'sigmoid', renormalize: 'sum' }),
  );
  assert.ok(Array.from(raw.topkWeights.dataSync()).some(Number.isNaN));
  // k = 1: the Triton path renormalises (weight 1); the naive reference does not (weight = p)
  const l = randF64([3, 4], 3);
  const k1 = (renormalize: 'sum' | 'none') =>
    Array.from(routeLogits(l, routerConfig({ numExperts: 4, topK: 1, renormalize, sanitizeLogits: true })).topkWeights.dataSync());
  assertClose(k1('sum'), [1, 1, 1], 1e-15, 0);
  assert.ok(k1('none').every((w) => w > 0.25 && w < 1));
});

test('OLMo-core MoEType and defaults: capacity 1.2 for default, none for dropless, lb 0.01, scaled by layers, top-1 softmax', () => {
  const d = olmoCoreMoEConfig({ numExperts: 8, hiddenSize: 16 }, 32);
  assert.equal(d.dispatch.capacityFactor, 1.2);
  assert.deepEqual([d.router.topK, d.router.scoreFunc, d.router.renormalize], [1, 'softmax', 'none']);
  assert.deepEqual([d.losses.lbWeight, d.losses.lbConvention, d.losses.scaleByNumLayers, d.losses.zLossWeight], [0.01, 'one', true, 0]);
  assert.deepEqual(auxLossWeights(d.losses, 4), { lb: 0.0025, z: 0 });
  assert.equal(olmoCoreMoEConfig({ name: 'dropless', numExperts: 8, hiddenSize: 16 }, 32).dispatch.capacityFactor, null);
  assert.equal(olmoCoreMoEConfig({ numExperts: 8, hiddenSize: 16, capacityFactor: 2 }, 32).dispatch.capacityFactor, 2);
  assert.throws(
    () => olmoCoreMoEConfig({ name: 'dropless', numExperts: 8, hiddenSize: 16, capacityFactor: 2 }, 32),
    /capacityFactor = 2 is invalid: expected null for MoEType 'dropless'/,
  );
  assert.equal(olmoCoreMoEConfig({ numExperts: 8, hiddenSize: 16, lbLossWeight: null }, 32).losses.lbWeight, 0);
  const p2 = olmoCoreMoEConfig({ numExperts: 8, hiddenSize: 16, router: { topK: 2, normalizeExpertWeights: 2 } }, 32);
  assert.deepEqual([p2.router.renormalize, p2.router.renormP], ['pnorm', 2]);
});

test('OLMo-core sigmoid gating: scores σ(l) + 1e-7, the weights gathered from them', () => {
  const cfg = olmoCoreMoEConfig({ numExperts: 4, hiddenSize: 8, router: { topK: 2, gatingFunction: 'sigmoid' } }, 8);
  const l = randF64([3, 4], 4);
  const r = routeLogits(l, cfg.router);
  const want = Array.from(l.dataSync()).map((v) => 1 / (1 + Math.exp(-v)) + 1e-7);
  assertClose(r.scores.dataSync(), want, 1e-16, 1e-14);
  const ids = r.topkIds.dataSync();
  assertClose(
    r.topkWeights.dataSync(),
    Array.from(ids).map((e, i) => want[Math.floor(i / 2) * 4 + e]!),
    1e-16,
    1e-14,
  );
});

test('OLMo-core num_params / num_active_params / num_flops_per_token of a block by hand', () => {
  const cfg = olmoCoreMoEConfig({ numExperts: 8, hiddenSize: 6, router: { topK: 3, biasGamma: 0.001 }, sharedMlp: { hiddenSize: 10 } }, 4);
  // router E·d = 32 (score_bias is a buffer), experts 3·4·6 = 72 each, shared 3·4·10 = 120
  assert.deepEqual(olmoCoreNumParams(cfg), { total: 32 + 72 * 8 + 120, active: 32 + 72 * 3 + 120 });
  assert.equal(olmoCoreMoEFlopsPerToken(cfg), 6 * 32 + 6 * 120 + 6 * Math.floor((72 * 8 * 3) / 8));
});

test('OLMo-core loss_div_factor: LB = (E/K)·Σ c_e·mean(scores_e) / div, z = Σ lse² / div', () => {
  const T = 6;
  const E = 4;
  const K = 2;
  const logits = randF64([T, E], 5);
  const r = routeLogits(logits, routerConfig({ numExperts: E, topK: K }));
  const s = r.scores.dataSync();
  const c = new Array<number>(E).fill(0);
  for (const e of r.topkIds.dataSync()) c[e]!++;
  const mean = (e: number) => Array.from({ length: T }, (_, t) => s[t * E + e]!).reduce((a, v) => a + v, 0) / T;
  const dot = c.reduce((a, ce, e) => a + ce * mean(e), 0);
  for (const div of [undefined, 10]) {
    const want = ((E / K) * dot) / (div ?? T);
    assertClose(olmoCoreLoadBalancingLoss(r.scores, r.topkIds, { lossDivFactor: div }).dataSync(), [want], 1e-15, 1e-13);
  }
  // instance: (E/K)·Σ_b Σ_e c_{b,e}·mean_{t in b}(scores_e) / div, div = B·S by default
  const inst = (b: number, e: number) => {
    const ids = r.topkIds.dataSync();
    let cnt = 0;
    let m = 0;
    for (let t = b * 3; t < b * 3 + 3; t++) {
      for (let k = 0; k < K; k++) if (ids[t * K + k] === e) cnt++;
      m += s[t * E + e]! / 3;
    }
    return cnt * m;
  };
  const instSum = [0, 1].reduce((a, b) => a + [0, 1, 2, 3].reduce((x, e) => x + inst(b, e), 0), 0);
  for (const div of [undefined, 4]) {
    const got = olmoCoreLoadBalancingLoss(r.scores, r.topkIds, { granularity: 'instance', batchSize: 2, lossDivFactor: div }).dataSync();
    assertClose(got, [((E / K) * instSum) / (div ?? T)], 1e-15, 1e-13);
  }
  const ld = logits.dataSync();
  const lse2 = Array.from(
    { length: T },
    (_, t) => Math.log(Array.from({ length: E }, (_, e) => Math.exp(ld[t * E + e]!)).reduce((a, v) => a + v, 0)) ** 2,
  ).reduce((a, v) => a + v, 0);
  assertClose(olmoCoreRouterZLoss(logits, 7).dataSync(), [lse2 / 7], 1e-15, 1e-13);
  assert.throws(() => olmoCoreRouterZLoss(logits, 0), /lossDivFactor = 0 is invalid/);
});

test('OLMo-core post_batch(dry_run): the delta is computed and the counts reset, the bias stays; a model-wide postBatch', () => {
  const cfg = olmoCoreMoEConfig({ name: 'dropless', numExperts: 4, hiddenSize: 4, router: { topK: 1, biasGamma: 0.5 } }, 3);
  class Two extends Module {
    readonly a = new MoELayer(cfg, { dtype: 'f64', generator: new Generator(1) });
    readonly b = new MoELayer(cfg, { dtype: 'f64', generator: new Generator(2) });
  }
  const model = new Two();
  model.train();
  const x = randF64([16, 3], 6);
  model.a.forward(x);
  const counts = Array.from(model.a.selectionBias!.pendingCounts);
  const ideal = counts.reduce((p, v) => p + v, 0) / 4;
  const dry = moePostBatch(model.a, { dryRun: true })!;
  assert.deepEqual(
    Array.from(dry),
    counts.map((v) => 0.5 * Math.sign(ideal - v)),
  );
  assert.deepEqual(Array.from(model.a.selectionBias!.bias.dataSync()), [0, 0, 0, 0], 'dry run leaves the bias');
  assert.deepEqual(Array.from(model.a.selectionBias!.pendingCounts), [0, 0, 0, 0], 'and resets the counts');
  model.a.forward(x);
  model.b.forward(mul(x, 2));
  const deltas = postBatch(model);
  assert.deepEqual([...deltas.keys()], ['a', 'b']);
  assert.deepEqual(Array.from(model.a.selectionBias!.bias.dataSync()), Array.from(deltas.get('a')!));
  model.eval();
  assert.equal(moePostBatch(model.a), null, 'eval mode: nothing to do');
});

test('celmoe names: an ExpertModule subclass in HierarchicalCELMoE built from celmoeConfig, output typed CELMoEOutput', () => {
  class Doubler extends ExpertModule {
    forward(batch: ExpertBatch): ExpertResult {
      return { hidden: mul(batch.hidden, 2) };
    }
  }
  const cfg = celmoeConfig({ hiddenSize: 3, levels: [{ name: 'universal', experts: [{ name: 'all' }] }], useLearnedFusion: false });
  const model = new HierarchicalCELMoE(cfg, () => new Doubler());
  const x = randF64([2, 3], 7);
  const out: CELMoEOutput = model.forward(x);
  assertClose(
    out.fusedHidden.dataSync(),
    Array.from(x.dataSync()).map((v) => 2 * v),
    1e-15,
    0,
  );
});
