// CT-MoE topology layer against hand computations: plain JS float64 loops that do not reuse
// the implementation. S construction, routing bias, top-k without renormalisation, message
// passing (k = 2 and k = 3), the LB loss, and gradients (central differences of the plain-JS
// reference) for S_raw, the router and the experts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray, noGrad, sum, mul, type Tensor } from '../src/index.js';
import {
  CtMoeLayer,
  Topology,
  ctMoeLayerConfig,
  eigvalshLower,
  eigenspectrum,
  routingEntropy,
  sMaxOffDiagonal,
  sRowEntropy,
} from '../src/moe/topology/index.js';
import { Generator } from '../src/tensor/random.js';

// ---------- plain-JS reference ----------
function erf(x: number): number {
  // Taylor series; |x| stays small here (< 4), where it is accurate to ~1e-13
  let term = x;
  let s = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    s += add;
    if (Math.abs(add) < 1e-17 * Math.abs(s)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * s;
}
const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

function refS(raw: ArrayLike<number>, N: number, temp: number): Float64Array {
  const s = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    const row: number[] = [];
    for (let j = 0; j < N; j++) row.push(i === j ? -Infinity : (raw[i * N + j]! + raw[j * N + i]!) / 2 / temp);
    const m = Math.max(...row);
    const ex = row.map((v) => Math.exp(v - m));
    const z = ex.reduce((a, b) => a + b, 0);
    for (let j = 0; j < N; j++) s[i * N + j] = ex[j]! / z;
  }
  return s;
}

interface RefParams {
  T: number;
  D: number;
  N: number;
  K: number;
  x: Float64Array;
  wr: Float64Array;
  w1: Float64Array;
  w2: Float64Array;
  sRaw: Float64Array | null;
  routingScale: number;
  collabScale: number;
  temp: number;
  routing: boolean;
  collab: boolean;
}

/** The whole layer in float64 loops: y [T, D], lb, ids, S_sub per token. */
function refLayer(p: RefParams) {
  const { T, D, N, K, x } = p;
  const S = p.sRaw ? refS(p.sRaw, N, p.temp) : null;
  const col = new Float64Array(N);
  if (S) for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) col[j]! += S[i * N + j]!;
  const y = new Float64Array(T * D);
  const pMean = new Float64Array(N);
  const f = new Float64Array(N);
  const ids: number[][] = [];
  const logitsAll = new Float64Array(T * N);
  const subs: number[][][] = [];
  for (let t = 0; t < T; t++) {
    const logits = new Float64Array(N);
    for (let e = 0; e < N; e++) {
      let v = 0;
      for (let d = 0; d < D; d++) v += x[t * D + d]! * p.wr[e * D + d]!;
      if (S && p.routing) v += p.routingScale * col[e]!;
      logits[e] = v;
      logitsAll[t * N + e] = v;
    }
    const m = Math.max(...logits);
    const ex = [...logits].map((v) => Math.exp(v - m));
    const z = ex.reduce((a, b) => a + b, 0);
    const w = ex.map((v) => v / z);
    for (let e = 0; e < N; e++) pMean[e]! += w[e]! / T;
    const order = [...Array(N).keys()].sort((a, b) => w[b]! - w[a]! || a - b).slice(0, K);
    ids.push(order);
    for (const e of order) f[e]! += 1 / T;
    // expert outputs
    const out = order.map((e) => {
      const h = new Float64Array(D);
      for (let j = 0; j < D; j++) {
        let v = 0;
        for (let i = 0; i < D; i++) v += x[t * D + i]! * p.w1[e * D * D + i * D + j]!;
        h[j] = gelu(v);
      }
      const o = new Float64Array(D);
      for (let j = 0; j < D; j++) {
        let v = 0;
        for (let i = 0; i < D; i++) v += h[i]! * p.w2[e * D * D + i * D + j]!;
        o[j] = v;
      }
      return o;
    });
    let mixed = out;
    if (S && p.collab) {
      const sub = order.map((a) => order.map((b) => S[a * N + b]!));
      const norm = sub.map((row) => {
        const rs = row.reduce((u, v) => u + v, 0);
        return row.map((v) => v / (rs + 1e-9));
      });
      subs.push(norm);
      mixed = out.map((o, i) =>
        Float64Array.from(o, (v, d) => v + p.collabScale * norm[i]!.reduce((acc, sij, j) => acc + sij * out[j]![d]!, 0)),
      );
    }
    for (let k = 0; k < K; k++) for (let d = 0; d < D; d++) y[t * D + d]! += w[order[k]!]! * mixed[k]![d]!;
  }
  let lb = 0;
  for (let e = 0; e < N; e++) lb += f[e]! * pMean[e]!;
  return { y, lb: N * lb, ids, subs, S, logits: logitsAll };
}

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
  opts: { routing?: boolean; collab?: boolean; topology?: boolean; routingScale?: number; collabScale?: number; temp?: number } = {},
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
  const layer = new CtMoeLayer(
    {
      dModel: D,
      numExperts: N,
      topK: K,
      routingScale: p.routingScale,
      collabScale: p.collabScale,
      sTemp: p.temp,
      useTopology: topology,
      useGraphRouting: p.routing,
      useGraphCollab: p.collab,
    },
    { dtype: 'f64', generator: new Generator(9) },
  );
  setData(layer.router.weight, p.wr);
  setData(layer.w1, p.w1);
  setData(layer.w2, p.w2);
  if (p.sRaw) setData(layer.topology!.sRaw, p.sRaw);
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

for (const K of [2, 3]) {
  test(`layer forward k=${K}: routing bias (column sums), top-k not renormalised, message passing, LB loss`, () => {
    const { p, layer, x } = makeCase(K);
    layer.keepTrace = true;
    const y = noGrad(() => layer.forward(x));
    const ref = refLayer(p);
    const tr = layer.lastTrace!;
    close(tr.s!.dataSync(), ref.S!, 1e-13, 'S');
    close(tr.logits.dataSync(), ref.logits, 1e-12, 'logits with routing bias');
    // the routing bias is routing_scale x COLUMN sums (row sums would all be 1)
    const colSums = Array.from({ length: p.N }, (_, j) => [...Array(p.N).keys()].reduce((a, i) => a + ref.S![i * p.N + j]!, 0));
    assert.ok(Math.max(...colSums) - Math.min(...colSums) > 0.05, 'column sums vary');
    assert.deepEqual(Array.from(tr.topkIds.dataSync()), ref.ids.flat());
    const tw = tr.topkWeights.dataSync();
    const rowSum = tw[0]! + tw[1]! + (K === 3 ? tw[2]! : 0);
    assert.ok(rowSum < 0.999, 'top-k weights are not renormalised');
    close(tr.sSub!.dataSync(), ref.subs.flat(2), 1e-12, 'S_sub');
    if (K === 2) for (const sub of ref.subs) close(sub.flat(), [0, 1, 1, 0], 1e-8, 'k=2 S_sub is [[0,1],[1,0]]');
    close(y.dataSync(), ref.y, 1e-11, 'y');
    close([layer.lastAux!.item()], [ref.lb], 1e-12, 'lb');
  });

  test(`layer gradient k=${K}: S_raw, router and expert grads match central differences of the reference`, () => {
    const { p, layer, x } = makeCase(K);
    const G = uniformArray(p.T * p.D, 21, -1, 1);
    const lbW = 0.37;
    const lossOf = (q: RefParams) => {
      const r = refLayer(q);
      return r.y.reduce((a, v, i) => a + v * G[i]!, 0) + lbW * r.lb;
    };
    const y = layer.forward(x);
    sum(mul(y, fromArray(G, [p.T, p.D])))
      .add(mul(layer.lastAux!, lbW))
      .backward();
    const fd = (key: 'sRaw' | 'wr' | 'w1', i: number) => {
      const h = 1e-6;
      const plus = { ...p, [key]: p[key]!.slice() };
      const minus = { ...p, [key]: p[key]!.slice() };
      plus[key]![i]! += h;
      minus[key]![i]! -= h;
      return (lossOf(plus) - lossOf(minus)) / (2 * h);
    };
    for (const [key, t] of [
      ['sRaw', layer.topology!.sRaw],
      ['wr', layer.router.weight],
      ['w1', layer.w1],
    ] as const) {
      const g = t.grad!.dataSync();
      const n = p[key]!.length;
      close(
        g,
        Float64Array.from({ length: n }, (_, i) => fd(key, i)),
        1e-6,
        `d${key}`,
      );
    }
  });
}

test('message passing alone: with k=2 S gets (almost) no gradient from it; with k=3 it does', () => {
  const norms: number[] = [];
  for (const K of [2, 3]) {
    const { p, layer, x } = makeCase(K, { routing: false });
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

test('variants: Standard MoE has no S; NoCollab / NoRouting drop one S path; sparse and dense experts agree', () => {
  const std = makeCase(3, { topology: false });
  assert.equal(std.layer.topology, null);
  assert.ok(!std.layer.namedParameters().some(([n]) => n.includes('sRaw')));
  close(noGrad(() => std.layer.forward(std.x)).dataSync(), refLayer(std.p).y, 1e-11, 'standard y');
  for (const o of [{ routing: false }, { collab: false }]) {
    const c = makeCase(3, o);
    close(noGrad(() => c.layer.forward(c.x)).dataSync(), refLayer(c.p).y, 1e-11, `y ${JSON.stringify(o)}`);
  }
  // dense (the seed's all-experts-then-gather) vs sparse (sorted slots + grouped GEMM): identical
  const a = makeCase(3);
  const b = makeCase(3);
  const dense = new CtMoeLayer({ dModel: 3, numExperts: 5, topK: 3, expertCompute: 'dense' }, { dtype: 'f64' });
  dense.loadStateDict(b.layer.stateDict());
  const ya = a.layer.forward(a.x);
  const yb = dense.forward(b.x);
  assert.deepEqual(Array.from(ya.dataSync()), Array.from(yb.dataSync()));
  sum(ya).backward();
  sum(yb).backward();
  close(a.layer.w1.grad!.dataSync(), dense.w1.grad!.dataSync(), 1e-14, 'dense vs sparse dW1');
});

test('LB loss is k at uniform routing; usage counter and routing entropy', () => {
  const N = 4;
  const layer = new CtMoeLayer({ dModel: 2, numExperts: N, topK: 2 }, { dtype: 'f64' });
  setData(layer.router.weight, new Float64Array(N * 2)); // logits all equal -> weights 1/N
  // T = 4 tokens; ties pick the lowest ids: experts 0 and 1 every time -> f = [1, 1, 0, 0], p = 1/4
  layer.forward(fromArray(new Float64Array(8), [4, 2]));
  close([layer.lastAux!.item()], [N * (1 * 0.25 + 1 * 0.25)], 1e-14, 'lb');
  assert.deepEqual([...layer.usage], [4, 4, 0, 0]);
  close([layer.takeRoutingEntropy()], [Math.log(2)], 1e-8, 'routing entropy');
  assert.deepEqual([...layer.usage], [0, 0, 0, 0]);
  // = k: with uniform p, lb = N * sum_e f_e / N = sum f = k whatever the counts
  close([layer.lastAux!.item()], [2], 1e-14, 'lb = k');
  close([routingEntropy([1, 1, 1, 1])], [Math.log(4)], 1e-8, 'uniform routing entropy');
  layer.eval();
  layer.forward(fromArray(new Float64Array(8), [4, 2]));
  assert.deepEqual([...layer.usage], [0, 0, 0, 0], 'no usage counting in eval mode');
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
