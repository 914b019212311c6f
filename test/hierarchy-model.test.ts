// HierarchicalMoE: per-sample routing and sub-batch grouping (order, scatter-back, equality with
// running each sample alone and with a plain-JS reference), broadcast, fallback, errors,
// gradient isolation, learned / mean / custom fusion and fusion dropout, a MoELayer as an expert.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Module, type Tensor, fromArray, moeConfig, MoELayer, noGrad, Generator } from '../src/index.js';
import {
  type ExpertBatch,
  type ExpertResult,
  type FusionInput,
  type FusionResult,
  HierarchicalMoE,
  type HierarchyConfigInput,
  LearnedFusion,
  LinearExpert,
  RoutingError,
  asExpert,
  hierarchyConfig,
} from '../src/moe/hierarchy/index.js';
import { assertClose, randF64 } from './helpers/gradcheck.js';

const H = 4;
const T = 3;

/** Plain-JS Linear on every H-row of flat data: y = W x + b, W [H, H]. */
function refLinear(x: ArrayLike<number>, W: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / H; r++) {
    for (let o = 0; o < H; o++) {
      let s = b[o]!;
      for (let i = 0; i < H; i++) s += W[o * H + i]! * x[r * H + i]!;
      out[r * H + o] = s;
    }
  }
  return out;
}

const rowsOf = (data: ArrayLike<number>, sample: number): number[] => Array.from(data).slice(sample * T * H, (sample + 1) * T * H);

interface Call {
  level: string;
  expert: string;
  rows: number[];
  maskRows: number[] | null;
}

/** A Linear expert that records what it received. */
class RecordingExpert extends Module {
  readonly lin: LinearExpert;
  constructor(
    readonly level: string,
    readonly name: string,
    readonly log: Call[],
    seed: number,
  ) {
    super();
    this.lin = new LinearExpert(H, { dtype: 'f64', generator: new Generator(seed) });
  }
  forward(batch: ExpertBatch): ExpertResult {
    this.log.push({
      level: batch.context.levelName,
      expert: batch.context.expertName,
      rows: [...batch.context.sampleIndices],
      maskRows: batch.mask ? [...(batch.mask.dataSync() as Float64Array)] : null,
    });
    return this.lin.forward(batch);
  }
}

const cfgInput = (childStop = false): HierarchyConfigInput => ({
  hiddenSize: H,
  levels: [
    { name: 'parent', experts: [{ name: 'core' }] },
    {
      name: 'child',
      // declared c, a, b: sub-batches run in this order whatever order the batch names them in
      experts: [{ name: 'c' }, { name: 'a', stopGradientFromParent: childStop }, { name: 'b' }],
      fallbackExpert: 'b',
    },
  ],
});

function build(cfg: HierarchyConfigInput, log: Call[] = []): HierarchicalMoE {
  let seed = 10;
  return new HierarchicalMoE(hierarchyConfig(cfg), (level, expert) => new RecordingExpert(level, expert, log, seed++), { dtype: 'f64' });
}

function weights(m: HierarchicalMoE, level: string, expert: string): { W: Float64Array; b: Float64Array } {
  const e = m.expert(level, expert) as RecordingExpert;
  return { W: e.lin.proj.weight.dataSync() as Float64Array, b: e.lin.proj.bias!.dataSync() as Float64Array };
}

test('routing: groups run in declaration order with ascending rows, results scatter back in batch order', () => {
  const log: Call[] = [];
  const m = build(cfgInput(), log);
  const x = randF64([5, T, H], 1);
  const mask = fromArray(
    Float64Array.from({ length: 5 * T }, (_, i) => i),
    [5, T],
  );
  const names = ['b', 'a', 'b', 'c', 'a'];
  const out = m.forward(x, { routing: { child: names }, mask });
  assert.deepEqual(
    log.map((c) => [c.level, c.expert, c.rows]),
    [
      ['parent', 'core', [0, 1, 2, 3, 4]],
      ['child', 'c', [3]],
      ['child', 'a', [1, 4]],
      ['child', 'b', [0, 2]],
    ],
  );
  // the mask is sliced to each sub-batch's rows
  assert.deepEqual(log[2]!.maskRows, [3, 4, 5, 12, 13, 14]);
  assert.deepEqual(out.level('child').experts, names);
  assert.deepEqual(
    out.levels.map((l) => l.name),
    ['parent', 'child'],
  );
  assert.equal(out.level('child').input, out.level('parent').hidden);

  // independent plain-JS reference, sample by sample
  const core = weights(m, 'parent', 'core');
  const parentRef = refLinear(x.dataSync(), core.W, core.b);
  assertClose(out.level('parent').hidden.dataSync(), parentRef, 1e-12, 1e-12, 'parent');
  const child = out.level('child').hidden.dataSync();
  names.forEach((n, s) => {
    const w = weights(m, 'child', n);
    assertClose(rowsOf(child, s), refLinear(rowsOf(parentRef, s), w.W, w.b), 1e-12, 1e-12, `child sample ${s}`);
  });

  // and equal to running each sample alone through the model
  names.forEach((n, s) => {
    const alone = m.forward(x.slice(0, s, s + 1), { routing: { child: [n] } });
    assertClose(rowsOf(child, s), alone.level('child').hidden.dataSync(), 1e-12, 1e-12, `alone ${s}`);
    assertClose(rowsOf(out.fusedHidden.dataSync(), s), alone.fusedHidden.dataSync(), 1e-12, 1e-12, `fused alone ${s}`);
  });
});

/** Subtracts the sub-batch mean: its output depends on exactly which rows share the sub-batch. */
class CenteringExpert extends Module {
  forward(batch: ExpertBatch): ExpertResult {
    return { hidden: batch.hidden.sub(batch.hidden.mean(0, true)) };
  }
}

test('routing: samples routed to one expert run as ONE sub-batch (a batch-coupled expert sees exactly its group)', () => {
  const m = new HierarchicalMoE(
    hierarchyConfig({ hiddenSize: H, levels: [{ name: 'l', experts: [{ name: 'x' }, { name: 'y' }] }] }),
    () => new CenteringExpert(),
  );
  const x = randF64([5, T, H], 2);
  const names = ['x', 'y', 'x', 'y', 'x'];
  const out = m
    .forward(x, { routing: { l: names } })
    .level('l')
    .hidden.dataSync();
  const xd = x.dataSync();
  for (const e of ['x', 'y']) {
    const group = names.map((n, i) => (n === e ? i : -1)).filter((i) => i >= 0);
    const mean = new Float64Array(T * H);
    for (const s of group) rowsOf(xd, s).forEach((v, j) => (mean[j]! += v / group.length));
    for (const s of group)
      assertClose(
        rowsOf(out, s),
        rowsOf(xd, s).map((v, j) => v - mean[j]!),
        1e-12,
        1e-12,
        `${e} sample ${s}`,
      );
  }
});

test('broadcast and fallback: omitted single-expert level, a string for the whole batch, omitted level with fallback, null -> fallback per sample', () => {
  const log: Call[] = [];
  const m = build(cfgInput(), log);
  const x = randF64([3, T, H], 3);
  // parent omitted (one expert), child omitted (fallback 'b')
  const o1 = m.forward(x);
  assert.deepEqual(o1.level('parent').experts, ['core', 'core', 'core']);
  assert.deepEqual(o1.level('child').experts, ['b', 'b', 'b']);
  const o2 = m.forward(x, { routing: { parent: 'core', child: 'b' } });
  assertClose(o2.fusedHidden.dataSync(), o1.fusedHidden.dataSync(), 0, 0, 'broadcast string');
  // null takes the fallback for that sample only
  const o3 = m.forward(x, { routing: { child: ['a', null, 'c'] } });
  assert.deepEqual(o3.level('child').experts, ['a', 'b', 'c']);
  const o4 = m.forward(x, { routing: { child: ['a', 'b', 'c'] } });
  assertClose(o3.fusedHidden.dataSync(), o4.fusedHidden.dataSync(), 0, 0, 'null = fallback');
});

test('routing errors: unknown expert lists the level experts, length mismatch, missing routing, null without fallback, unknown level', () => {
  const m = build(cfgInput());
  const x = randF64([3, T, H], 4);
  assert.throws(
    () => m.forward(x, { routing: { child: ['a', 'zz', 'b'] } }),
    (e: Error) => {
      assert.ok(e instanceof RoutingError);
      assert.match(e.message, /routing\['child'\]\[1\]: unknown expert 'zz'; level 'child' has experts 'c', 'a', 'b'/);
      return true;
    },
  );
  assert.throws(() => m.forward(x, { routing: { child: 'zz' } }), /unknown expert 'zz'.*'c', 'a', 'b'/);
  assert.throws(() => m.forward(x, { routing: { child: ['a', 'b'] } }), /has 2 entries but the batch has 3 samples/);
  assert.throws(() => m.forward(x, { routing: { chlid: ['a', 'b', 'c'] } }), /unknown level 'chlid'; the levels are 'parent', 'child'/);
  const noFallback = cfgInput();
  noFallback.levels[1]!.fallbackExpert = null;
  const m2 = build(noFallback);
  assert.throws(() => m2.forward(x), /routing\['child'\] is required: level 'child' has 3 experts \('c', 'a', 'b'\) and no fallbackExpert/);
  assert.throws(
    () => m2.forward(x, { routing: { child: ['a', null, 'b'] } }),
    /routing\['child'\]\[1\] is null but level 'child' has no fallbackExpert/,
  );
  assert.throws(() => m.forward(randF64([3, T, H + 1], 5)), /hidden must be \[batch, \.\.\., 4\]/);
});

test('enabled flag: a disabled level is skipped (routing for it ignored), can be switched at run time', () => {
  const cfg = cfgInput();
  cfg.levels[1]!.enabled = false;
  const log: Call[] = [];
  const m = build(cfg, log);
  const x = randF64([2, T, H], 6);
  const out = m.forward(x, { routing: { child: ['a', 'zz'] } });
  assert.deepEqual(
    out.levels.map((l) => l.name),
    ['parent'],
  );
  assert.deepEqual(out.disabledLevels, ['child']);
  assert.throws(() => out.level('child'), /it is disabled/);
  assert.deepEqual(m.enabledLevels(), ['parent']);
  m.setLevelEnabled('child', true);
  assert.deepEqual(
    m.forward(x, { routing: { child: ['a', 'c'] } }).levels.map((l) => l.name),
    ['parent', 'child'],
  );
  m.setLevelEnabled('child', false);
  assert.throws(() => m.setLevelEnabled('parent', false), /only enabled level/);
});

test('context, state and the factory: sampleIndices, user context passed through, one state object per forward, factory args', () => {
  const seen: [string, string, unknown][] = [];
  const states: Record<string, unknown>[] = [];
  class Probe extends Module {
    constructor(readonly tag: string) {
      super();
    }
    forward(batch: ExpertBatch): ExpertResult {
      states.push(batch.state);
      assert.deepEqual(batch.context.user, { task: 'demo' });
      assert.equal(batch.context.batchSize, 3);
      if (this.tag === 'parent/core') batch.state['fromParent'] = 42;
      else assert.equal(batch.state['fromParent'], 42);
      return { hidden: batch.hidden, aux: { tag: this.tag } };
    }
  }
  const cfg = cfgInput();
  cfg.levels[1]!.experts = [{ name: 'c', metadata: { lang: 'c' } }, { name: 'a' }, { name: 'b' }];
  const m = new HierarchicalMoE(hierarchyConfig(cfg), (level, expert, metadata) => {
    seen.push([level, expert, metadata]);
    return new Probe(`${level}/${expert}`);
  });
  assert.deepEqual(seen, [
    ['parent', 'core', {}],
    ['child', 'c', { lang: 'c' }],
    ['child', 'a', {}],
    ['child', 'b', {}],
  ]);
  const out = m.forward(randF64([3, T, H], 7), { routing: { child: ['a', 'a', 'c'] }, context: { task: 'demo' } });
  assert.ok(states.every((s) => s === states[0]));
  assert.deepEqual(out.level('child').aux, { c: { tag: 'child/c' }, a: { tag: 'child/a' } });
  assert.throws(() => new HierarchicalMoE(hierarchyConfig(cfg), () => ({}) as never), /expected a moekit Module with forward/);
});

test('gradient isolation: with stopGradientFromParent no gradient reaches the parent through that path; the expert still learns', () => {
  const x = randF64([2, T, H], 8);
  const cot = randF64([2, T, H], 9);
  // the loss looks at sample 0 only, which is routed to 'a'
  const rowMask = fromArray(
    Float64Array.from({ length: 2 * T * H }, (_, i) => (i < T * H ? 1 : 0)),
    [2, T, H],
  );
  const run = (stop: boolean) => {
    const m = build(cfgInput(stop));
    const xin = x.detach().requiresGrad_();
    const out = m.forward(xin, { routing: { child: ['a', 'b'] } });
    out.level('child').hidden.mul(cot).mul(rowMask).sum().backward();
    return { m, xin, out };
  };
  const iso = run(true);
  const free = run(false);
  const core = (r: typeof iso) => (r.m.expert('parent', 'core') as RecordingExpert).lin.proj.weight.grad;
  // isolated: the parent and the model input get exactly zero gradient through that path
  assert.ok(core(iso), 'parent weight has a (zero) gradient: sample 1 still flows through it');
  assert.ok(
    Array.from(core(iso)!.dataSync()).every((v) => v === 0),
    'parent weight grad is exactly 0',
  );
  assert.ok(
    Array.from(iso.xin.grad!.dataSync()).every((v) => v === 0),
    'input grad is exactly 0',
  );
  // without isolation the same loss reaches the parent
  assert.ok(
    Array.from(core(free)!.dataSync()).some((v) => Math.abs(v) > 1e-6),
    'parent weight grad is non-zero without isolation',
  );
  assert.ok(Array.from(free.xin.grad!.dataSync()).some((v) => Math.abs(v) > 1e-6));
  // the isolated expert still learns, with the same gradient as without isolation: dW[o,i] = Σ_t c[t,o] · parent[t,i]
  const aW = (r: typeof iso) => (r.m.expert('child', 'a') as RecordingExpert).lin.proj.weight.grad!.dataSync();
  const parent0 = rowsOf(iso.out.level('parent').hidden.dataSync(), 0);
  const c0 = rowsOf(cot.dataSync(), 0);
  const expected = new Float64Array(H * H);
  for (let t = 0; t < T; t++)
    for (let o = 0; o < H; o++) for (let i = 0; i < H; i++) expected[o * H + i]! += c0[t * H + o]! * parent0[t * H + i]!;
  assertClose(aW(iso), expected, 1e-12, 1e-10, 'isolated expert grad');
  assertClose(aW(free), expected, 1e-12, 1e-10, 'free expert grad');
  // every sample isolated: the parent is not reached at all
  const m = build(cfgInput(true));
  m.forward(x, { routing: { child: 'a' } })
    .level('child')
    .hidden.sum()
    .backward();
  const g = (m.expert('parent', 'core') as RecordingExpert).lin.proj.weight.grad;
  assert.ok(g === null || Array.from(g.dataSync()).every((v) => v === 0));
});

function threeLevels(extra: Partial<HierarchyConfigInput> = {}, enabled = [true, true, true]): HierarchicalMoE {
  let seed = 30;
  return new HierarchicalMoE(
    hierarchyConfig({
      hiddenSize: H,
      levels: ['u', 'd', 'l'].map((name, i) => ({ name, experts: [{ name: 'e' }], enabled: enabled[i]! })),
      ...extra,
    }),
    () => new LinearExpert(H, { dtype: 'f64', generator: new Generator(seed++) }),
    { dtype: 'f64' },
  );
}

test('learned fusion: fused = Σ softmax(logits)_l · h_l (disabled levels left out), logit gradient matches the softmax formula', () => {
  const logits = [0.3, -0.2, 0.5];
  for (const enabled of [
    [true, true, true],
    [true, false, true],
  ]) {
    const m = threeLevels({}, enabled);
    assert.ok(m.fusion instanceof LearnedFusion);
    m.fusion.logits.storage = Float64Array.from(logits);
    const x = randF64([2, T, H], 11);
    const out = m.forward(x);
    const idx = out.levels.map((l) => l.index);
    const z = idx.map((i) => Math.exp(logits[i]!));
    const w = z.map((v) => v / z.reduce((a, b) => a + b, 0));
    assertClose(out.fusionWeights!.dataSync(), w, 1e-15, 1e-12, 'weights');
    const hs = out.levels.map((l) => l.hidden.dataSync() as Float64Array);
    const expected = hs[0]!.map((_, j) => hs.reduce((s, h, l) => s + w[l]! * h[j]!, 0));
    assertClose(out.fusedHidden.dataSync(), expected, 1e-12, 1e-12, 'fused');
    // d/dlogit_l of Σ c·fused = w_l (g_l − Σ_k w_k g_k), g_l = Σ c·h_l
    const c = randF64([2, T, H], 12);
    out.fusedHidden.mul(c).sum().backward();
    const cd = c.dataSync();
    const gl = hs.map((h) => h.reduce((s, v, j) => s + v * cd[j]!, 0));
    const gbar = gl.reduce((s, g, l) => s + w[l]! * g, 0);
    const expectedGrad = new Float64Array(3);
    idx.forEach((i, l) => (expectedGrad[i] = w[l]! * (gl[l]! - gbar)));
    assertClose(m.fusion.logits.grad!.dataSync(), expectedGrad, 1e-12, 1e-10, 'logit grad');
  }
});

test('useLearnedFusion false: the plain mean of the levels, no fusion parameters', () => {
  const m = threeLevels({ useLearnedFusion: false });
  const out = m.forward(randF64([2, T, H], 13));
  const hs = out.levels.map((l) => l.hidden.dataSync());
  assertClose(
    out.fusedHidden.dataSync(),
    hs[0]!.map((_, j) => (hs[0]![j]! + hs[1]![j]! + hs[2]![j]!) / 3),
    1e-12,
    1e-12,
    'mean',
  );
  assert.equal(m.fusion.parameters().length, 0);
});

test('fusion dropout: inverted dropout on the fused hidden while training, identity in eval', () => {
  const m = threeLevels({ fusionDropout: 0.5 });
  const x = randF64([4, T, H], 14);
  const pre = m.eval().forward(x);
  const trained = m.train().forward(x);
  const a = pre.fusedHidden.dataSync();
  const b = trained.fusedHidden.dataSync();
  let zeros = 0;
  for (let i = 0; i < a.length; i++) {
    if (b[i] === 0) zeros++;
    else assert.ok(Math.abs(b[i]! - 2 * a[i]!) < 1e-12, `kept elements are scaled by 1/(1-p) (element ${i})`);
  }
  assert.ok(zeros > 0.3 * a.length && zeros < 0.7 * a.length, `about half dropped (${zeros}/${a.length})`);
  // the level outputs themselves are not dropped
  assertClose(trained.levels[2]!.hidden.dataSync(), pre.levels[2]!.hidden.dataSync(), 0, 0, 'level hidden');
});

test('pluggable fusion: a custom Module replaces the default', () => {
  class LastLevel extends Module {
    calls: string[][] = [];
    forward(input: FusionInput): FusionResult {
      this.calls.push([...input.levelNames]);
      return { hidden: input.hiddens[input.hiddens.length - 1]!, weights: null };
    }
  }
  const fusion = new LastLevel();
  const m = new HierarchicalMoE(
    hierarchyConfig({
      hiddenSize: H,
      levels: [
        { name: 'u', experts: [{ name: 'e' }] },
        { name: 'd', experts: [{ name: 'e' }] },
      ],
    }),
    () => new LinearExpert(H, { dtype: 'f64' }),
    { fusion },
  );
  const out = m.forward(randF64([2, T, H], 15));
  assert.equal(out.fusedHidden, out.level('d').hidden);
  assert.equal(out.fusionWeights, null);
  assert.deepEqual(fusion.calls, [['u', 'd']]);
});

test('parameters are discovered with stable dotted names', () => {
  const m = build(cfgInput());
  assert.deepEqual(
    m.namedParameters().map(([n]) => n),
    [
      'levels.0.experts.0.lin.proj.weight',
      'levels.0.experts.0.lin.proj.bias',
      'levels.1.experts.0.lin.proj.weight',
      'levels.1.experts.0.lin.proj.bias',
      'levels.1.experts.1.lin.proj.weight',
      'levels.1.experts.1.lin.proj.bias',
      'levels.1.experts.2.lin.proj.weight',
      'levels.1.experts.2.lin.proj.bias',
      'fusion.logits',
    ],
  );
});

test('a token-routed MoELayer is an expert: same output as the layer on its sub-batch, gradients reach its router', () => {
  const layers: MoELayer[] = [];
  const cfg = moeConfig({
    hiddenSize: H,
    router: { numExperts: 4, topK: 2 },
    experts: { intermediateSize: 6 },
    losses: { lbWeight: 0.01 },
  });
  const m = new HierarchicalMoE(
    hierarchyConfig({ hiddenSize: H, levels: [{ name: 'domain', experts: [{ name: 'code' }, { name: 'prose' }] }] }),
    () => {
      const layer = new MoELayer(cfg, { dtype: 'f64', generator: new Generator(layers.length + 40) });
      layers.push(layer);
      return asExpert(layer);
    },
    { dtype: 'f64' },
  );
  const x = randF64([3, T, H], 16);
  m.eval();
  const out = m.forward(x, { routing: { domain: ['prose', 'code', 'prose'] } });
  const h = out.level('domain').hidden.dataSync();
  const direct = (layer: MoELayer, rows: number[]) =>
    noGrad(() => layer.forward(fromArray(Float64Array.from(rows.flatMap((s) => rowsOf(x.dataSync(), s))), [rows.length, T, H]))).dataSync();
  assertClose(rowsOf(h, 1), direct(layers[0]!, [1]), 1e-12, 1e-12, 'code');
  assertClose([...rowsOf(h, 0), ...rowsOf(h, 2)], direct(layers[1]!, [0, 2]), 1e-12, 1e-12, 'prose');
  assert.ok(out.level('domain').aux['prose']!['moe']);
  m.train();
  m.forward(x, { routing: { domain: ['prose', 'code', 'prose'] } })
    .fusedHidden.square()
    .mean()
    .backward();
  for (const layer of layers) assert.ok(Array.from(layer.routerWeight.grad!.dataSync()).some((v) => v !== 0));
});

// keep an unused-import guard quiet for the Tensor type
export type _T = Tensor;
