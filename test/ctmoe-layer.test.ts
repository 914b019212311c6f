// The CT-MoE block — the core MoELayer with ctMoePreset, the ablation's layer — against the
// seed's formula in plain JS float64 loops (test/helpers/ctmoe-reference.ts): S construction,
// routing bias, top-k without renormalisation, message passing (k = 2 and k = 3), the LB loss,
// gradients (central differences of the reference) for S_raw, the router, the experts and the
// input; the seed's init ('ct-moe') against its draws; dense expert compute; the usage buffer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray, noGrad, sum, mul, type Tensor } from '../src/index.js';
import { MoELayer } from '../src/moe/layer.js';
import {
  DenseDispatcher,
  Topology,
  ctMoeLayerConfig,
  ctMoePreset,
  eigvalshLower,
  eigenspectrum,
  routingEntropy,
  sMaxOffDiagonal,
  sRowEntropy,
  takeRoutingEntropy,
  topologySubmatrices,
} from '../src/moe/topology/index.js';
import { Generator } from '../src/tensor/random.js';
import { type RefParams, refLayer, refS } from './helpers/ctmoe-reference.js';

function uniformArray(n: number, seed: number, lo: number, hi: number): Float64Array {
  const g = new Generator(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * g.uniform());
}

function setData(t: Tensor, a: Float64Array): void {
  (t.dataSync() as Float64Array).set(a);
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= tol * (1 + Math.abs(e)), `${what}[${i}]: got ${a}, expected ${e}`);
  }
}

function makeCase(
  K: number,
  opts: {
    routing?: boolean;
    collab?: boolean;
    topology?: boolean;
    routingScale?: number;
    collabScale?: number;
    temp?: number;
    lbWeight?: number;
    dense?: boolean;
  } = {},
) {
  const T = 4,
    D = 3,
    N = 5;
  const topology = opts.topology ?? true;
  const p: RefParams = {
    T,
    D,
    N,
    K,
    x: uniformArray(T * D, 1, -1, 1),
    wr: uniformArray(N * D, 2, -1, 1),
    w1: uniformArray(N * D * D, 3, -0.8, 0.8),
    w2: uniformArray(N * D * D, 4, -0.8, 0.8),
    sRaw: topology ? uniformArray(N * N, 5, -1.5, 1.5) : null,
    routingScale: opts.routingScale ?? 1.5,
    collabScale: opts.collabScale ?? 1.0,
    temp: opts.temp ?? 1.0,
    routing: topology && (opts.routing ?? true),
    collab: topology && (opts.collab ?? true),
  };
  const cfg = ctMoePreset(D, N, K, {
    routingScale: p.routingScale,
    collabScale: p.collabScale,
    sTemp: p.temp,
    useTopology: topology,
    useGraphRouting: p.routing,
    useGraphCollab: p.collab,
    lbWeight: opts.lbWeight ?? 0.01,
  });
  const layer = new MoELayer(cfg, {
    dtype: 'f64',
    generator: new Generator(9),
    ...(opts.dense ? { dispatcher: new DenseDispatcher(N) } : {}),
  });
  setData(layer.routerWeight, p.wr);
  setData(layer.experts.upProj!, p.w1);
  setData(layer.experts.downProj, p.w2);
  if (p.sRaw && layer.topology) setData(layer.topology.sRaw, p.sRaw);
  return { p, layer, x: fromArray(p.x.slice(), [T, D]) };
}

// ---------- tests ----------

test('S: symmetrise, -inf diagonal, row softmax with temperature (hand-computed 3x3)', () => {
  // S_raw = [[0, 1, 2], [3, 0, -1], [0.5, 4, 0]] -> sym off-diagonal: s01 = 2, s02 = 1.25, s12 = 1.5
  const raw = [0, 1, 2, 3, 0, -1, 0.5, 4, 0];
  for (const temp of [1, 0.5]) {
    const topo = new Topology(3, { sTemp: temp, dtype: 'f64' });
    setData(topo.sRaw, Float64Array.from(raw));
    const s = noGrad(() => topo.forward()).dataSync();
    const row = (a: number, b: number) => [
      Math.exp(a / temp) / (Math.exp(a / temp) + Math.exp(b / temp)),
      Math.exp(b / temp) / (Math.exp(a / temp) + Math.exp(b / temp)),
    ];
    const [r01, r02] = row(2, 1.25);
    const [r10, r12] = row(2, 1.5);
    const [r20, r21] = row(1.25, 1.5);
    close(s, [0, r01!, r02!, r10!, 0, r12!, r20!, r21!, 0], 1e-14, `S (temp ${temp})`);
    // rows sum to 1; not symmetric after the softmax
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(s[i * 3]! + s[i * 3 + 1]! + s[i * 3 + 2]! - 1) < 1e-14);
    assert.ok(Math.abs(s[1]! - s[3]!) > 1e-3, 'S is not symmetric');
  }
  // zeros init -> uniform 1/(N-1) off the diagonal; entropy log(N-1), max 1/(N-1)
  const t8 = new Topology(8);
  const s8 = noGrad(() => t8.forward()).dataSync();
  for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) assert.ok(Math.abs(s8[i * 8 + j]! - (i === j ? 0 : 1 / 7)) < 1e-7);
  assert.ok(Math.abs(sRowEntropy(s8, 8) - Math.log(7)) < 1e-6);
  assert.ok(Math.abs(sMaxOffDiagonal(s8, 8) - 1 / 7) < 1e-7);
});

test('S gradient: d/dS_raw of sum(S * G) matches the hand-derived softmax + symmetrisation chain', () => {
  const N = 4;
  const raw = uniformArray(N * N, 11, -1, 1);
  const G = uniformArray(N * N, 12, -1, 1);
  const temp = 0.7;
  const topo = new Topology(N, { sTemp: temp, dtype: 'f64' });
  setData(topo.sRaw, raw);
  sum(mul(topo.forward(), fromArray(G, [N, N]))).backward();
  const S = refS(raw, N, temp);
  // dL/dZ_ij = S_ij (G_ij - sum_k S_ik G_ik) / temp (j != i); Z = sym; dL/draw_ij = (dZ_ij + dZ_ji) / 2
  const dZ = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    let dot = 0;
    for (let k = 0; k < N; k++) dot += S[i * N + k]! * G[i * N + k]!;
    for (let j = 0; j < N; j++) dZ[i * N + j] = i === j ? 0 : (S[i * N + j]! * (G[i * N + j]! - dot)) / temp;
  }
  const expected = Float64Array.from({ length: N * N }, (_, q) => (dZ[q]! + dZ[(q % N) * N + Math.floor(q / N)]!) / 2);
  close(topo.sRaw.grad!.dataSync(), expected, 1e-12, 'dS_raw');
});

const VARIANTS = {
  full: {},
  'no-routing': { routing: false },
  'no-collab': { collab: false },
  standard: { topology: false },
} as const;

for (const K of [2, 3]) {
  test(`layer forward k=${K}: routing bias (column sums), top-k not renormalised, message passing, LB loss`, () => {
    const { p, layer, x } = makeCase(K, { routingScale: 1.3, collabScale: 0.8, temp: 0.7 });
    const { y, routing } = layer.forwardWithRouting(x); // training with grad: the LB loss is computed
    const ref = refLayer(p);
    const S = noGrad(() => layer.topology!.forward());
    close(S.dataSync(), ref.S!, 1e-13, 'S');
    close(routing.logits.dataSync(), ref.logits, 1e-12, 'logits with routing bias');
    // the routing bias is routing_scale x COLUMN sums (row sums would all be 1)
    const colSums = Array.from({ length: p.N }, (_, j) => [...Array(p.N).keys()].reduce((a, i) => a + ref.S![i * p.N + j]!, 0));
    assert.ok(Math.max(...colSums) - Math.min(...colSums) > 0.05, 'column sums vary');
    assert.deepEqual(Array.from(routing.topkIds.dataSync()), ref.ids.flat());
    const tw = routing.topkWeights.dataSync();
    const rowSum = tw[0]! + tw[1]! + (K === 3 ? tw[2]! : 0);
    assert.ok(rowSum < 0.999, 'top-k weights are not renormalised');
    close(topologySubmatrices(S, routing.topkIds).dataSync(), ref.subs.flat(2), 1e-12, 'S_sub');
    if (K === 2) for (const sub of ref.subs) close(sub.flat(), [0, 1, 1, 0], 1e-8, 'k=2 S_sub is [[0,1],[1,0]]');
    close(y.dataSync(), ref.y, 1e-11, 'y');
    close([layer.lastMetrics!.lbLoss!], [ref.lb], 1e-12, 'lb');
    const counts = new Array<number>(p.N).fill(0);
    for (const e of ref.ids.flat()) counts[e]!++;
    assert.deepEqual(Array.from(layer.lastMetrics!.tokensPerExpert), counts);
  });

  for (const [name, flags] of Object.entries(VARIANTS)) {
    test(`layer gradient k=${K} ${name}: S_raw, router, W1, W2 and input grads match central differences of the reference`, () => {
      const lbW = 0.37;
      const { p, layer, x } = makeCase(K, { ...flags, lbWeight: lbW });
      const G = uniformArray(p.T * p.D, 21, -1, 1);
      const lossOf = (q: RefParams) => {
        const r = refLayer(q);
        return r.y.reduce((a, v, i) => a + v * G[i]!, 0) + lbW * r.lb;
      };
      x.requiresGrad_();
      // the weighted LB loss rides on the output (attachAuxLoss): no separate term to add
      sum(mul(layer.forward(x), fromArray(G, [p.T, p.D]))).backward();
      const fd = (key: 'sRaw' | 'wr' | 'w1' | 'w2' | 'x', i: number) => {
        const h = 1e-6;
        const plus = { ...p, [key]: p[key]!.slice() };
        const minus = { ...p, [key]: p[key]!.slice() };
        plus[key]![i]! += h;
        minus[key]![i]! -= h;
        return (lossOf(plus) - lossOf(minus)) / (2 * h);
      };
      const wrt = [
        ['wr', layer.routerWeight],
        ['w1', layer.experts.upProj!],
        ['w2', layer.experts.downProj],
        ['x', x],
        ...(layer.topology ? [['sRaw', layer.topology.sRaw] as const] : []),
      ] as const;
      for (const [key, t] of wrt) {
        const n = p[key]!.length;
        close(
          t.grad!.dataSync(),
          Float64Array.from({ length: n }, (_, i) => fd(key, i)),
          1e-6,
          `d${key}`,
        );
      }
    });
  }
}

test('message passing alone: with k=2 S gets (almost) no gradient from it; with k=3 it does', () => {
  const norms: number[] = [];
  for (const K of [2, 3]) {
    const { p, layer, x } = makeCase(K, { routing: false, lbWeight: 0 });
    const G = uniformArray(p.T * p.D, 31, -1, 1);
    sum(mul(layer.forward(x), fromArray(G, [p.T, p.D]))).backward();
    const g = Float64Array.from(layer.topology!.sRaw.grad!.dataSync());
    norms.push(Math.sqrt(g.reduce((a, v) => a + v * v, 0)));
    // hand check of one entry against the reference by central differences
    const h = 1e-6;
    const lossOf = (raw: Float64Array) => refLayer({ ...p, sRaw: raw }).y.reduce((a, v, i) => a + v * G[i]!, 0);
    const pl = p.sRaw!.slice();
    const mi = p.sRaw!.slice();
    pl[1]! += h;
    mi[1]! -= h;
    assert.ok(Math.abs(g[1]! - (lossOf(pl) - lossOf(mi)) / (2 * h)) < 1e-6);
  }
  // k=2: only the +1e-9 in the renormalisation leaves S in the sub-matrix: gradient ~1e-8
  assert.ok(norms[0]! < 1e-6, `k=2 |dS_raw| = ${norms[0]}`);
  assert.ok(norms[1]! > 1e-3, `k=3 |dS_raw| = ${norms[1]}`);
});

test("variants: Standard MoE has no S; NoCollab / NoRouting drop one S path; dense experts (the seed's way) = sparse", () => {
  const std = makeCase(3, { topology: false });
  assert.equal(std.layer.topology, null);
  assert.ok(!std.layer.namedParameters().some(([n]) => n.includes('sRaw')));
  assert.equal(std.layer.parameters().length, 3, 'router, W1, W2: no biases');
  close(noGrad(() => std.layer.forward(std.x)).dataSync(), refLayer(std.p).y, 1e-11, 'standard y');
  for (const o of [{ routing: false }, { collab: false }]) {
    const c = makeCase(3, o);
    close(noGrad(() => c.layer.forward(c.x)).dataSync(), refLayer(c.p).y, 1e-11, `y ${JSON.stringify(o)}`);
  }
  // dense (every expert on every token, the selected ones combined) vs sparse (sorted slots + grouped GEMM)
  const a = makeCase(3);
  const b = makeCase(3, { dense: true });
  const ya = a.layer.forward(a.x);
  const { y: yb, routing } = b.layer.forwardWithRouting(b.x);
  assert.equal(b.layer.dispatcher.dispatch(b.x, routing).rows.shape[0], 5 * 4, 'dense: E·T rows');
  close(yb.dataSync(), ya.dataSync(), 1e-14, 'dense vs sparse y');
  close([b.layer.lastMetrics!.lbLoss!], [a.layer.lastMetrics!.lbLoss!], 1e-14, 'dense vs sparse lb');
  sum(ya).backward();
  sum(yb).backward();
  for (const [ga, gb, what] of [
    [a.layer.experts.upProj!.grad!, b.layer.experts.upProj!.grad!, 'dW1'],
    [a.layer.experts.downProj.grad!, b.layer.experts.downProj.grad!, 'dW2'],
    [a.layer.routerWeight.grad!, b.layer.routerWeight.grad!, 'dW_router'],
    [a.layer.topology!.sRaw.grad!, b.layer.topology!.sRaw.grad!, 'dS_raw'],
  ] as const)
    close(gb.dataSync(), ga.dataSync(), 1e-13, `dense vs sparse ${what}`);
  assert.throws(() => new DenseDispatcher(4, { capacityFactor: 1, capacityMultiple: 8, weightsOn: 'output' }), /capacityFactor = 1/);
});

test('LB loss is k at uniform routing; usage counter (training forwards only) and routing entropy', () => {
  const N = 4;
  const layer = new MoELayer(ctMoePreset(2, N, 2), { dtype: 'f64' });
  setData(layer.routerWeight, new Float64Array(N * 2)); // logits all equal -> weights 1/N
  // T = 4 tokens; ties pick the lowest ids: experts 0 and 1 every time -> f = [1, 1, 0, 0], p = 1/4
  layer.forward(fromArray(new Float64Array(8), [4, 2]));
  close([layer.lastMetrics!.lbLoss!], [N * (1 * 0.25 + 1 * 0.25)], 1e-14, 'lb');
  // = k: with uniform p, lb = N * sum_e f_e / N = sum f = k whatever the counts
  close([layer.lastMetrics!.lbLoss!], [2], 1e-14, 'lb = k');
  assert.deepEqual([...layer.usage], [4, 4, 0, 0]);
  noGrad(() => layer.forward(fromArray(new Float64Array(8), [4, 2])));
  assert.deepEqual([...layer.usage], [8, 8, 0, 0], 'training mode without grad counts too (the seed counts in train mode)');
  close([takeRoutingEntropy(layer.usage)], [Math.log(2)], 1e-8, 'routing entropy');
  assert.deepEqual([...layer.usage], [0, 0, 0, 0]);
  close([routingEntropy([1, 1, 1, 1])], [Math.log(4)], 1e-8, 'uniform routing entropy');
  layer.eval();
  layer.forward(fromArray(new Float64Array(8), [4, 2]));
  assert.deepEqual([...layer.usage], [0, 0, 0, 0], 'no usage counting in eval mode');
});

test("init 'ct-moe': the seed's draws in its order (router kaiming-uniform drawn then N(0, 0.02); W1, W2 randn / sqrt(D))", () => {
  const D = 3;
  const N = 4;
  const layer = new MoELayer(ctMoePreset(D, N, 2), { dtype: 'f64', init: 'ct-moe', generator: new Generator(5) });
  const g = new Generator(5);
  for (let i = 0; i < N * D; i++) g.uniform(); // the nn.Linear construction's kaiming-uniform, overwritten
  const router = Float64Array.from({ length: N * D }, () => 0.02 * g.normal());
  const w1 = Float64Array.from({ length: N * D * D }, () => g.normal() * (1 / Math.sqrt(D)));
  const w2 = Float64Array.from({ length: N * D * D }, () => g.normal() * (1 / Math.sqrt(D)));
  assert.deepEqual(Array.from(layer.routerWeight.dataSync()), Array.from(router));
  assert.deepEqual(Array.from(layer.experts.upProj!.dataSync()), Array.from(w1));
  assert.deepEqual(Array.from(layer.experts.downProj.dataSync()), Array.from(w2));
  assert.deepEqual(Array.from(layer.topology!.sRaw.dataSync()), new Array(N * N).fill(0));
  // the default init is OLMo-core's (a different draw)
  const other = new MoELayer(ctMoePreset(D, N, 2), { dtype: 'f64', generator: new Generator(5) });
  assert.notDeepEqual(Array.from(other.routerWeight.dataSync()), Array.from(router));
});

test('eigvalsh semantics: lower triangle mirrored (hand-known spectra), descending normalised spectrum', () => {
  // lower triangle of tridiag(-1, 2, -1); the upper triangle holds garbage eigvalsh never reads
  const a = [2, 99, 99, -1, 2, 99, 0, -1, 2];
  const ev = eigvalshLower(a, 3);
  close(ev, [2 - Math.SQRT2, 2, 2 + Math.SQRT2], 1e-13, 'eigenvalues');
  // a non-symmetric row-stochastic matrix: [[0, .7, .3], [.2, 0, .8], [.5, .5, 0]] -> lower mirror
  // [[0, .2, .5], [.2, 0, .5], [.5, .5, 0]]: eigenvalues -0.2 and the roots of l^2 - 0.2 l - 0.5 = 0
  const s = [0, 0.7, 0.3, 0.2, 0, 0.8, 0.5, 0.5, 0];
  const r = Math.sqrt(0.04 + 2);
  const spec = eigenspectrum(s, 3);
  close(spec.eigenvalues, [(0.2 + r) / 2, -0.2, (0.2 - r) / 2], 1e-13, 'descending');
  const tot = (0.2 + r) / 2 + 0.2 + Math.abs((0.2 - r) / 2);
  close(spec.normalizedAbs, [(0.2 + r) / 2 / tot, 0.2 / tot, Math.abs((0.2 - r) / 2) / tot], 1e-13, 'normalised |lambda|');
  assert.equal(spec.reference, 1 / 3);
});

test('config validation names the field, the value and the range', () => {
  assert.throws(() => ctMoeLayerConfig({ dModel: 8, numExperts: 4, topK: 5 }), /ctMoe\.topK = 5 .*in \[1, 4\]/);
  assert.throws(() => ctMoeLayerConfig({ dModel: 8, sTemp: 0 }), /ctMoe\.sTemp = 0/);
  assert.throws(() => ctMoeLayerConfig({ dModel: 8, useTopology: false }), /ctMoe\.useGraphRouting = true/);
  assert.throws(() => ctMoeLayerConfig({ dModel: 8, topk: 2 } as never), /ctMoe\.topk/);
  const c = ctMoeLayerConfig({ dModel: 8 });
  assert.equal(c.topK, 2);
  assert.equal(c.routingScale, 1.5);
});
