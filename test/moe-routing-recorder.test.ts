// RoutingRecorder and RoutingReplay on a two-layer MoE model, on every backend: the records are
// the layers' own routing (ids, weights, counts) with counts, entropy and imbalance checked
// against their definitions; the ring, `every` and `maxTokens` bound what is kept; a saved
// recording reads back equal; a replay forces the recorded experts on a model whose router has
// changed, and the replayed forward equals the recorded one bit for bit (in training too).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { add, mul, randn, sum } from '../src/index.js';
import { moeConfig, type MoEConfigInput } from '../src/moe/config.js';
import { MoELayer } from '../src/moe/layer.js';
import { RoutingRecorder, RoutingReplay, readRoutingRecording } from '../src/moe/routing/index.js';
import { Module } from '../src/nn/module.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { forEachBackend } from './helpers/gradcheck.js';

const dir = mkdtempSync(join(tmpdir(), 'moekit-routing-rec-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const H = 8;
const E = 6;
const K = 2;
const cfg: MoEConfigInput = {
  hiddenSize: H,
  router: { numExperts: E, topK: K, renormalize: 'sum', selectionBias: { gamma: 0.01, rule: 'sign' } },
  losses: { lbWeight: 0.01 },
  experts: { intermediateSize: 12 },
  shared: { intermediateSize: 4, gate: 'sigmoid' },
};

class TwoLayers extends Module {
  readonly blocks: MoELayer[];
  constructor(seed: number) {
    super();
    this.blocks = [
      new MoELayer(moeConfig(cfg), { generator: new Generator(seed) }),
      new MoELayer(moeConfig(cfg), { generator: new Generator(seed + 1) }),
    ];
  }
  forward(x: Tensor): Tensor {
    return this.blocks.reduce((h, l) => add(h, l.forward(h)), x);
  }
}

const input = (T: number, seed: number) => randn([T, H], { generator: new Generator(seed) });

forEachBackend('routing recorder', () => {
  test('records each layer forward: its ids, weights and counts; metrics by their definitions; the selection bias', () => {
    const model = new TwoLayers(1).eval();
    model.blocks[1]!.selectionBias!.load([0.5, 0, -0.5, 0, 0.25, 0]);
    const rec = new RoutingRecorder(model).attach();
    rec.step = 7;
    const x = input(10, 2);
    const seen: { ids: Int32Array; w: Float32Array; counts: Int32Array; dropped: number }[] = [];
    let h = x;
    for (const l of model.blocks) {
      const d = l.forwardWithRouting(h);
      seen.push({
        ids: Int32Array.from(d.routing.topkIds.dataSync()),
        w: Float32Array.from(d.routing.topkWeights.dataSync()),
        counts: Int32Array.from(d.routing.counts.dataSync()),
        dropped: d.droppedSlots,
      });
      h = add(h, d.y);
    }
    rec.detach();
    const records = rec.records();
    assert.deepEqual(
      records.map((r) => [r.layer, r.call, r.step, r.numTokens, r.tokensKept, r.topK, r.numExperts]),
      [
        ['blocks.0', 0, 7, 10, 10, K, E],
        ['blocks.1', 0, 7, 10, 10, K, E],
      ],
    );
    records.forEach((r, i) => {
      assert.deepEqual(r.ids, seen[i]!.ids);
      assert.deepEqual(r.weights, seen[i]!.w);
      assert.deepEqual(r.counts, seen[i]!.counts);
      assert.equal(r.droppedSlots, seen[i]!.dropped);
      const hist = new Array<number>(E).fill(0);
      r.ids.forEach((e) => hist[e]!++);
      assert.deepEqual(Array.from(r.counts), hist, 'counts = histogram of the ids');
      const total = 10 * K;
      const entropy = -hist.filter((c) => c > 0).reduce((s, c) => s + (c / total) * Math.log(c / total), 0);
      assert.ok(Math.abs(r.usageEntropy - entropy) < 1e-12);
      assert.equal(r.loadImbalance, Math.max(...hist) / (total / E));
      assert.equal(r.deadExperts, hist.filter((c) => c === 0).length);
      assert.ok(r.routerEntropy > 0 && r.routerEntropy <= Math.log(E) + 1e-9);
    });
    assert.deepEqual(records[1]!.bias, Float32Array.of(0.5, 0, -0.5, 0, 0.25, 0));
  });

  test('memory stays bounded: a ring of the latest records per layer, one forward in `every`, the first maxTokens tokens', () => {
    const model = new TwoLayers(3).eval();
    const rec = new RoutingRecorder(model, { capacity: 3, every: 2, maxTokens: 4 }).attach();
    for (let i = 0; i < 11; i++) model.forward(input(9, 10 + i));
    rec.detach();
    const rs = rec.records();
    assert.deepEqual(
      rs.map((r) => `${r.layer}@${r.call}`),
      ['blocks.0@6', 'blocks.0@8', 'blocks.0@10', 'blocks.1@6', 'blocks.1@8', 'blocks.1@10'],
    );
    for (const r of rs) {
      assert.equal(r.tokensKept, 4);
      assert.equal(r.ids.length, 4 * K);
      assert.equal(
        r.counts.reduce((a, c) => a + c, 0),
        9 * K,
        'counts cover every token',
      );
    }
    // a sampled record does not replay
    const replay = new RoutingReplay(
      model,
      rs.map((r) => ({ ...r, call: r.call / 2 - 3 })),
    ).attach();
    assert.throws(() => model.forward(input(9, 1)), /layer 'blocks\.0' forward 0: the record kept 4 of 9 tokens/);
    replay.detach();
    assert.throws(() => new RoutingRecorder(model, { capacity: 0 }), /capacity must be an integer >= 1 \(got 0\)/);
  });

  test('a saved recording reads back equal; replay forces the recorded experts and reproduces the recorded forward exactly', () => {
    const model = new TwoLayers(5).eval();
    const xs = [input(12, 20), input(7, 21)];
    const rec = new RoutingRecorder(model).attach();
    const recorded = xs.map((x) => Float32Array.from(model.forward(x).dataSync()));
    rec.detach();
    const path = rec.save(join(dir, 'run-a'));
    const back = readRoutingRecording(path);
    assert.deepEqual(back, rec.records());

    // change the routers: left alone, the model now routes (and computes) differently
    for (const l of model.blocks)
      l.routerWeight.storage = add(l.routerWeight, mul(randn(l.routerWeight.shape, { generator: new Generator(99) }), 0.5)).storage;
    const ids = (l: MoELayer, x: Tensor) => Array.from(l.forwardWithRouting(x).routing.topkIds.dataSync());
    const changed = xs.map((x) => Float32Array.from(model.forward(x).dataSync()));
    assert.notDeepEqual(changed[0], recorded[0], 'the perturbation changes the forward');
    assert.notDeepEqual(ids(model.blocks[0]!, xs[0]!), Array.from(back[0]!.ids), 'and the routing');

    const replay = new RoutingReplay(model, back).attach();
    const replayed = xs.map((x) => Float32Array.from(model.forward(x).dataSync()));
    replay.detach();
    assert.deepEqual(replayed, recorded);
    // the routing each layer used under replay is the recorded one
    const check = new RoutingReplay(model, back).attach();
    assert.deepEqual(ids(model.blocks[0]!, xs[0]!), Array.from(back[0]!.ids));
    check.detach();
    // more forwards than recorded, or another shape, fail naming the layer and the forward
    const r3 = new RoutingReplay(model, back).attach();
    assert.throws(
      () => model.forward(input(5, 1)),
      /layer 'blocks\.0' forward 0: recorded \[12 tokens, top-2\], this forward has \[5, top-2\]/,
    );
    r3.detach();
    const r4 = new RoutingReplay(model, back).attach();
    xs.forEach((x) => model.forward(x));
    assert.throws(() => model.forward(xs[0]!), /layer 'blocks\.0' forward 2: the recording holds 2 forwards of this layer/);
    r4.detach();
    assert.throws(
      () =>
        new RoutingReplay(
          new TwoLayers(1),
          back.map((r) => ({ ...r, layer: 'nope' })),
        ),
      /the recording has layer 'nope', the model's MoE layers are 'blocks\.0', 'blocks\.1'/,
    );
  });
  test('in training, a replayed forward gives the recorded output, and the last layer the same expert gradients', () => {
    const model = new TwoLayers(7).train();
    const x = input(10, 30);
    const expertGrads = () => model.blocks.map((l) => Float32Array.from(l.experts.downProj.grad!.dataSync()));
    const step = () => {
      model.zeroGrad();
      const y = model.forward(x);
      sum(mul(y, y)).backward();
      return Float32Array.from(y.dataSync());
    };
    const rec = new RoutingRecorder(model).attach();
    rec.step = 1;
    const y1 = step();
    rec.detach();
    const g1 = expertGrads();
    const replay = new RoutingReplay(model, rec.records()).attach();
    const y2 = step();
    replay.detach();
    assert.deepEqual(y2, y1);
    const g2 = expertGrads();
    // the last layer's experts see the same inputs and output gradients; the first layer's do not,
    // by design: the replayed combine weights are constants, so no gradient flows through the
    // last layer's router back into its input
    assert.deepEqual(g2[1], g1[1]);
    assert.notDeepEqual(g2[0], g1[0]);
    assert.ok(
      model.blocks.every((l) => l.routerWeight.grad !== null),
      'the router still gets a gradient (from the aux losses)',
    );
    assert.deepEqual(
      rec.records().map((r) => r.step),
      [1, 1],
    );
  });
});
