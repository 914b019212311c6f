// Router variants against the plain-JS reference: ids and weights for every variant.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Generator, fromArray, type Tensor } from '../src/index.js';
import { routerConfig, type RouterConfig } from '../src/moe/config.js';
import { route, routeLogits } from '../src/moe/router.js';
import { assertClose, gradcheck, randF64 } from './helpers/gradcheck.js';
import { refRoute, rows, type RefRouter } from './helpers/moe-reference.js';
import { forEachBackend } from './helpers/gradcheck.js';

const T = 7;

function check(logits: Tensor, cfg: RouterConfig, ref: RefRouter, bias?: number[]): void {
  const out = routeLogits(logits, cfg, bias ? { selectionBias: fromArray(Float64Array.from(bias), [bias.length]) } : {});
  const r = refRoute(rows(logits.dataSync(), T, cfg.numExperts), { ...ref, ...(bias ? { bias } : {}) });
  assert.deepEqual(Array.from(out.topkIds.dataSync()), r.ids.flat(), 'ids');
  assertClose(out.topkWeights.dataSync(), r.w.flat(), 1e-12, 1e-12, 'weights');
  const counts = new Array(cfg.numExperts).fill(0);
  for (const e of r.ids.flat()) counts[e]++;
  assert.deepEqual(Array.from(out.counts.dataSync()), counts, 'counts');
  assertClose(
    out.scores.dataSync(),
    r.scores.flatMap((s) => Array.from(s)),
    1e-12,
    1e-12,
    'scores',
  );
}

forEachBackend('moe router', () => {
  const logits8 = randF64([T, 8], 1, -2, 2);

  test('Mixtral / Qwen / OLMoE: softmax -> top-k -> renorm none | sum | p-norm', () => {
    check(logits8, routerConfig({ numExperts: 8, topK: 2, renormalize: 'sum' }), { E: 8, K: 2, score: 'softmax', renorm: 'sum' });
    check(logits8, routerConfig({ numExperts: 8, topK: 3 }), { E: 8, K: 3, score: 'softmax' });
    check(logits8, routerConfig({ numExperts: 8, topK: 3, renormalize: 'pnorm', renormP: 2 }), {
      E: 8,
      K: 3,
      score: 'softmax',
      renorm: 'pnorm',
      p: 2,
    });
    check(logits8, routerConfig({ numExperts: 8, topK: 1, renormalize: 'sum' }), { E: 8, K: 1, score: 'softmax', renorm: 'sum' });
  });

  test('top-k over logits then softmax over the k equals softmax -> top-k -> sum renorm', () => {
    const a = routeLogits(logits8, routerConfig({ numExperts: 8, topK: 2, selectOn: 'logits' }));
    const b = routeLogits(logits8, routerConfig({ numExperts: 8, topK: 2, renormalize: 'sum' }));
    assert.deepEqual(Array.from(a.topkIds.dataSync()), Array.from(b.topkIds.dataSync()));
    assertClose(a.topkWeights.dataSync(), b.topkWeights.dataSync(), 1e-12, 1e-12);
    check(logits8, routerConfig({ numExperts: 8, topK: 2, selectOn: 'logits' }), { E: 8, K: 2, score: 'softmax', selectOn: 'logits' });
  });

  test('Llama-4: top-k over logits, sigmoid of each chosen logit', () => {
    check(logits8, routerConfig({ numExperts: 8, topK: 1, selectOn: 'logits', scoreFunc: 'sigmoid' }), {
      E: 8,
      K: 1,
      score: 'sigmoid',
      selectOn: 'logits',
    });
  });

  test('sigmoid scores with routed scaling factor', () => {
    check(logits8, routerConfig({ numExperts: 8, topK: 2, scoreFunc: 'sigmoid', renormalize: 'sum', scalingFactor: 2.5 }), {
      E: 8,
      K: 2,
      score: 'sigmoid',
      renorm: 'sum',
      scale: 2.5,
    });
  });

  test('selection bias changes the choice, never the weights', () => {
    const bias = [0.5, -0.3, 0.2, 0, 0.9, -1, 0.1, 0.3];
    const cfg = routerConfig({ numExperts: 8, topK: 2, scoreFunc: 'sigmoid', selectionBias: { gamma: 0.01, rule: 'sign' } });
    check(logits8, cfg, { E: 8, K: 2, score: 'sigmoid' }, bias);
    assert.throws(
      () => routeLogits(logits8, routerConfig({ numExperts: 8, topK: 2 }), { selectionBias: fromArray(Float64Array.from(bias), [8]) }),
      /selectionBias/,
    );
  });

  test('DeepSeek-V3 group-limited top-k: top-2-sum group score, both mask values', () => {
    const bias = [0.1, -0.2, 0.3, 0, -0.1, 0.2, 0.05, -0.3];
    for (const maskValue of ['zero', 'neg-inf'] as const) {
      const cfg = routerConfig({
        numExperts: 8,
        topK: 3,
        scoreFunc: 'sigmoid',
        renormalize: 'sum',
        scalingFactor: 2.5,
        selectionBias: { gamma: 0.001, rule: 'sign' },
        groupLimit: { numGroups: 4, topkGroups: 2, groupScore: 'top2-sum', maskValue },
      });
      check(
        logits8,
        cfg,
        { E: 8, K: 3, score: 'sigmoid', renorm: 'sum', scale: 2.5, group: { G: 4, keep: 2, score: 'top2-sum', mask: maskValue } },
        bias,
      );
    }
  });

  test('mask 0.0 and -inf differ when biased scores are negative', () => {
    const bias = new Array(8).fill(-2); // every biased score < 0: masked zeros beat kept experts
    const mk = (maskValue: 'zero' | 'neg-inf') =>
      routerConfig({
        numExperts: 8,
        topK: 2,
        scoreFunc: 'sigmoid',
        selectionBias: { gamma: 0, rule: 'sign' },
        groupLimit: { numGroups: 4, topkGroups: 1, groupScore: 'top2-sum', maskValue },
      });
    for (const m of ['zero', 'neg-inf'] as const) {
      check(logits8, mk(m), { E: 8, K: 2, score: 'sigmoid', group: { G: 4, keep: 1, score: 'top2-sum', mask: m } }, bias);
    }
    const b = { selectionBias: fromArray(Float64Array.from(bias), [8]) };
    const z = Array.from(routeLogits(logits8, mk('zero'), b).topkIds.dataSync());
    const n = Array.from(routeLogits(logits8, mk('neg-inf'), b).topkIds.dataSync());
    assert.notDeepEqual(z, n);
  });

  test('DeepSeek-V2 group-limited greedy: max group score, softmax, scaling', () => {
    const cfg = routerConfig({
      numExperts: 8,
      topK: 2,
      scalingFactor: 16,
      groupLimit: { numGroups: 2, topkGroups: 1, groupScore: 'max', maskValue: 'zero' },
    });
    check(logits8, cfg, { E: 8, K: 2, score: 'softmax', scale: 16, group: { G: 2, keep: 1, score: 'max', mask: 'zero' } });
  });

  test('ties go to the lowest index (experts and groups)', () => {
    const flat = new Float64Array(T * 8); // all-zero logits: every score ties
    const z = fromArray(flat, [T, 8]);
    check(z, routerConfig({ numExperts: 8, topK: 3 }), { E: 8, K: 3, score: 'softmax' });
    const out = routeLogits(
      z,
      routerConfig({
        numExperts: 8,
        topK: 2,
        scoreFunc: 'sigmoid',
        groupLimit: { numGroups: 4, topkGroups: 2, groupScore: 'top2-sum', maskValue: 'neg-inf' },
      }),
    );
    assert.deepEqual(Array.from(out.topkIds.dataSync()).slice(0, 2), [0, 1]);
    check(
      z,
      routerConfig({ numExperts: 8, topK: 3, groupLimit: { numGroups: 4, topkGroups: 2, groupScore: 'top2-sum', maskValue: 'zero' } }),
      {
        E: 8,
        K: 3,
        score: 'softmax',
        group: { G: 4, keep: 2, score: 'top2-sum', mask: 'zero' },
      },
    );
  });

  test('uniform assignment: slot i -> expert i mod E, weights from the scores', () => {
    check(logits8, routerConfig({ numExperts: 8, topK: 3, uniformAssignment: true }), { E: 8, K: 3, score: 'softmax', uniform: true });
  });

  test('route(): GPT-OSS router bias, jitter only in training', () => {
    const H = 5;
    const x = randF64([T, H], 2);
    const w = randF64([8, H], 3);
    const b = randF64([8], 4);
    const cfg = routerConfig({ numExperts: 8, topK: 2, routerBias: true, selectOn: 'logits', jitterEps: 0.1 });
    const xs = x.dataSync();
    const ws = w.dataSync();
    const bs = b.dataSync();
    const logitsOf = (scale: (i: number) => number) =>
      Float64Array.from({ length: T * 8 }, (_, i) => {
        const t = Math.floor(i / 8);
        const e = i % 8;
        let s = bs[e]!;
        for (let h = 0; h < H; h++) s += xs[t * H + h]! * scale(t * H + h) * ws[e * H + h]!;
        return s;
      });
    const evalOut = route(x, w, b, cfg, { training: false });
    assertClose(
      evalOut.logits.dataSync(),
      logitsOf(() => 1),
      1e-12,
      1e-12,
      'eval logits',
    );
    const g = new Generator(7);
    const u = Array.from({ length: T * H }, () => g.uniform());
    const trainOut = route(x, w, b, cfg, { training: true, generator: new Generator(7) });
    assertClose(
      trainOut.logits.dataSync(),
      logitsOf((i) => 0.9 + 0.2 * u[i]!),
      1e-12,
      1e-12,
      'jittered logits',
    );
    assert.throws(() => route(x, w, null, cfg), /bias/);
  });

  test('weights are differentiable w.r.t. the logits (finite differences)', () => {
    const l = randF64([4, 8], 9, -2, 2).requiresGrad_();
    gradcheck((z) => routeLogits(z, routerConfig({ numExperts: 8, topK: 2, renormalize: 'sum', scalingFactor: 1.5 })).topkWeights, [l]);
    gradcheck(
      (z) => routeLogits(z, routerConfig({ numExperts: 8, topK: 3, renormalize: 'pnorm', renormP: 2, scoreFunc: 'sigmoid' })).topkWeights,
      [l],
    );
    gradcheck((z) => routeLogits(z, routerConfig({ numExperts: 8, topK: 2, selectOn: 'logits' })).topkWeights, [l]);
  });
});
