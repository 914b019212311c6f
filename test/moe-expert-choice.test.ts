// Expert-choice routing (Zhou et al. 2022) against a plain-JS reference written from the paper:
// assignments, per-token expert counts, capacity, layer output (tokens nobody chose get zeros /
// the shared expert only), and gradients w.r.t. the input and every weight (f64 finite
// differences of the reference), plus config validation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray } from '../src/index.js';
import { ConfigError, moeConfig, parseMoEConfig, routerConfig, type MoEConfigInput } from '../src/moe/config.js';
import {
  ExpertChoiceDispatcher,
  expertChoiceCapacity,
  routeExpertChoice,
  type ExpertChoiceRouterOutput,
} from '../src/moe/expert-choice.js';
import { MoELayer } from '../src/moe/layer.js';
import { routeLogits } from '../src/moe/router.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose, randF64 } from './helpers/gradcheck.js';
import { numericGrad, refExpertChoice, rows, sigmoid, silu, type Mat } from './helpers/moe-reference.js';
import { forEachBackend } from './helpers/gradcheck.js';

const H = 4;
const I = 3;
const E = 4;
const T = 8;

/** y_t = Σ_e w[t][e] · SwiGLU_e(x_t)  (+ sigmoid-gated shared expert when given), from raw arrays. */
function refForward(
  x: Float64Array,
  wr: Float64Array,
  gate: Float64Array,
  up: Float64Array,
  down: Float64Array,
  k: number,
  cf: number,
  shared?: { gate: Float64Array; up: Float64Array; down: Float64Array; Is: number },
): { y: Float64Array; ec: ReturnType<typeof refExpertChoice> } {
  const xs: Mat = rows(x, T, H);
  const logits = xs.map((xt) => Float64Array.from({ length: E }, (_, e) => xt.reduce((s, v, i) => s + v * wr[e * H + i]!, 0)));
  const ec = refExpertChoice(logits, E, k, cf);
  const y = new Float64Array(T * H);
  const ffn = (g: Float64Array, u: Float64Array, d: Float64Array, e: number, Iw: number, xt: Float64Array): Float64Array => {
    const h = Float64Array.from({ length: Iw }, (_, j) => {
      let a = 0;
      let b = 0;
      for (let i = 0; i < H; i++) {
        a += g[e * Iw * H + j * H + i]! * xt[i]!;
        b += u[e * Iw * H + j * H + i]! * xt[i]!;
      }
      return silu(a) * b;
    });
    return Float64Array.from({ length: H }, (_, o) => h.reduce((s, v, j) => s + d[e * H * Iw + o * Iw + j]! * v, 0));
  };
  xs.forEach((xt, t) => {
    for (let e = 0; e < E; e++) {
      const w = ec.w[t]![e]!;
      if (w === 0) continue;
      ffn(gate, up, down, e, I, xt).forEach((v, o) => (y[t * H + o]! += w * v));
    }
    if (shared) ffn(shared.gate, shared.up, shared.down, 0, shared.Is, xt).forEach((v, o) => (y[t * H + o]! += v));
  });
  return { y, ec };
}

const base = (k: number, cf = 1): MoEConfigInput => ({
  hiddenSize: H,
  router: { kind: 'expert-choice', numExperts: E, topK: k, capacityFactor: cf },
  experts: { intermediateSize: I },
});

function fails(fn: () => unknown, field: string, allowed: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ConfigError && e.field === field && allowed.test(e.allowed));
}

test('expert-choice config validation: kind, capacity factor > 0, incompatible options', () => {
  fails(() => routerConfig({ numExperts: 4, topK: 1, kind: 'experts-choice' as never }), 'router.kind', /'token-choice', 'expert-choice'/);
  fails(() => routerConfig({ numExperts: 4, topK: 1, kind: 'expert-choice', capacityFactor: 0 }), 'router.capacityFactor', /\(0, inf\)/);
  fails(() => routerConfig({ numExperts: 4, topK: 1, kind: 'expert-choice', capacityFactor: -2 }), 'router.capacityFactor', /\(0, inf\)/);
  fails(() => routerConfig({ numExperts: 4, topK: 1, kind: 'expert-choice', renormalize: 'sum' }), 'router.renormalize', /'none'/);
  fails(() => routerConfig({ numExperts: 4, topK: 1, kind: 'expert-choice', selectOn: 'logits' }), 'router.selectOn', /'scores'/);
  fails(
    () =>
      routerConfig({
        numExperts: 4,
        topK: 1,
        kind: 'expert-choice',
        groupLimit: { numGroups: 2, topkGroups: 1, groupScore: 'max', maskValue: 'zero' },
      }),
    'router.groupLimit',
    /expert-choice/,
  );
  fails(
    () => routerConfig({ numExperts: 4, topK: 1, kind: 'expert-choice', selectionBias: { gamma: 0.1, rule: 'sign' } }),
    'router.selectionBias',
    /expert-choice/,
  );
  fails(() => moeConfig({ ...base(1), dispatch: { capacityFactor: 1.25 } }), 'moe.dispatch.capacityFactor', /router.capacityFactor/);
  fails(() => moeConfig({ ...base(1), losses: { lbWeight: 0.01 } }), 'moe.losses.lbWeight', /0 for/);
  assert.equal(routerConfig({ numExperts: 4, topK: 2 }).kind, 'token-choice');
  assert.equal(moeConfig({ ...base(1), losses: { zLossWeight: 1e-3 } }).router.capacityFactor, 1);
  const cfg = moeConfig({ ...base(2, 1.25), shared: { intermediateSize: 2 } });
  assert.deepEqual(parseMoEConfig(JSON.parse(JSON.stringify(cfg))), cfg, 'JSON round trip');
});

test('capacity c = min(T, max(1, round(cf·T·k/E)))', () => {
  assert.equal(expertChoiceCapacity(8, 4, 1), 2);
  assert.equal(expertChoiceCapacity(8, 4, 2, 1.5), 6);
  assert.equal(expertChoiceCapacity(10, 4, 1), 3); // round(2.5) = 3
  assert.equal(expertChoiceCapacity(3, 16, 1), 1);
  assert.equal(expertChoiceCapacity(5, 2, 2, 4), 5);
  assert.equal(expertChoiceCapacity(0, 4, 1), 0);
});

forEachBackend('moe expert choice', () => {
  test('assignments, per-token expert counts, weights = scores of the choosing experts', () => {
    for (const [k, cf] of [
      [1, 1],
      [2, 1],
      [1, 2.5],
      [3, 1],
    ] as const) {
      const logits = randF64([T, E], 11 + k, -2, 2);
      const out = routeExpertChoice(logits, routerConfig({ kind: 'expert-choice', numExperts: E, topK: k, capacityFactor: cf }));
      const r = refExpertChoice(rows(logits.dataSync(), T, E), E, k, cf);
      assert.equal(out.capacity, r.c);
      assert.deepEqual(Array.from(out.expertTokens.dataSync()), r.chosen.flat(), 'tokens chosen per expert');
      assert.deepEqual(Array.from(out.expertsPerToken), r.perToken, 'experts per token');
      assert.deepEqual(Array.from(out.counts.dataSync()), new Array(E).fill(r.c));
      const ids = Array.from(out.topkIds.dataSync());
      assert.deepEqual(
        ids,
        r.w.flatMap((row) => Array.from(row, (v, e) => (v > 0 ? e : -1))),
        'slot grid ids',
      );
      assertClose(
        out.topkWeights.dataSync(),
        r.w.flatMap((row) => Array.from(row)),
        1e-14,
        1e-12,
        'weights',
      );
      assertClose(
        out.scores.dataSync(),
        r.scores.flatMap((row) => Array.from(row)),
        1e-14,
        1e-12,
        'scores',
      );
    }
    // routeLogits dispatches on router.kind; scaling factor multiplies the weights
    const logits = randF64([T, E], 3);
    const a = routeLogits(
      logits,
      routerConfig({ kind: 'expert-choice', numExperts: E, topK: 1, scalingFactor: 2 }),
    ) as ExpertChoiceRouterOutput;
    const r = refExpertChoice(rows(logits.dataSync(), T, E), E, 1);
    assertClose(
      a.topkWeights.dataSync(),
      r.w.flatMap((row) => Array.from(row, (v) => 2 * v)),
      1e-14,
      1e-12,
    );
  });

  test('the dispatcher skips empty slots and rejects ids outside [-1, E)', () => {
    const d = new ExpertChoiceDispatcher(3);
    const x = randF64([2, H], 1);
    const res = d.dispatch(x, { topkIds: fromArray(Int32Array.from([-1, 1, 2, 0, -1, 2]), [2, 3]), topkWeights: randF64([2, 3], 2) });
    assert.deepEqual(Array.from(res.meta.rowTokens.dataSync()), [1, 0, 0, 1]);
    assert.deepEqual(Array.from(res.meta.rowExperts.dataSync()), [0, 1, 2, 2]);
    assert.deepEqual(Array.from(res.exec.segOffsets), [0, 1, 2, 4]);
    assert.throws(
      () => d.dispatch(x, { topkIds: fromArray(Int32Array.from([3, 0, 0, 0, 0, 0]), [2, 3]), topkWeights: randF64([2, 3], 2) }),
      /outside \[0, 3\)/,
    );
  });

  for (const withShared of [false, true]) {
    test(`MoE layer output and gradients vs the reference${withShared ? ' (with a shared expert)' : ''}; unchosen tokens get ${withShared ? 'the shared expert only' : 'zeros'}`, () => {
      const k = 1;
      const cf = 1;
      const cfg = moeConfig({ ...base(k, cf), shared: withShared ? { intermediateSize: 2 } : null });
      const layer = new MoELayer(cfg, { dtype: 'f64', generator: new Generator(21) });
      const x = randF64([T, H], 22);
      x.requiresGrad = true;
      const y = layer.forward(x);
      const ex = layer.experts;
      const arr = (t: { dataSync(): ArrayLike<number> }) => Float64Array.from(t.dataSync());
      const P = {
        x: arr(x),
        wr: arr(layer.routerWeight),
        gate: arr(ex.gateProj!),
        up: arr(ex.upProj!),
        down: arr(ex.downProj),
        sg: withShared ? arr(layer.sharedExpert!.gateProj!) : new Float64Array(0),
        su: withShared ? arr(layer.sharedExpert!.upProj!) : new Float64Array(0),
        sd: withShared ? arr(layer.sharedExpert!.downProj) : new Float64Array(0),
      };
      const shared = () => (withShared ? { gate: P.sg, up: P.su, down: P.sd, Is: 2 } : undefined);
      const ref = refForward(P.x, P.wr, P.gate, P.up, P.down, k, cf, shared());
      assertClose(y.dataSync(), ref.y, 1e-12, 1e-10, 'output');
      const zeroTokens = ref.ec.perToken.flatMap((n, t) => (n === 0 ? [t] : []));
      assert.ok(zeroTokens.length > 0, 'some token got no expert (the test needs one)');
      assert.ok(
        ref.ec.perToken.some((n) => n > 1),
        'some token got several experts',
      );
      if (!withShared) for (const t of zeroTokens) assert.deepEqual(Array.from(y.dataSync().slice(t * H, (t + 1) * H)), [0, 0, 0, 0]);
      assert.deepEqual(Array.from(layer.lastMetrics!.tokensPerExpert), new Array(E).fill(ref.ec.c));

      // gradients: autograd of L = Σ y·w vs central differences of the plain-JS reference
      const w = randF64([T, H], 23);
      y.backward(w);
      const wd = w.dataSync();
      const L = () => refForward(P.x, P.wr, P.gate, P.up, P.down, k, cf, shared()).y.reduce((s, v, i) => s + v * wd[i]!, 0);
      const pairs: [string, Float64Array, { grad: { dataSync(): ArrayLike<number> } | null }][] = [
        ['x', P.x, x],
        ['router', P.wr, layer.routerWeight],
        ['gate', P.gate, ex.gateProj!],
        ['up', P.up, ex.upProj!],
        ['down', P.down, ex.downProj],
      ];
      if (withShared)
        pairs.push(
          ['shared.gate', P.sg, layer.sharedExpert!.gateProj!],
          ['shared.up', P.su, layer.sharedExpert!.upProj!],
          ['shared.down', P.sd, layer.sharedExpert!.downProj],
        );
      for (const [name, data, t] of pairs) {
        assert.ok(t.grad, `${name} got a gradient`);
        assertClose(t.grad.dataSync(), numericGrad(L, data), 1e-7, 1e-6, `d/d${name}`);
      }
    });
  }

  test('weights on the input (Llama-4 style) also work with expert choice', () => {
    const layer = new MoELayer(moeConfig({ ...base(2), dispatch: { weightsOn: 'input' } }), {
      dtype: 'f64',
      generator: new Generator(5),
    }).eval();
    const x = randF64([T, H], 6);
    const y = layer.forward(x).dataSync();
    const xs = rows(x.dataSync(), T, H);
    const wr = layer.routerWeight.dataSync();
    const logits = xs.map((xt) => Float64Array.from({ length: E }, (_, e) => xt.reduce((s, v, i) => s + v * wr[e * H + i]!, 0)));
    const ec = refExpertChoice(logits, E, 2);
    const g = layer.experts.gateProj!.dataSync();
    const u = layer.experts.upProj!.dataSync();
    const d = layer.experts.downProj.dataSync();
    const expected = xs.flatMap((xt, t) => {
      const out = new Float64Array(H);
      for (let e = 0; e < E; e++) {
        const s = ec.w[t]![e]!;
        if (s === 0) continue;
        const xi = xt.map((v) => v * s);
        const h = Array.from({ length: I }, (_, j) => {
          let a = 0;
          let b = 0;
          for (let i = 0; i < H; i++) {
            a += g[e * I * H + j * H + i]! * xi[i]!;
            b += u[e * I * H + j * H + i]! * xi[i]!;
          }
          return a * sigmoid(a) * b;
        });
        for (let o = 0; o < H; o++) out[o]! += h.reduce((acc, v, j) => acc + d[e * H * I + o * I + j]! * v, 0);
      }
      return Array.from(out);
    });
    assertClose(y, expected, 1e-12, 1e-10);
  });
});
