// Sort-based dispatch + expert banks + combine against the dense "every expert on every token,
// masked" reference in plain JS (outputs), and against finite differences of that reference
// (gradients w.r.t. the input, the routing weights and every expert weight), in float64.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray, tensor, type Tensor } from '../src/index.js';
import { parseDispatchConfig, parseExpertConfig, type ExpertConfig } from '../src/moe/config.js';
import { LocalDispatcher, expertCapacity, planSlots } from '../src/moe/dispatch.js';
import { runExperts, type ExpertWeights } from '../src/moe/experts.js';
import { assertClose, randF64 } from './helpers/gradcheck.js';
import { gelu, sigmoid, silu } from './helpers/moe-reference.js';
import { forEachBackend } from './helpers/gradcheck.js';

const T = 5;
const H = 4;
const I = 3;
const E = 4;
const K = 2;
// expert 3 gets no token: an empty segment
const IDS = [0, 2, 1, 0, 2, 1, 0, 1, 2, 0];

type Params = Record<string, Float64Array>;

/** W[e] applied to v: orientation decides how the stacked array is read. */
function apply(w: Float64Array, e: number, out: number, inp: number, v: ArrayLike<number>, outIn: boolean): Float64Array {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < inp; i++) s += (outIn ? w[e * out * inp + o * inp + i]! : w[e * inp * out + i * out + o]!) * v[i]!;
    y[o] = s;
  }
  return y;
}

/** One expert on one token, written from the spec of each bank. */
function refExpert(p: Params, cfg: ExpertConfig, e: number, x: ArrayLike<number>): Float64Array {
  const oi = cfg.orientation === 'out-in';
  const addBias = (v: Float64Array, b: Float64Array | undefined) => (b ? v.map((z, j) => z + b[e * v.length + j]!) : v);
  let h: Float64Array;
  if (cfg.kind === 'gelu') {
    h = addBias(apply(p['upProj']!, e, I, H, x, oi), p['gateUpBias']).map(gelu);
  } else {
    let gate: Float64Array;
    let up: Float64Array;
    if (cfg.layout === 'separate') {
      gate = apply(p['gateProj']!, e, I, H, x, oi);
      up = apply(p['upProj']!, e, I, H, x, oi);
    } else {
      const gu = addBias(apply(p['gateUpProj']!, e, 2 * I, H, x, oi), p['gateUpBias']);
      gate = cfg.layout === 'fused' ? gu.slice(0, I) : gu.filter((_, j) => j % 2 === 0);
      up = cfg.layout === 'fused' ? gu.slice(I) : gu.filter((_, j) => j % 2 === 1);
    }
    if (cfg.kind === 'swiglu') h = gate.map((g, j) => silu(g) * up[j]!);
    else {
      const L = cfg.swigluLimit;
      h = gate.map((g0, j) => {
        const g = Math.min(g0, L);
        const u = Math.min(Math.max(up[j]!, -L), L);
        return (u + 1) * g * sigmoid(cfg.swigluAlpha * g);
      });
    }
  }
  return addBias(apply(p['downProj']!, e, H, I, h, oi), p['downBias']);
}

/** Dense reference: every expert on every token, masked by the routing (dropped slots excluded). */
function refMoE(p: Params, cfg: ExpertConfig, weightsOnInput: boolean, dropped: Set<number> = new Set()): Float64Array {
  const x = p['x']!;
  const w = p['w']!;
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    const xt = x.slice(t * H, (t + 1) * H);
    for (let e = 0; e < E; e++) {
      const all = refExpert(p, cfg, e, xt);
      for (let k = 0; k < K; k++) {
        const s = t * K + k;
        if (IDS[s] !== e || dropped.has(s)) continue;
        const out = weightsOnInput
          ? refExpert(
              p,
              cfg,
              e,
              xt.map((v) => v * w[s]!),
            )
          : all.map((v) => v * w[s]!);
        for (let j = 0; j < H; j++) y[t * H + j]! += out[j]!;
      }
    }
  }
  return y;
}

function shapes(cfg: ExpertConfig): Record<string, number[]> {
  const m = (out: number, inp: number) => (cfg.orientation === 'out-in' ? [E, out, inp] : [E, inp, out]);
  const s: Record<string, number[]> = { x: [T, H], w: [T, K], downProj: m(H, I) };
  if (cfg.kind === 'gelu') s['upProj'] = m(I, H);
  else if (cfg.layout === 'separate') Object.assign(s, { gateProj: m(I, H), upProj: m(I, H) });
  else s['gateUpProj'] = m(2 * I, H);
  if (cfg.bias) Object.assign(s, { gateUpBias: [E, cfg.kind === 'gelu' ? I : 2 * I], downBias: [E, H] });
  return s;
}

function runCase(cfg: ExpertConfig, weightsOn: 'output' | 'input', capacityFactor: number | null = null, dropped: number[] = []): void {
  const shp = shapes(cfg);
  const ts: Record<string, Tensor> = {};
  Object.entries(shp).forEach(([name, s], i) => (ts[name] = randF64(s, 100 + i, -1, 1).requiresGrad_()));
  const disp = new LocalDispatcher(E, parseDispatchConfig({ weightsOn, capacityFactor, capacityMultiple: 1 }));
  const ids = tensor(IDS, { dtype: 'i32', shape: [T, K] });
  const d = disp.dispatch(ts['x']!, { topkIds: ids, topkWeights: ts['w']! });
  assert.deepEqual(Array.from(d.meta.droppedSlots), dropped);
  const y = disp.combine(runExperts(d.rows, d.exec, ts as unknown as ExpertWeights, cfg), d.meta);

  const p: Params = Object.fromEntries(Object.entries(ts).map(([n, t]) => [n, Float64Array.from(t.dataSync())]));
  const drop = new Set(dropped);
  const yRef = refMoE(p, cfg, weightsOn === 'input', drop);
  assertClose(y.dataSync(), yRef, 1e-12, 1e-10, 'output');

  const cot = randF64([T, H], 7);
  y.backward(cot);
  const c = cot.dataSync();
  const scalar = () => refMoE(p, cfg, weightsOn === 'input', drop).reduce((s, v, i) => s + v * c[i]!, 0);
  for (const [name, arr] of Object.entries(p)) {
    const numeric = Float64Array.from(arr, (_, i) => {
      const orig = arr[i]!;
      arr[i] = orig + 1e-6;
      const up = scalar();
      arr[i] = orig - 1e-6;
      const down = scalar();
      arr[i] = orig;
      return (up - down) / 2e-6;
    });
    const g = ts[name]!.grad;
    assert.ok(g, `${name} got no gradient`);
    assertClose(g.dataSync(), numeric, 1e-7, 1e-6, `d/d ${name}`);
  }
}

forEachBackend('moe dispatch + experts', () => {
  test('OLMo-core capacity: multiple·ceil(int(cf·K·T/E)/multiple)', () => {
    assert.equal(expertCapacity(1, 2, 10, 4), 8); // int(5) = 5 -> 8
    assert.equal(expertCapacity(1.25, 1, 20, 2), 16); // int(12.5) = 12 -> 16
    assert.equal(expertCapacity(0.1, 1, 10, 4), 0); // int(0.25) = 0 -> 0
    assert.equal(expertCapacity(1, 1, 6, 3, 1), 2);
    assert.equal(expertCapacity(1.2, 8, 64, 64, 8), 16); // int(9.6) = 9 -> 16
  });

  test('stable sort of slots and capacity drops in slot order (hand-computed)', () => {
    // T=6, K=2, E=3, cf=1, multiple 1 -> capacity int(1·2·6/3) = 4
    const ids = [0, 1, 0, 2, 0, 1, 0, 1, 0, 2, 1, 0];
    const plan = planSlots(ids, 3, expertCapacity(1, 2, 6, 3, 1));
    assert.deepEqual(Array.from(plan.sortedSlots), [0, 2, 4, 6, 1, 5, 7, 10, 3, 9]);
    assert.deepEqual(Array.from(plan.segOffsets), [0, 4, 8, 10]);
    assert.deepEqual(Array.from(plan.droppedSlots), [8, 11]);
    const dropless = planSlots(ids, 3, null);
    assert.deepEqual(Array.from(dropless.sortedSlots), [0, 2, 4, 6, 8, 11, 1, 5, 7, 10, 3, 9]);
    assert.deepEqual(Array.from(dropless.droppedSlots), []);
  });

  test('dispatch metadata: rows, tokens, experts, weights', () => {
    const x = fromArray(
      Float64Array.from({ length: T * H }, (_, i) => i),
      [T, H],
    );
    const w = fromArray(
      Float64Array.from({ length: T * K }, (_, i) => i / 10),
      [T, K],
    );
    const d = new LocalDispatcher(E, parseDispatchConfig({})).dispatch(x, {
      topkIds: tensor(IDS, { dtype: 'i32', shape: [T, K] }),
      topkWeights: w,
    });
    assert.deepEqual(Array.from(d.meta.sortedSlots.dataSync()), [0, 3, 6, 9, 2, 5, 7, 1, 4, 8]);
    assert.deepEqual(Array.from(d.meta.rowTokens.dataSync()), [0, 1, 3, 4, 1, 2, 3, 0, 2, 4]);
    assert.deepEqual(Array.from(d.exec.rowExperts.dataSync()), [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    assert.deepEqual(Array.from(d.exec.segOffsets), [0, 4, 7, 10, 10]);
    assertClose(d.meta.rowWeights.dataSync(), [0, 0.3, 0.6, 0.9, 0.2, 0.5, 0.7, 0.1, 0.4, 0.8], 1e-15, 0);
    assert.deepEqual(Array.from(d.rows.dataSync()).slice(4, 8), [4, 5, 6, 7]);
  });

  const banks: [string, Record<string, unknown>][] = [
    ['SwiGLU separate gate/up', { kind: 'swiglu', layout: 'separate' }],
    ['SwiGLU fused [E,2I,H]', { kind: 'swiglu', layout: 'fused' }],
    ['SwiGLU interleaved, [E,in,out]', { kind: 'swiglu', layout: 'interleaved', orientation: 'in-out' }],
    ['GELU MLP (CT-MoE), [E,in,out]', { kind: 'gelu', orientation: 'in-out' }],
    ['GPT-OSS clamped SwiGLU with biases', { kind: 'gpt-oss', swigluLimit: 0.6 }],
  ];
  for (const [name, c] of banks) {
    test(`round trip = dense reference, outputs and gradients: ${name}`, () => {
      runCase(parseExpertConfig({ intermediateSize: I, ...c }), 'output');
    });
  }

  test('weights on the expert input (Llama-4)', () => {
    runCase(parseExpertConfig({ intermediateSize: I, kind: 'swiglu', layout: 'fused', orientation: 'in-out' }), 'input');
  });

  test('capacity: dropped slots contribute nothing (outputs and gradients)', () => {
    // cf 0.5, multiple 1: int(0.5·2·5/4) = 1 slot per expert -> keep slots 0 (e0), 2 (e1), 1 (e2)
    runCase(parseExpertConfig({ intermediateSize: I }), 'output', 0.5, [3, 4, 5, 6, 7, 8, 9]);
  });
});
