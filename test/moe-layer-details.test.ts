// MoELayer.forwardWithRouting: the routing and the parts forward computed, held to the output
// (y = routed + shared, or OLMo-core's mix), to forward itself, and to the router run on its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type MoEConfigInput, moeConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { route } from '../src/moe/router.js';
import { fromArray } from '../src/ops/creation.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose } from './helpers/gradcheck.js';

const CASES: { name: string; input: MoEConfigInput; mix: (routed: number, shared: number) => number }[] = [
  {
    name: 'shared expert added',
    input: { hiddenSize: 8, router: { numExperts: 4, topK: 2 }, experts: { intermediateSize: 6 }, shared: { intermediateSize: 4 } },
    mix: (r, s) => r + s,
  },
  {
    name: "OLMo-core's mix, capacity drops",
    input: {
      hiddenSize: 8,
      router: { numExperts: 4, topK: 3 },
      experts: { intermediateSize: 6 },
      shared: { intermediateSize: 4, mix: 'olmo' },
      dispatch: { capacityFactor: 0.5, capacityMultiple: 1 },
    },
    mix: (r, s) => s / 4 + (r * 3) / 4,
  },
];

for (const c of CASES) {
  test(`forwardWithRouting hands out the routing and the parts (${c.name}), f64`, () => {
    const layer = new MoELayer(moeConfig(c.input), { dtype: 'f64', generator: new Generator(1) });
    const gen = new Generator(2);
    const x = fromArray(
      Float64Array.from({ length: 2 * 5 * 8 }, () => gen.uniform() - 0.5),
      [2, 5, 8],
    );
    const d = noGrad(() => layer.forwardWithRouting(x));
    assert.deepEqual(d.y.dataSync(), noGrad(() => layer.forward(x)).dataSync(), 'y is forward');
    const y = d.y.dataSync(),
      routed = d.routed.dataSync(),
      shared = d.shared!.dataSync();
    assertClose(
      y,
      Array.from(routed, (r, i) => c.mix(r, shared[i]!)),
      1e-14,
      1e-12,
      'y from routed and shared',
    );
    const alone = noGrad(() => route(fromArray(x.dataSync(), [10, 8]), layer.routerWeight, null, layer.cfg.router));
    assert.deepEqual(d.routing.topkIds.dataSync(), alone.topkIds.dataSync(), 'top-k ids');
    assertClose(d.routing.topkWeights.dataSync(), alone.topkWeights.dataSync(), 1e-14, 1e-12, 'top-k weights');
    assertClose(d.routing.logits.dataSync(), alone.logits.dataSync(), 1e-14, 1e-12, 'logits');
    assert.equal(d.droppedSlots, Math.round(d.metrics!.droppedFraction * 10 * layer.cfg.router.topK));
    assert.deepEqual([...d.metrics!.tokensPerExpert], [...(d.routing.counts.dataSync() as Int32Array)]);
  });
}

test('a capacity factor so small that every slot is dropped is said once, naming the field', () => {
  const layer = new MoELayer(
    moeConfig({ hiddenSize: 8, router: { numExperts: 4, topK: 2 }, experts: { intermediateSize: 4 }, dispatch: { capacityFactor: 1e-9 } }),
  );
  const said: string[] = [];
  const warn = console.warn;
  console.warn = (m: string) => said.push(m);
  try {
    const x = fromArray(new Float32Array(16 * 8).fill(0.5), [16, 8]);
    noGrad(() => layer.forward(x));
    noGrad(() => layer.forward(x));
  } finally {
    console.warn = warn;
  }
  assert.equal(layer.lastMetrics!.droppedFraction, 1);
  assert.deepEqual(said, [
    'moekit: MoELayer dropped all 32 routed slots of a batch of 16 tokens: dispatch.capacityFactor = 1e-9 gives every expert a capacity of 0 (raise it, or null for dropless)',
  ]);
});

test('forwardWithRouting hands out the group scores a group-limited router ranked by (sum of each group top-2 selection scores)', () => {
  const layer = new MoELayer(
    moeConfig({
      hiddenSize: 6,
      router: {
        numExperts: 8,
        topK: 2,
        scoreFunc: 'sigmoid',
        groupLimit: { numGroups: 4, topkGroups: 2, groupScore: 'top2-sum', maskValue: 'neg-inf' },
      },
      experts: { intermediateSize: 4 },
    }),
    { dtype: 'f64', generator: new Generator(4) },
  );
  const gen = new Generator(5);
  const x = fromArray(
    Float64Array.from({ length: 3 * 6 }, () => gen.uniform() - 0.5),
    [3, 6],
  );
  const d = noGrad(() => layer.forwardWithRouting(x));
  const scores = d.routing.scores.dataSync();
  const expected: number[] = [];
  for (let t = 0; t < 3; t++) {
    for (let g = 0; g < 4; g++) {
      const s = [scores[t * 8 + 2 * g]!, scores[t * 8 + 2 * g + 1]!];
      expected.push(s[0]! + s[1]!);
    }
  }
  assert.deepEqual(d.routing.groupScores!.shape, [3, 4]);
  assertClose(d.routing.groupScores!.dataSync(), expected, 1e-14, 1e-12, 'group scores');
  assert.equal(
    noGrad(() => new MoELayer(moeConfig(CASES[0]!.input)).forwardWithRouting(fromArray(new Float32Array(8), [1, 8]))).routing.groupScores,
    undefined,
  );
});

test("forwardWithRouting({ activationFacts: true }) counts a GPT-OSS bank's clamped gate / up elements per expert, as a hand count does", () => {
  const [H, I, E, L] = [6, 4, 4, 0.3];
  const layer = new MoELayer(
    moeConfig({
      hiddenSize: H,
      router: { numExperts: E, topK: 2 },
      experts: { kind: 'gpt-oss', intermediateSize: I, layout: 'fused', orientation: 'in-out', bias: true, swigluLimit: L },
    }),
    { dtype: 'f64', generator: new Generator(6) },
  );
  const gen = new Generator(7);
  const T = 9;
  const xs = Float64Array.from({ length: T * H }, () => 2 * gen.uniform() - 1);
  const d = noGrad(() => layer.forwardWithRouting(fromArray(xs, [T, H]), { activationFacts: true }));
  const w = layer.experts.gateUpProj!.dataSync(); // [E, H, 2I]
  const b = layer.experts.gateUpBias!.dataSync(); // [E, 2I]
  const ids = d.routing.topkIds.dataSync();
  const gate = new Int32Array(E);
  const up = new Int32Array(E);
  for (let s = 0; s < T * 2; s++) {
    const t = Math.floor(s / 2);
    const e = ids[s]!;
    for (let j = 0; j < I; j++) {
      let g = b[e * 2 * I + j]!;
      let u = b[e * 2 * I + I + j]!;
      for (let h = 0; h < H; h++) {
        g += xs[t * H + h]! * w[(e * H + h) * 2 * I + j]!;
        u += xs[t * H + h]! * w[(e * H + h) * 2 * I + I + j]!;
      }
      if (g > L) gate[e]!++;
      if (Math.abs(u) > L) up[e]!++;
    }
  }
  assert.ok(gate.some((c) => c > 0) && up.some((c) => c > 0), 'the limit cuts something');
  assert.deepEqual(d.activationFacts, { gateClamped: gate, upClamped: up });
  assert.equal(noGrad(() => layer.forwardWithRouting(fromArray(xs, [T, H]))).activationFacts, null, 'not asked: none');
});
