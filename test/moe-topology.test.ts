// CT-MoE's collaboration topology on the core MoELayer (MoEConfig.topology):
//  - ctMoePreset as data (MoELayer(ctMoePreset(...)) against the seed's formula: ctmoe-layer.test.ts);
//  - non-CT routers and banks taking the topology on (sigmoid + group-limited + renormalised
//    + scaled router with a SwiGLU bank and a capacity; logits-selected sigmoid with weights on
//    the input and a biased GELU bank) against a plain-JS float64 reference written from the
//    spec, forward and gradients (central differences of the reference);
//  - config validation and JSON round trip.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray, mul, sum, type Tensor } from '../src/index.js';
import { ConfigError, moeConfig, parseMoEConfig, type MoEConfigInput } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { ctMoePreset } from '../src/moe/topology/index.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose } from './helpers/gradcheck.js';
import { gelu, numericGrad, refRoute, rows, silu, type RefRouter } from './helpers/moe-reference.js';

function uniformArray(n: number, seed: number, lo: number, hi: number): Float64Array {
  const g = new Generator(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * g.uniform());
}

function setData(t: Tensor, a: ArrayLike<number>): void {
  const d = t.dataSync() as Float64Array;
  assert.equal(d.length, a.length, 'setData: size');
  d.set(a);
}

/** S = row softmax of mask_diag((R + Rᵀ)/2) / temp, from the spec. */
function refS(raw: ArrayLike<number>, N: number, temp: number): Float64Array {
  const s = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    const row = Array.from({ length: N }, (_, j) => (i === j ? -Infinity : (raw[i * N + j]! + raw[j * N + i]!) / 2 / temp));
    const m = Math.max(...row);
    const ex = row.map((v) => Math.exp(v - m));
    const z = ex.reduce((a, b) => a + b, 0);
    for (let j = 0; j < N; j++) s[i * N + j] = ex[j]! / z;
  }
  return s;
}

// ------------------------------------------------ 1. ctMoePreset as data (held to the seed's formula in ctmoe-layer.test.ts)

test('ctMoePreset: the CT-MoE block as data (JSON round trip); Standard MoE has no topology', () => {
  const c = ctMoePreset(16, 8, 2);
  assert.deepEqual(c.topology, { routingBias: true, collaboration: true, routingScale: 1.5, collabScale: 1, sTemp: 1 });
  assert.deepEqual(
    [c.router.scoreFunc, c.router.routerBias, c.router.renormalize, c.router.kind],
    ['softmax', false, 'none', 'token-choice'],
  );
  assert.deepEqual([c.experts.kind, c.experts.intermediateSize, c.experts.bias, c.experts.orientation], ['gelu', 16, false, 'in-out']);
  assert.deepEqual([c.losses.lbWeight, c.losses.lbConvention, c.losses.zLossWeight, c.losses.scaleByNumLayers], [0.01, 'top-k', 0, true]);
  assert.equal(c.shared, null);
  assert.deepEqual(parseMoEConfig(JSON.parse(JSON.stringify(c))), c);
  assert.equal(ctMoePreset(16, 8, 2, { useTopology: false, useGraphRouting: false, useGraphCollab: false }).topology, null);
  assert.equal(ctMoePreset(16, 8, 2, { useGraphRouting: false, useGraphCollab: false }).topology, null, 'both paths off: no S');
  assert.deepEqual(ctMoePreset(16, 8, 3, { useGraphCollab: false }).topology?.collaboration, false);
  assert.throws(() => ctMoePreset(16, 8, 9), /ctMoe\.topK = 9/);
  const layer = new MoELayer(c);
  assert.deepEqual(
    layer
      .namedParameters()
      .map(([n]) => n)
      .filter((n) => n.startsWith('topology')),
    ['topology.sRaw'],
  );
  assert.equal(layer.topologyParameters()[0], layer.topology!.sRaw);
});

// ------------------------------------------------ 2. any router / bank + topology, plain-JS reference

interface RefCase {
  T: number;
  H: number;
  E: number;
  K: number;
  I: number;
  router: RefRouter;
  kind: 'swiglu' | 'gelu';
  /** 'output': y = Σ w·out'; 'input': out = expert(w·x), y = Σ out'. */
  weightsOn: 'output' | 'input';
  capacity: number | null;
  topo: { routingBias: boolean; collab: boolean; rs: number; cs: number; temp: number };
  lb: { w: number; c: number; normalize: boolean };
  zW: number;
  // parameters (out-in weights [E, out, in]; biases [E, out])
  x: Float64Array;
  wr: Float64Array;
  gate: Float64Array;
  up: Float64Array;
  down: Float64Array;
  upBias: Float64Array | null;
  downBias: Float64Array | null;
  sRaw: Float64Array;
}

/** The whole block with loss L = Σ y·G + lbW·lb + zW·z, in float64 loops from the spec. */
function refBlock(p: RefCase, G: Float64Array): { y: Float64Array; loss: number; lb: number; ids: number[][] } {
  const { T, H, E, K, I } = p;
  const S = refS(p.sRaw, E, p.topo.temp);
  const xs = rows(p.x, T, H);
  const logits = xs.map((xt) =>
    Float64Array.from({ length: E }, (_, e) => {
      let v = 0;
      for (let i = 0; i < H; i++) v += xt[i]! * p.wr[e * H + i]!;
      if (p.topo.routingBias) for (let i = 0; i < E; i++) v += p.topo.rs * S[i * E + e]!;
      return v;
    }),
  );
  const r = refRoute(logits, p.router);
  // slot drops: each expert keeps its first `capacity` slots in slot order
  const fill = new Array<number>(E).fill(0);
  const kept = r.ids.map((ids) => ids.map((e) => (p.capacity === null ? true : fill[e]!++ < p.capacity)));
  const lin = (v: ArrayLike<number>, w: Float64Array, e: number, out: number, inp: number, b: Float64Array | null) =>
    Float64Array.from({ length: out }, (_, o) => {
      let s = b ? b[e * out + o]! : 0;
      for (let i = 0; i < inp; i++) s += w[e * out * inp + o * inp + i]! * v[i]!;
      return s;
    });
  const expert = (e: number, v: ArrayLike<number>) => {
    const h =
      p.kind === 'gelu'
        ? lin(v, p.up, e, I, H, p.upBias).map(gelu)
        : (() => {
            const g = lin(v, p.gate, e, I, H, null);
            const u = lin(v, p.up, e, I, H, null);
            return g.map((gv, j) => silu(gv) * u[j]!);
          })();
    return lin(h, p.down, e, H, I, p.downBias);
  };
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    const ids = r.ids[t]!;
    const w = r.w[t]!;
    const out = ids.map((e, k) =>
      kept[t]![k] ? expert(e, p.weightsOn === 'input' ? xs[t]!.map((v) => v * w[k]!) : xs[t]!) : new Float64Array(H),
    );
    let mixed = out;
    if (p.topo.collab) {
      const sub = ids.map((a) => ids.map((b) => S[a * E + b]!));
      const norm = sub.map((row) => {
        const z = row.reduce((u, v) => u + v, 0) + 1e-9;
        return row.map((v) => v / z);
      });
      mixed = out.map((o, k) => Float64Array.from(o, (v, d) => v + p.topo.cs * norm[k]!.reduce((acc, s, j) => acc + s * out[j]![d]!, 0)));
    }
    for (let k = 0; k < K; k++) for (let d = 0; d < H; d++) y[t * H + d]! += (p.weightsOn === 'output' ? w[k]! : 1) * mixed[k]![d]!;
  }
  // LB: c·E·Σ f_e P_e, f from all selected slots, P = mean of (normalised) scores; z: mean lse²
  const f = new Float64Array(E);
  r.ids.flat().forEach((e) => (f[e]! += 1 / T));
  const P = new Float64Array(E);
  for (const s of r.scores) {
    const z = p.lb.normalize ? s.reduce((a, v) => a + v, 0) : 1;
    for (let e = 0; e < E; e++) P[e]! += s[e]! / z / T;
  }
  let lb = 0;
  for (let e = 0; e < E; e++) lb += f[e]! * P[e]!;
  lb *= p.lb.c * E;
  const zl =
    logits.reduce((a, l) => {
      const m = Math.max(...l);
      return a + (m + Math.log(l.reduce((u, v) => u + Math.exp(v - m), 0))) ** 2;
    }, 0) / T;
  const loss = y.reduce((a, v, i) => a + v * G[i]!, 0) + p.lb.w * lb + p.zW * zl;
  return { y, loss, lb, ids: r.ids };
}

interface Scenario {
  name: string;
  cfg: MoEConfigInput;
  ref: Omit<RefCase, 'x' | 'wr' | 'gate' | 'up' | 'down' | 'upBias' | 'downBias' | 'sRaw'>;
}

const T = 8;
const H = 4;
const E = 6;
const I = 3;
const SCENARIOS: Scenario[] = [
  {
    name: 'sigmoid, group-limited, renormalised, scaled router + SwiGLU bank, top-3, capacity, z-loss',
    cfg: {
      hiddenSize: H,
      router: {
        numExperts: E,
        topK: 3,
        scoreFunc: 'sigmoid',
        renormalize: 'sum',
        scalingFactor: 2.5,
        groupLimit: { numGroups: 3, topkGroups: 2, groupScore: 'max', maskValue: 'zero' },
      },
      experts: { kind: 'swiglu', intermediateSize: I },
      dispatch: { capacityFactor: 1, capacityMultiple: 1 },
      losses: { lbWeight: 0.2, zLossWeight: 0.05 },
      topology: { routingScale: 0.8, collabScale: 0.7, sTemp: 0.6 },
    },
    ref: {
      T,
      H,
      E,
      K: 3,
      I,
      kind: 'swiglu',
      weightsOn: 'output',
      capacity: 4,
      router: { E, K: 3, score: 'sigmoid', renorm: 'sum', scale: 2.5, group: { G: 3, keep: 2, score: 'max', mask: 'zero' } },
      topo: { routingBias: true, collab: true, rs: 0.8, cs: 0.7, temp: 0.6 },
      lb: { w: 0.2, c: 1 / 3, normalize: true },
      zW: 0.05,
    },
  },
  {
    name: 'logits-selected sigmoid (Llama-4 style), weights on the input + biased GELU bank, top-3, collaboration only',
    cfg: {
      hiddenSize: H,
      router: { numExperts: E, topK: 3, scoreFunc: 'sigmoid', selectOn: 'logits' },
      experts: { kind: 'gelu', intermediateSize: I, bias: true },
      dispatch: { weightsOn: 'input' },
      losses: { lbWeight: 0.3, lbConvention: 'top-k' },
      topology: { routingBias: false, collabScale: 1.4 },
    },
    ref: {
      T,
      H,
      E,
      K: 3,
      I,
      kind: 'gelu',
      weightsOn: 'input',
      capacity: null,
      router: { E, K: 3, score: 'sigmoid', selectOn: 'logits' },
      topo: { routingBias: false, collab: true, rs: 1.5, cs: 1.4, temp: 1 },
      lb: { w: 0.3, c: 1, normalize: true },
      zW: 0,
    },
  },
  {
    name: 'softmax router with renormalisation + SwiGLU fused layout, top-4, routing bias only',
    cfg: {
      hiddenSize: H,
      router: { numExperts: E, topK: 4, renormalize: 'sum' },
      experts: { kind: 'swiglu', intermediateSize: I, layout: 'fused' },
      losses: { lbWeight: 0.1 },
      topology: { collaboration: false, routingScale: 2 },
    },
    ref: {
      T,
      H,
      E,
      K: 4,
      I,
      kind: 'swiglu',
      weightsOn: 'output',
      capacity: null,
      router: { E, K: 4, score: 'softmax', renorm: 'sum' },
      topo: { routingBias: true, collab: false, rs: 2, cs: 1, temp: 1 },
      lb: { w: 0.1, c: 1 / 4, normalize: false },
      zW: 0,
    },
  },
];

for (const sc of SCENARIOS) {
  test(`topology on any router / bank: ${sc.name} = plain-JS reference (forward, gradients by central differences)`, () => {
    const layer = new MoELayer(moeConfig(sc.cfg), { dtype: 'f64', generator: new Generator(21) });
    const ex = layer.experts;
    setData(layer.routerWeight, uniformArray(E * H, 22, -1.2, 1.2));
    setData(layer.topology!.sRaw, uniformArray(E * E, 23, -1.5, 1.5));
    // the reference takes out-in weights; the fused layout puts gate then up in one [E, 2I, H]
    const fusedLayout = sc.cfg.experts.layout === 'fused';
    const gu = fusedLayout ? Float64Array.from(ex.gateUpProj!.dataSync()) : null;
    const half = (first: boolean) =>
      Float64Array.from({ length: E * I * H }, (_, q) => {
        const e = Math.floor(q / (I * H));
        return gu![e * 2 * I * H + (first ? 0 : I * H) + (q % (I * H))]!;
      });
    const p: RefCase = {
      ...sc.ref,
      x: uniformArray(T * H, 24, -1.5, 1.5),
      wr: Float64Array.from(layer.routerWeight.dataSync()),
      gate: fusedLayout ? half(true) : ex.gateProj ? Float64Array.from(ex.gateProj.dataSync()) : new Float64Array(0),
      up: fusedLayout ? half(false) : Float64Array.from(ex.upProj!.dataSync()),
      down: Float64Array.from(ex.downProj.dataSync()),
      upBias: ex.gateUpBias ? Float64Array.from(ex.gateUpBias.dataSync()) : null,
      downBias: ex.downBias ? Float64Array.from(ex.downBias.dataSync()) : null,
      sRaw: Float64Array.from(layer.topology!.sRaw.dataSync()),
    };
    const G = uniformArray(T * H, 25, -1, 1);
    const x = fromArray(p.x.slice(), [T, H]).requiresGrad_();
    const y = layer.forward(x);
    const ref = refBlock(p, G);
    assertClose(y.dataSync(), ref.y, 1e-12, 1e-10, 'y');
    assertClose([layer.lastMetrics!.lbLoss!], [ref.lb], 1e-13, 1e-11, 'lb');
    if (sc.ref.capacity !== null) assert.ok(layer.lastMetrics!.droppedFraction > 0, 'the capacity drops slots');
    sum(mul(y, fromArray(G, [T, H]))).backward();

    const check = (name: string, grad: Tensor | null, data: Float64Array) => {
      assert.ok(grad, `${name} got a gradient`);
      const fd = numericGrad(() => refBlock(p, G).loss, data);
      assertClose(grad.dataSync(), fd, 2e-7, 1e-6, `d${name}`);
      assert.ok(
        fd.some((v) => Math.abs(v) > 1e-6),
        `${name}: the loss depends on it`,
      );
    };
    check('x', x.grad, p.x);
    check('router', layer.routerWeight.grad, p.wr);
    check('sRaw', layer.topology!.sRaw.grad, p.sRaw);
    check('down', ex.downProj.grad, p.down);
    if (!fusedLayout) check('up', ex.upProj!.grad, p.up);
    if (ex.gateProj) check('gate', ex.gateProj.grad, p.gate);
    if (ex.gateUpBias) check('upBias', ex.gateUpBias.grad, p.upBias!);
  });
}

test('topology off: S_raw absent, the layer is what it was (same outputs as a config without the block)', () => {
  const base: MoEConfigInput = { hiddenSize: H, router: { numExperts: E, topK: 2 }, experts: { intermediateSize: I } };
  const a = new MoELayer(moeConfig(base), { dtype: 'f64', generator: new Generator(3) });
  const b = new MoELayer(moeConfig({ ...base, topology: null }), { dtype: 'f64', generator: new Generator(3) });
  assert.equal(a.topology, null);
  assert.deepEqual(a.topologyParameters(), []);
  const x = fromArray(uniformArray(T * H, 4, -1, 1), [T, H]);
  assert.deepEqual(Array.from(a.forward(x).dataSync()), Array.from(b.forward(x).dataSync()));
});

// ------------------------------------------------ 3. validation

test('topology config: validation names field, value and what is allowed; JSON round trip', () => {
  const base: MoEConfigInput = { hiddenSize: 8, router: { numExperts: 4, topK: 2 }, experts: { intermediateSize: 8 } };
  const full = moeConfig({ ...base, topology: {} });
  assert.deepEqual(full.topology, { routingBias: true, collaboration: true, routingScale: 1.5, collabScale: 1, sTemp: 1 });
  assert.equal(moeConfig(base).topology, null);
  assert.deepEqual(parseMoEConfig(JSON.parse(JSON.stringify(full))), full);
  const bad = (topology: unknown, re: RegExp, cfg: object = base) => {
    assert.throws(
      () => parseMoEConfig({ ...cfg, topology }),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
    );
  };
  bad({ sTemp: 0 }, /moe\.topology\.sTemp = 0 is invalid: expected a finite number in \(0, inf\)/);
  bad({ routingScale: Infinity }, /moe\.topology\.routingScale = Infinity/);
  bad({ collabScale: '1' }, /moe\.topology\.collabScale = '1'/);
  bad({ routingBias: 1 }, /moe\.topology\.routingBias = 1 is invalid: expected true or false/);
  bad({ routingBias: false, collaboration: false }, /moe\.topology\.collaboration = false .*use moe\.topology = null/);
  bad({ sTmp: 1 }, /moe\.topology\.sTmp .*no such field/);
  bad(true, /moe\.topology = true is invalid: expected an object/);
  bad({}, /moe\.topology .*null for router\.kind 'expert-choice'/, { ...base, router: { numExperts: 4, topK: 2, kind: 'expert-choice' } });
  bad({}, /moe\.router\.numExperts = 1 .*>= 2 when topology is set/, { ...base, router: { numExperts: 1, topK: 1 } });
});
