// LossAPI: every scope (global, level, bridge, expert-reported × lossWeight), the bundle's total
// against a hand sum, its gradient against the sum of the terms' gradients, the flat scalar dict,
// term order, skipping disabled levels, and the errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Generator, Module, type Parameter, type Tensor } from '../src/index.js';
import {
  type ExpertBatch,
  type ExpertResult,
  HierarchicalMoE,
  type HierarchyConfigInput,
  type HierarchyOutput,
  LinearExpert,
  LossAPI,
  hierarchyConfig,
} from '../src/moe/hierarchy/index.js';
import { assertClose, randF64 } from './helpers/gradcheck.js';

const H = 3;
const T = 2;
const B = 4;

/** A Linear expert that reports 'l2' = mean(out²) and 'bias' = Σ bias over its sub-batch. */
class ReportingExpert extends Module {
  readonly lin: LinearExpert;
  constructor(seed: number) {
    super();
    this.lin = new LinearExpert(H, { dtype: 'f64', generator: new Generator(seed) });
  }
  forward(batch: ExpertBatch): ExpertResult {
    const { hidden } = this.lin.forward(batch);
    return { hidden, losses: { l2: hidden.square().mean(), bias: this.lin.proj.bias!.sum() } };
  }
}

const cfg: HierarchyConfigInput = {
  hiddenSize: H,
  levels: [
    { name: 'universal', experts: [{ name: 'core' }] },
    {
      name: 'domain',
      experts: [
        { name: 'code', lossWeight: 0.5 },
        { name: 'prose', lossWeight: 2 },
      ],
    },
    {
      name: 'language',
      experts: [
        { name: 'ts', lossWeight: 0 },
        { name: 'en', lossWeight: 3, stopGradientFromParent: true },
      ],
      fallbackExpert: 'ts',
    },
  ],
};

function build(input: HierarchyConfigInput = cfg): HierarchicalMoE {
  let seed = 100;
  return new HierarchicalMoE(hierarchyConfig(input), () => new ReportingExpert(seed++), { dtype: 'f64' });
}

const routing = { domain: ['code', 'prose', 'code', 'prose'], language: ['ts', 'en', 'ts', 'en'] };

const f64 = (t: Tensor): Float64Array => t.dataSync() as Float64Array;
const meanSq = (a: ArrayLike<number>): number => Array.from(a).reduce((s, v) => s + v * v, 0) / a.length;
const rows = (t: Tensor, idx: number[]): number[] => idx.flatMap((s) => Array.from(f64(t)).slice(s * T * H, (s + 1) * T * H));

/** Registers one loss of every scope; targets are a [B, T, H] tensor. */
function api(): LossAPI<Tensor> {
  return new LossAPI<Tensor>()
    .addGlobal('mse', (out, y) => out.fusedHidden.sub(y).square().mean())
    .addLevel('universal', 'reg', (l) => l.hidden.square().mean(), { weight: 0.1 })
    .addBridge('domain', 'language', 'consistency', (p, c) => c.hidden.sub(p.hidden.detach()).square().mean(), { weight: 0.25 })
    .addLevel('language', 'spec', (l, y) => l.hidden.mul(y).mean().neg(), { weight: 1.5 });
}

test('compute: every scope, values against independent computations, total = hand sum of weighted terms, flat dict', () => {
  const m = build();
  const x = randF64([B, T, H], 1);
  const y = randF64([B, T, H], 2);
  const out = m.forward(x, { routing });
  const bundle = api().compute(out, y);

  // term order: registered losses in registration order, then expert losses (levels in order, experts in declaration order)
  assert.deepEqual(
    bundle.terms.map((t) => t.key),
    [
      'global/mse',
      'level/universal/reg',
      'bridge/domain->language/consistency',
      'level/language/spec',
      'expert/universal/core/l2',
      'expert/universal/core/bias',
      'expert/domain/code/l2',
      'expert/domain/code/bias',
      'expert/domain/prose/l2',
      'expert/domain/prose/bias',
      'expert/language/ts/l2',
      'expert/language/ts/bias',
      'expert/language/en/l2',
      'expert/language/en/bias',
    ],
  );
  const term = (k: string) => bundle.terms.find((t) => t.key === k)!;
  assert.deepEqual(bundle.terms.map((t) => [t.scope, t.levels, t.expert, t.weight]).slice(0, 7), [
    ['global', [], null, 1],
    ['level', ['universal'], null, 0.1],
    ['bridge', ['domain', 'language'], null, 0.25],
    ['level', ['language'], null, 1.5],
    ['expert', ['universal'], 'core', 1],
    ['expert', ['universal'], 'core', 1],
    ['expert', ['domain'], 'code', 0.5],
  ]);

  // each value from the raw output data
  const fused = f64(out.fusedHidden);
  const yd = f64(y);
  const expected: Record<string, number> = {
    'global/mse': meanSq(fused.map((v, i) => v - yd[i]!)),
    'level/universal/reg': meanSq(f64(out.level('universal').hidden)),
    'bridge/domain->language/consistency': meanSq(f64(out.level('language').hidden).map((v, i) => v - f64(out.level('domain').hidden)[i]!)),
    'level/language/spec': -f64(out.level('language').hidden).reduce((s, v, i) => s + v * yd[i]!, 0) / (B * T * H),
    'expert/universal/core/l2': meanSq(f64(out.level('universal').hidden)),
    'expert/domain/code/l2': meanSq(rows(out.level('domain').hidden, [0, 2])),
    'expert/domain/prose/l2': meanSq(rows(out.level('domain').hidden, [1, 3])),
    'expert/language/ts/l2': meanSq(rows(out.level('language').hidden, [0, 2])),
    'expert/language/en/l2': meanSq(rows(out.level('language').hidden, [1, 3])),
  };
  for (const [lvl, e] of [
    ['universal', 'core'],
    ['domain', 'code'],
    ['domain', 'prose'],
    ['language', 'ts'],
    ['language', 'en'],
  ] as const) {
    expected[`expert/${lvl}/${e}/bias`] = Array.from(f64((m.expert(lvl, e) as ReportingExpert).lin.proj.bias!)).reduce((a, b) => a + b, 0);
  }
  for (const t of bundle.terms) {
    assertClose([t.value.item()], [expected[t.key]!], 1e-12, 1e-12, t.key);
    assertClose([t.weighted.item()], [t.weight * expected[t.key]!], 1e-12, 1e-12, `${t.key} weighted`);
    assert.equal(t.value.ndim, 0);
  }
  // expert losses are scaled by the expert's lossWeight
  assert.equal(term('expert/domain/prose/l2').weight, 2);
  assert.equal(term('expert/language/ts/l2').weight, 0);
  assert.equal(term('expert/language/en/bias').weight, 3);

  const handTotal = bundle.terms.reduce((s, t) => s + t.weight * expected[t.key]!, 0);
  assertClose([bundle.total.item()], [handTotal], 1e-12, 1e-12, 'total');
  assert.deepEqual(Object.keys(bundle.scalars), [...bundle.terms.map((t) => t.key), 'total']);
  for (const t of bundle.terms) assert.equal(bundle.scalars[t.key], t.value.item());
  assert.equal(bundle.scalars['total'], bundle.total.item());
});

test('gradient of the total w.r.t. every parameter = Σ_terms weight · gradient of the term', () => {
  const m = build();
  const x = randF64([B, T, H], 3);
  const y = randF64([B, T, H], 4);
  const out = m.forward(x, { routing });
  const bundle = api().compute(out, y);
  const params: Parameter[] = m.parameters();
  const sums = params.map((p) => new Float64Array(p.size));
  for (const t of bundle.terms) {
    m.zeroGrad();
    if (!t.weighted.requiresGrad) continue;
    t.weighted.backward(undefined, { retainGraph: true });
    params.forEach((p, i) => p.grad && f64(p.grad).forEach((v, j) => (sums[i]![j]! += v)));
  }
  m.zeroGrad();
  bundle.total.backward();
  let nonZero = 0;
  params.forEach((p, i) => {
    const g = p.grad ? f64(p.grad) : new Float64Array(p.size);
    assertClose(g, sums[i]!, 1e-12, 1e-10, `param ${i}`);
    if (g.some((v) => v !== 0)) nonZero++;
  });
  assert.ok(nonZero >= params.length - 1, 'the total reaches (nearly) every parameter');
});

test('a level loss reaches only the parameters upstream of that level (here: the universal expert)', () => {
  const m = build();
  const out = m.forward(randF64([B, T, H], 5), { routing });
  const only = new LossAPI({ includeExpertLosses: false }).addLevel('universal', 'reg', (l) => l.hidden.square().mean());
  const b = only.compute(out);
  assert.deepEqual(
    b.terms.map((t) => t.key),
    ['level/universal/reg'],
  );
  b.total.backward();
  const reached = m
    .namedParameters()
    .filter(([, p]) => p.grad && f64(p.grad).some((v) => v !== 0))
    .map(([n]) => n);
  assert.deepEqual(reached, ['levels.0.experts.0.lin.proj.weight', 'levels.0.experts.0.lin.proj.bias']);
});

test('disabled levels: their level / bridge terms and expert losses are skipped; unknown levels, bad bridges, duplicates and non-scalars are errors', () => {
  const off: HierarchyConfigInput = JSON.parse(JSON.stringify(cfg));
  off.levels[2]!.enabled = false;
  const m = build(off);
  const y = randF64([B, T, H], 6);
  const out: HierarchyOutput = m.forward(randF64([B, T, H], 7), { routing });
  const b = api().compute(out, y);
  assert.deepEqual(
    b.terms.map((t) => t.key).filter((k) => !k.startsWith('expert/')),
    ['global/mse', 'level/universal/reg'],
  );
  assert.ok(b.terms.every((t) => !t.levels.includes('language')));

  const full = build().forward(randF64([B, T, H], 8), { routing });
  assert.throws(
    () => new LossAPI().addLevel('lang', 'x', (l) => l.hidden.sum()).compute(full),
    /'level\/lang\/x' names level 'lang', which the model does not have \(levels: 'universal', 'domain', 'language'\)/,
  );
  assert.throws(
    () => new LossAPI().addBridge('language', 'domain', 'x', (p) => p.hidden.sum()).compute(full),
    /parent 'language' must come before child 'domain'/,
  );
  assert.throws(
    () => new LossAPI().addGlobal('a', (o) => o.fusedHidden.sum()).addGlobal('a', (o) => o.fusedHidden.sum()),
    /'global\/a' is already registered/,
  );
  assert.throws(
    () => new LossAPI().addGlobal('a', (o) => o.fusedHidden).compute(full),
    /'global\/a' must return a one-element tensor \(got \[4, 2, 3\]\)/,
  );
  assert.throws(
    () => new LossAPI().addGlobal('a', (o) => o.fusedHidden.sum(), { weight: Number.NaN }),
    /weight of 'global\/a' must be a finite number/,
  );
  assert.throws(() => new LossAPI().addBridge('domain', 'domain', 'x', (p) => p.hidden.sum()), /must be different levels/);

  // an empty API gives a constant zero total
  const empty = new LossAPI({ includeExpertLosses: false }).compute(full);
  assert.equal(empty.total.item(), 0);
  assert.deepEqual(empty.scalars, { total: 0 });
});

test('context reaches every loss function', () => {
  const out = build().forward(randF64([B, T, H], 9), { routing });
  const seen: unknown[] = [];
  const ctx = { step: 7 };
  new LossAPI<null, typeof ctx>({ includeExpertLosses: false })
    .addGlobal('g', (o, _t, c) => {
      seen.push(c);
      return o.fusedHidden.sum();
    })
    .addLevel('domain', 'l', (l, _t, c) => {
      seen.push(c);
      return l.hidden.sum();
    })
    .addBridge('universal', 'language', 'b', (p, _c, _t, c) => {
      seen.push(c);
      return p.hidden.sum();
    })
    .compute(out, null, ctx);
  assert.deepEqual(seen, [ctx, ctx, ctx]);
});
