// The MoE block end to end: matches a dense plain-JS reference, aux losses reach the router
// weight through the output, shared-expert mixes, metrics, selection-bias update.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sum } from '../src/index.js';
import { moeConfig, type MoEConfigInput } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose, randF64 } from './helpers/gradcheck.js';
import { refRoute, rows, sigmoid, silu, softmaxRow } from './helpers/moe-reference.js';
import { forEachBackend } from './helpers/gradcheck.js';

const H = 4;
const I = 3;
const E = 4;
const K = 2;
const T = 6;

/** SwiGLU of expert e on x with [E, out, in] separate weights. */
function swiglu(
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
  down: ArrayLike<number>,
  e: number,
  x: ArrayLike<number>,
  Iw: number,
): Float64Array {
  const h = new Float64Array(Iw);
  for (let j = 0; j < Iw; j++) {
    let g = 0;
    let u = 0;
    for (let i = 0; i < H; i++) {
      g += gate[e * Iw * H + j * H + i]! * x[i]!;
      u += up[e * Iw * H + j * H + i]! * x[i]!;
    }
    h[j] = silu(g) * u;
  }
  return Float64Array.from({ length: H }, (_, o) => h.reduce((s, v, j) => s + down[e * H * Iw + o * Iw + j]! * v, 0));
}

const base: MoEConfigInput = {
  hiddenSize: H,
  router: { numExperts: E, topK: K, renormalize: 'sum' },
  experts: { intermediateSize: I },
  shared: { intermediateSize: 5, gate: 'sigmoid' },
  losses: { lbWeight: 0.1, zLossWeight: 0.01, scaleByNumLayers: true },
};

forEachBackend('moe layer', () => {
  test('forward = dense reference (routed + sigmoid-gated shared expert)', () => {
    const layer = new MoELayer(moeConfig(base), { dtype: 'f64', generator: new Generator(3) }).eval();
    const x = randF64([2, 3, H], 5);
    const y = layer.forward(x);
    assert.deepEqual(y.shape, [2, 3, H]);
    const xs = rows(x.dataSync(), T, H);
    const wr = layer.routerWeight.dataSync();
    const logits = xs.map((xt) => Float64Array.from({ length: E }, (_, e) => xt.reduce((s, v, i) => s + v * wr[e * H + i]!, 0)));
    const r = refRoute(logits, { E, K, score: 'softmax', renorm: 'sum' });
    const ex = layer.experts;
    const sh = layer.sharedExpert!;
    const sg = layer.sharedGate!.dataSync();
    const expected = xs.flatMap((xt, t) => {
      const out = new Float64Array(H);
      r.ids[t]!.forEach((e, k) =>
        swiglu(ex.gateProj!.dataSync(), ex.upProj!.dataSync(), ex.downProj.dataSync(), e, xt, I).forEach(
          (v, o) => (out[o]! += r.w[t]![k]! * v),
        ),
      );
      const gate = sigmoid(xt.reduce((s, v, i) => s + v * sg[i]!, 0));
      swiglu(sh.gateProj!.dataSync(), sh.upProj!.dataSync(), sh.downProj.dataSync(), 0, xt, 5).forEach((v, o) => (out[o]! += gate * v));
      return Array.from(out);
    });
    assertClose(y.dataSync(), expected, 1e-12, 1e-10);
    assert.equal(layer.lastMetrics!.lbLoss, null, 'no aux losses in eval');
  });

  test('OLMo shared mix: shared/(K+1) + routed·K/(K+1)', () => {
    const mk = (mix: 'add' | 'olmo') =>
      new MoELayer(moeConfig({ ...base, shared: { intermediateSize: 5, mix } }), { dtype: 'f64', generator: new Generator(4) }).eval();
    const x = randF64([T, H], 6);
    const noShared = new MoELayer(moeConfig({ ...base, shared: null }), { dtype: 'f64', generator: new Generator(4) }).eval();
    const routed = noShared.forward(x).dataSync();
    const add = mk('add').forward(x).dataSync();
    const olmo = mk('olmo').forward(x).dataSync();
    // same seed -> same router and routed experts; shared = add - routed
    assertClose(
      olmo,
      Array.from(routed, (v, i) => (add[i]! - v) / (K + 1) + (v * K) / (K + 1)),
      1e-12,
      1e-10,
    );
  });

  test('aux losses reach the router weight through the output; values / numLayers; metrics', () => {
    const layer = new MoELayer(moeConfig({ ...base, shared: null }), { dtype: 'f64', generator: new Generator(8), numLayers: 2 });
    const x = randF64([T, H], 9);
    const y = layer.forward(x);
    const m = layer.lastMetrics!;
    // unscaled values from the reference
    const xs = rows(x.dataSync(), T, H);
    const wr = layer.routerWeight.dataSync();
    const logits = xs.map((xt) => Float64Array.from({ length: E }, (_, e) => xt.reduce((s, v, i) => s + v * wr[e * H + i]!, 0)));
    const r = refRoute(logits, { E, K, score: 'softmax', renorm: 'sum' });
    const counts = new Array(E).fill(0);
    r.ids.flat().forEach((e) => counts[e]++);
    let lb = 0;
    for (let e = 0; e < E; e++) lb += (counts[e] / T) * (logits.reduce((s, l) => s + softmaxRow(l)[e]!, 0) / T);
    lb *= E / K;
    const z = logits.reduce((s, l) => s + Math.log(l.reduce((p, v) => p + Math.exp(v), 0)) ** 2, 0) / T;
    assertClose([m.lbLoss!, m.zLoss!, m.lbLossScaled!, m.zLossScaled!], [lb, z, (lb * 0.1) / 2, (z * 0.01) / 2], 1e-12, 1e-10);
    assert.deepEqual(Array.from(m.tokensPerExpert), counts);
    assert.equal(m.loadImbalance, Math.max(...counts) / ((T * K) / E));
    assert.equal(m.deadExperts, counts.filter((c) => c === 0).length);
    assert.equal(m.droppedFraction, 0);
    // gradient of the router weight with and without the attached loss differs by d(aux)/dW
    sum(y).backward();
    const withAux = Float64Array.from(layer.routerWeight.grad!.dataSync());
    layer.zeroGrad();
    const evalLayer = layer.eval();
    sum(evalLayer.forward(x)).backward();
    const without = layer.routerWeight.grad!.dataSync();
    assert.ok(
      withAux.some((v, i) => Math.abs(v - without[i]!) > 1e-9),
      'aux loss changed the router gradient',
    );
  });

  test('selection bias accumulates in training and updates at postBatch', () => {
    const layer = new MoELayer(
      moeConfig({
        ...base,
        shared: null,
        router: { numExperts: E, topK: K, scoreFunc: 'sigmoid', selectionBias: { gamma: 0.5, rule: 'sign' } },
      }),
      { generator: new Generator(1) },
    );
    layer.forward(randF64([T, H], 2).to('f32'));
    const c = Array.from(layer.lastMetrics!.tokensPerExpert);
    layer.forward(randF64([T, H], 3).to('f32'));
    const c2 = Array.from(layer.lastMetrics!.tokensPerExpert);
    const tot = c.map((v, e) => v + c2[e]!);
    const mean = tot.reduce((p, v) => p + v, 0) / E;
    layer.postBatch();
    assert.deepEqual(
      Array.from(layer.buffer('scoreBias').dataSync()),
      tot.map((v) => 0.5 * Math.sign(mean - v)),
    );
  });
});
