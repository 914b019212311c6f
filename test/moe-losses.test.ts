// Load-balancing loss (both conventions, granularities, mask, global batch), z-loss, weights,
// attachAuxLoss, and the aux-loss-free bias update.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray, sum, tensor, type Tensor } from '../src/index.js';
import { attachAuxLoss } from '../src/moe/aux-loss.js';
import { SelectionBias, biasUpdateDelta } from '../src/moe/balancing.js';
import { parseLossConfig, routerConfig } from '../src/moe/config.js';
import { LoadBalanceAccumulator, auxLossWeights, loadBalancingLoss, zLoss } from '../src/moe/losses.js';
import { routeLogits } from '../src/moe/router.js';
import { assertClose, gradcheck, randF64 } from './helpers/gradcheck.js';
import { refRoute, rows, softmaxRow } from './helpers/moe-reference.js';
import { forEachBackend } from './helpers/gradcheck.js';

const E = 6;
const K = 2;

/** HF formula from the spec: E · Σ_e (slots of e / tokens) · mean score of e, over real tokens. */
function refLb(scores: Float64Array[], ids: number[][], mask: number[] | null, oneConvention: boolean, freq?: number[]): number {
  const real = scores.map((_, t) => (mask ? mask[t]! : 1));
  const n = real.reduce((p, x) => p + x, 0);
  let loss = 0;
  for (let e = 0; e < E; e++) {
    let c = 0;
    let p = 0;
    scores.forEach((s, t) => {
      if (!real[t]) return;
      p += s[e]!;
      c += ids[t]!.filter((i) => i === e).length;
    });
    const f = freq ? freq[e]! : c / n;
    loss += f * (p / n);
  }
  return E * loss * (oneConvention ? 1 / K : 1);
}

const ids2d = (t: Tensor, k: number) => rows(t.dataSync(), t.size / k, k).map((r) => Array.from(r));

forEachBackend('moe losses', () => {
  test('LB at perfect balance: exactly top_k (HF) and exactly 1 (OLMo)', () => {
    const T = 12;
    const out = routeLogits(fromArray(new Float64Array(T * E), [T, E]), routerConfig({ numExperts: E, topK: K, uniformAssignment: true }));
    // exact up to float64 rounding
    assertClose([loadBalancingLoss(out.scores, out.topkIds, { convention: 'top-k' }).item()], [K], 1e-14, 0);
    assertClose([loadBalancingLoss(out.scores, out.topkIds, { convention: 'one' }).item()], [1], 1e-14, 0);
  });

  test('LB local batch, with padding mask, both conventions', () => {
    const T = 8;
    const logits = randF64([T, E], 3, -2, 2);
    const out = routeLogits(logits, routerConfig({ numExperts: E, topK: K }));
    const scores = rows(logits.dataSync(), T, E).map(softmaxRow);
    const ids = ids2d(out.topkIds, K);
    const mask = [1, 1, 0, 1, 1, 1, 0, 0];
    for (const one of [false, true]) {
      const convention = one ? 'one' : 'top-k';
      assertClose([loadBalancingLoss(out.scores, out.topkIds, { convention }).item()], [refLb(scores, ids, null, one)], 1e-12, 1e-12);
      const m = fromArray(Float64Array.from(mask), [T]);
      assertClose(
        [loadBalancingLoss(out.scores, out.topkIds, { convention, mask: m }).item()],
        [refLb(scores, ids, mask, one)],
        1e-12,
        1e-12,
      );
    }
  });

  test('LB per instance = mean of per-sequence losses', () => {
    const B = 3;
    const S = 4;
    const logits = randF64([B * S, E], 5, -2, 2);
    const out = routeLogits(logits, routerConfig({ numExperts: E, topK: K }));
    const scores = rows(logits.dataSync(), B * S, E).map(softmaxRow);
    const ids = ids2d(out.topkIds, K);
    let expected = 0;
    for (let b = 0; b < B; b++) expected += refLb(scores.slice(b * S, (b + 1) * S), ids.slice(b * S, (b + 1) * S), null, true) / B;
    const got = loadBalancingLoss(out.scores, out.topkIds, { convention: 'one', granularity: 'instance', batchSize: B }).item();
    assertClose([got], [expected], 1e-12, 1e-12);
  });

  test('LB global batch: frequencies accumulate over micro-batches; reset clears them', () => {
    const acc = new LoadBalanceAccumulator(E);
    const allIds: number[][] = [];
    for (const seed of [11, 12, 13]) {
      const logits = randF64([5, E], seed, -2, 2);
      const out = routeLogits(logits, routerConfig({ numExperts: E, topK: K }));
      acc.add(out.topkIds);
      allIds.push(...ids2d(out.topkIds, K));
      const freq = Array.from({ length: E }, (_, e) => allIds.flat().filter((i) => i === e).length / allIds.length);
      const scores = rows(logits.dataSync(), 5, E).map(softmaxRow);
      const got = loadBalancingLoss(out.scores, out.topkIds, { convention: 'top-k', frequencies: acc.frequencies() }).item();
      assertClose([got], [refLb(scores, ids2d(out.topkIds, K), null, false, freq)], 1e-12, 1e-12);
    }
    acc.reset();
    assert.equal(acc.tokens, 0);
    assert.deepEqual(Array.from(acc.counts), new Array(E).fill(0));
  });

  test('LB gradient w.r.t. logits (finite differences, fixed routing)', () => {
    const logits = randF64([6, E], 7, -2, 2).requiresGrad_();
    const ids = routeLogits(logits, routerConfig({ numExperts: E, topK: K })).topkIds;
    gradcheck((z) => loadBalancingLoss(z.softmax(-1), ids, { convention: 'one' }), [logits]);
    gradcheck((z) => loadBalancingLoss(z.sigmoid(), ids, { convention: 'top-k', normalizeScores: true }), [logits]);
  });

  test('z-loss = mean over (real) tokens of logsumexp², and its gradient', () => {
    const T = 5;
    const logits = randF64([T, E], 9, -3, 3);
    const lse = rows(logits.dataSync(), T, E).map((r) => Math.log(r.reduce((p, x) => p + Math.exp(x), 0)));
    assertClose([zLoss(logits).item()], [lse.reduce((p, x) => p + x * x, 0) / T], 1e-12, 1e-12);
    const mask = [1, 0, 1, 1, 0];
    const masked = lse.reduce((p, x, t) => p + mask[t]! * x * x, 0) / 3;
    assertClose([zLoss(logits, fromArray(Float64Array.from(mask), [T])).item()], [masked], 1e-12, 1e-12);
    gradcheck((z) => zLoss(z), [logits.requiresGrad_()]);
  });

  test('loss weights divided by the number of layers when asked', () => {
    assert.deepEqual(auxLossWeights(parseLossConfig({ lbWeight: 0.01, zLossWeight: 0.001, scaleByNumLayers: true }), 4), {
      lb: 0.01 / 4,
      z: 0.001 / 4,
    });
    assert.deepEqual(auxLossWeights(parseLossConfig({ lbWeight: 0.01, zLossWeight: 0.001 }), 4), { lb: 0.01, z: 0.001 });
  });

  test('attachAuxLoss: identity forward; backward adds the aux-loss gradient', () => {
    const x = randF64([3, 4], 1).requiresGrad_();
    const logits = randF64([3, E], 2).requiresGrad_();
    const y = attachAuxLoss(x.mul(2), zLoss(logits).mul(0.5));
    assert.deepEqual(
      Array.from(y.dataSync()),
      Array.from(x.dataSync(), (v) => v * 2),
    );
    sum(y).backward();
    assert.deepEqual(Array.from(x.grad!.dataSync()), new Array(12).fill(2));
    // d(0.5·z)/d logits = 0.5 · 2·lse_t·softmax_t / T
    const expected = rows(logits.dataSync(), 3, E).flatMap((r) => {
      const lse = Math.log(r.reduce((p, v) => p + Math.exp(v), 0));
      return Array.from(softmaxRow(r), (p) => (0.5 * 2 * lse * p) / 3);
    });
    assertClose(logits.grad!.dataSync(), expected, 1e-12, 1e-12);
  });

  test('aux-loss-free bias: sign rule, centred variant, accumulation over micro-batches', () => {
    const counts = [5, 1, 3, 3]; // mean 3
    assert.deepEqual(Array.from(biasUpdateDelta(counts, 0.1, 'sign')), [-0.1, 0.1, 0, 0]);
    const c = biasUpdateDelta([6, 1, 1, 4], 0.1, 'sign-centered'); // signs -,+,+,- -> mean 0
    assertClose(c, [-0.1, 0.1, 0.1, -0.1], 1e-15, 0);
    const d = biasUpdateDelta([6, 1, 3, 2], 0.1, 'sign-centered'); // mean 3: signs -, +, 0, + -> mean 0.025
    assertClose(d, [-0.125, 0.075, -0.025, 0.075], 1e-15, 0);
    const sb = new SelectionBias(4, { gamma: 0.5, rule: 'sign' });
    sb.accumulate([4, 0, 0, 0]);
    sb.accumulate(tensor([0, 0, 0, 4], { dtype: 'i32' }));
    assert.deepEqual(Array.from(sb.update()!), [-0.5, 0.5, 0.5, -0.5]);
    assert.deepEqual(Array.from(sb.bias.dataSync()), [-0.5, 0.5, 0.5, -0.5]);
    assert.deepEqual(Array.from(sb.pendingCounts), [0, 0, 0, 0]);
    sb.accumulate([1, 1, 1, 1]);
    sb.update();
    assert.deepEqual(Array.from(sb.bias.dataSync()), [-0.5, 0.5, 0.5, -0.5]);
  });

  test('router with the bias: selection follows scores + bias, weights stay unbiased', () => {
    const logits = randF64([6, E], 21, -1, 1);
    const sb = new SelectionBias(E, { gamma: 1, rule: 'sign' }, logits.backend);
    sb.load([1, 0, 0, 0, 0, 0]);
    const cfg = routerConfig({ numExperts: E, topK: K, scoreFunc: 'sigmoid', selectionBias: { gamma: 1, rule: 'sign' } });
    const out = routeLogits(logits, cfg, { selectionBias: sb.bias });
    const r = refRoute(rows(logits.dataSync(), 6, E), { E, K, score: 'sigmoid', bias: [1, 0, 0, 0, 0, 0] });
    assert.deepEqual(Array.from(out.topkIds.dataSync()), r.ids.flat());
    assert.ok(r.ids.every((ids) => ids[0] === 0));
    assertClose(out.topkWeights.dataSync(), r.w.flat(), 1e-12, 1e-12);
  });
});
