// Expert surgery: sparse upcycling reproduces the dense MLP exactly at init; pruning keeps the
// most-routed experts (and their outputs); merging averages experts by usage within groups of
// similar router rows.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray } from '../src/index.js';
import { moeConfig } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { route } from '../src/moe/router.js';
import { collectRoutingStats, type RoutingStats } from '../src/moe/surgery/routing-stats.js';
import { mergeExperts, pruneExperts } from '../src/moe/surgery/prune-merge.js';
import { upcycle } from '../src/moe/surgery/upcycle.js';
import { Generator } from '../src/tensor/random.js';
import { assertClose, randF64 } from './helpers/gradcheck.js';
import { silu } from './helpers/moe-reference.js';

const H = 6;
const I = 5;

function dense(seed: number) {
  const g = new Generator(seed);
  const a = (n: number) => Float64Array.from({ length: n }, () => g.uniform() * 2 - 1);
  return { gate: a(I * H), up: a(I * H), down: a(H * I), hiddenSize: H, intermediateSize: I };
}

/** down · (silu(gate · x) ⊙ (up · x)) per token. */
function denseForward(d: ReturnType<typeof dense>, x: ArrayLike<number>, T: number): Float64Array {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    const a = Array.from({ length: I }, (_, j) => {
      let g = 0;
      let u = 0;
      for (let h = 0; h < H; h++) {
        g += d.gate[j * H + h]! * x[t * H + h]!;
        u += d.up[j * H + h]! * x[t * H + h]!;
      }
      return silu(g) * u;
    });
    for (let o = 0; o < H; o++) y[t * H + o] = a.reduce((s, v, j) => s + d.down[o * I + j]! * v, 0);
  }
  return y;
}

test('upcycle: with noise 0 the block is the dense MLP exactly, for any router; the router is N(0, 0.02²)', () => {
  const d = dense(1);
  const x = randF64([7, H], 2);
  const want = denseForward(d, x.dataSync(), 7);
  for (const layout of ['separate', 'fused'] as const) {
    const layer = upcycle(d, { experts: 4, topK: 2, dtype: 'f64', generator: new Generator(3), moe: { experts: { layout } } }).eval();
    assert.equal(layer.cfg.experts.layout, layout);
    assertClose(layer.forward(x).dataSync(), want, 1e-12, 1e-10, `layout ${layout}`);
  }
  // without renormalisation the dense output is scaled by the top-k probability mass
  const none = upcycle(d, { experts: 4, topK: 2, dtype: 'f64', router: { renormalize: 'none' }, generator: new Generator(3) }).eval();
  const r = route(x, none.routerWeight, null, none.cfg.router);
  const mass = Array.from({ length: 7 }, (_, t) => r.topkWeights.dataSync()[2 * t]! + r.topkWeights.dataSync()[2 * t + 1]!);
  assertClose(
    none.forward(x).dataSync(),
    Array.from(want, (v, i) => v * mass[Math.floor(i / H)]!),
    1e-12,
    1e-10,
    'unnormalised',
  );
  const big = upcycle({ ...dense(4), hiddenSize: H }, { experts: 600, topK: 2, generator: new Generator(5) });
  const w = Array.from(big.routerWeight.dataSync());
  const mean = w.reduce((s, v) => s + v, 0) / w.length;
  const std = Math.sqrt(w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length);
  assert.ok(Math.abs(mean) < 0.002 && Math.abs(std - 0.02) < 0.001, `router mean ${mean}, std ${std}`);
});

test('upcycle noise: each copy deviates by noise · rms(W), and the copies differ', () => {
  const d = dense(6);
  const layer = upcycle(d, { experts: 3, topK: 1, noise: 0.1, dtype: 'f64', generator: new Generator(7) });
  const gate = layer.experts.gateProj!.dataSync(); // [E, I, H]
  const rms = Math.sqrt(Array.from(d.gate).reduce((s, v) => s + v * v, 0) / d.gate.length);
  let diffAll = 0;
  for (let e = 0; e < 3; e++) {
    let ss = 0;
    for (let i = 0; i < I * H; i++) ss += (gate[e * I * H + i]! - d.gate[i]!) ** 2;
    diffAll += ss;
  }
  const rel = Math.sqrt(diffAll / (3 * I * H)) / rms;
  assert.ok(rel > 0.07 && rel < 0.13, `relative deviation ${rel}`);
  assert.notEqual(gate[0], gate[I * H]);
  assert.throws(
    () => upcycle({ ...d, up: d.up.subarray(1) }, { experts: 2, topK: 1 }),
    /dense\.up = '29 values' is invalid: expected 30 values/,
  );
});

function layerOf(E: number, seed: number): MoELayer {
  const cfg = moeConfig({ hiddenSize: H, router: { numExperts: E, topK: 2, renormalize: 'sum' }, experts: { intermediateSize: I } });
  const layer = new MoELayer(cfg, { dtype: 'f64', generator: new Generator(seed) });
  layer.loadStateDict(new Map([['routerWeight', randF64([E, H], seed + 1, -1, 1)]]), { strict: false });
  return layer.eval();
}

test('pruneExperts keeps the most-routed experts; tokens routed only to kept experts keep their output', () => {
  const layer = layerOf(6, 10);
  const x = randF64([40, H], 11);
  const stats = collectRoutingStats(layer, [x]);
  const ids = Array.from(route(x, layer.routerWeight, null, layer.cfg.router).topkIds.dataSync());
  const counts = Array.from({ length: 6 }, (_, e) => ids.filter((i) => i === e).length);
  assert.deepEqual(Array.from(stats.counts), counts);
  assert.equal(stats.tokens, 40);
  const { layer: pruned, kept } = pruneExperts(layer, stats, { keep: 4 });
  const order = [0, 1, 2, 3, 4, 5].sort((a, b) => counts[b]! - counts[a]! || a - b);
  assert.deepEqual(
    kept,
    order.slice(0, 4).sort((a, b) => a - b),
  );
  assert.equal(pruned.cfg.router.numExperts, 4);
  const row = I * H;
  const oldGate = layer.experts.gateProj!.dataSync();
  const newGate = pruned.experts.gateProj!.dataSync();
  kept.forEach((e, i) =>
    assert.deepEqual(Array.from(newGate.subarray(i * row, (i + 1) * row)), Array.from(oldGate.subarray(e * row, (e + 1) * row))),
  );
  const y0 = layer.forward(x).dataSync();
  const y1 = pruned.eval().forward(x).dataSync();
  let checked = 0;
  for (let t = 0; t < 40; t++) {
    if (!kept.includes(ids[2 * t]!) || !kept.includes(ids[2 * t + 1]!)) continue;
    assertClose(y1.subarray(t * H, (t + 1) * H), y0.subarray(t * H, (t + 1) * H), 1e-12, 1e-10, `token ${t}`);
    checked++;
  }
  assert.ok(checked > 5, `${checked} tokens checked`);
  assert.throws(() => pruneExperts(layer, stats, { keep: 7 }), /keep = 7 is invalid: expected an integer in \[1, 6\]/);
});

test('mergeExperts: centroids are the most used, members join the most similar router row, weights averaged by usage', () => {
  const layer = layerOf(4, 20);
  // router rows: expert 3 points like expert 0, expert 1 like expert 2
  const W = randF64([4, H], 21).dataSync();
  const rows = Float64Array.from(W);
  for (let h = 0; h < H; h++) {
    rows[3 * H + h] = W[0 * H + h]! * 2 + 0.01;
    rows[1 * H + h] = W[2 * H + h]! * 0.5 - 0.01;
  }
  layer.loadStateDict(new Map([['routerWeight', fromArray(rows, [4, H])]]), { strict: false });
  const stats: RoutingStats = { counts: Float64Array.from([5, 1, 3, 0]), weightSums: new Float64Array(4), tokens: 9 };
  const { layer: merged, groups } = mergeExperts(layer, stats, { into: 2 });
  assert.deepEqual(groups, [
    [0, 3],
    [1, 2],
  ]);
  const row = I * H;
  const old = layer.experts.downProj.dataSync();
  const got = merged.experts.downProj.dataSync();
  assertClose(got.subarray(0, row), old.subarray(0, row), 0, 0, 'group {0, 3}: expert 3 unused');
  assertClose(
    got.subarray(row, 2 * row),
    Array.from({ length: row }, (_, i) => (1 * old[row + i]! + 3 * old[2 * row + i]!) / 4),
    1e-15,
    1e-14,
    'group {1, 2}',
  );
  const R = merged.routerWeight.dataSync();
  assert.deepEqual(Array.from(R.subarray(0, H)), Array.from(rows.subarray(0, H)));
  assert.deepEqual(Array.from(R.subarray(H, 2 * H)), Array.from(rows.subarray(2 * H, 3 * H)));
  const grouped = moeConfig({
    hiddenSize: H,
    router: { numExperts: 4, topK: 1, groupLimit: { numGroups: 2, topkGroups: 1, groupScore: 'max', maskValue: 'zero' } },
    experts: { intermediateSize: I },
  });
  assert.throws(
    () => mergeExperts(new MoELayer(grouped), stats, { into: 2 }),
    /router\.groupLimit = .* is invalid: expected null to merge experts/,
  );
});
