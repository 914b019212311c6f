// TP and EP MoE blocks across processes equal the single-process MoELayer on the same weights
// and tokens (outputs, input and parameter gradients, expert counts, capacity drops). The
// checks run inside the ranks (test/helpers/dist/parity-worker.ts); here we start them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Communicator } from '../src/dist/communicator.js';
import { buildMlpOrMoe, buildMoeBlock } from '../src/dist/builders.js';
import { TensorParallelMoeBlock } from '../src/dist/tp-block.js';
import { Module } from '../src/nn/module.js';
import { MoELayer } from '../src/moe/layer.js';
import { parseMoEConfig } from '../src/moe/config.js';
import { Generator } from '../src/tensor/random.js';
import { randn } from '../src/ops/creation.js';
import { mpiSkipReason, passLines, runMpi } from './helpers/dist/mpirun.js';

const skip = mpiSkipReason();
const CASES = [
  'softmax-top2',
  'sigmoid-group-limited-bias',
  'capacity-drops',
  'shared-experts',
  'ct-moe-topology',
  'one-token',
  'expert-without-tokens',
];

for (const np of [1, 2, 4]) {
  // np 1: 'tp' on one rank is the naive block
  test(`tp and ep blocks equal the single-process layer at np ${np} (uneven shards, empty ranks, drops, shared experts, CT-MoE topology)`, {
    skip,
  }, () => {
    const run = runMpi(np, 'parity-worker.ts');
    assert.equal(run.timedOut, false, 'mpirun timed out');
    assert.equal(run.status, 0, run.stderr);
    const want = CASES.flatMap((c) => ['tp', 'ep'].flatMap((k) => Array.from({ length: np }, (_, r) => `PASS ${c} ${k} rank ${r}`))).sort();
    assert.deepEqual(passLines(run), want);
  });
}

test("tp and ep blocks at np 2 on the reference backend: the parallel plan's local experts are the composition there, and they equal the single-process layer (drops, CT-MoE topology, a rank with no tokens)", {
  skip,
}, () => {
  const cases = ['capacity-drops', 'ct-moe-topology', 'one-token'];
  const run = runMpi(2, 'parity-worker.ts', [cases.join(','), '--backend=reference']);
  assert.equal(run.timedOut, false, 'mpirun timed out');
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(passLines(run), cases.flatMap((c) => ['tp', 'ep'].flatMap((k) => [0, 1].map((r) => `PASS ${c} ${k} rank ${r}`))).sort());
});

test('tp and ep blocks equal the single-process layer at np 2 under MPICH (mpiexec.mpich)', { skip: mpiSkipReason('mpich') }, () => {
  const run = runMpi(2, 'parity-worker.ts', [], 120_000, 'mpich');
  assert.equal(run.timedOut, false, 'mpiexec timed out');
  assert.equal(run.status, 0, run.stderr);
  const want = CASES.flatMap((c) => ['tp', 'ep'].flatMap((k) => [0, 1].map((r) => `PASS ${c} ${k} rank ${r}`))).sort();
  assert.deepEqual(passLines(run), want);
});

test('the routing recorder over EP and TP blocks at np 2 records what one process records on the same global batch (ids, counts, drops exact; weights, entropies, selection bias)', {
  skip,
}, () => {
  const run = runMpi(2, 'routing-worker.ts');
  assert.equal(run.timedOut, false, 'mpirun timed out');
  assert.equal(run.status, 0, run.stderr);
  const want = ['capacity-drops', 'sigmoid-selection-bias']
    .flatMap((c) => ['ep', 'tp'].flatMap((k) => [0, 1].map((r) => `PASS ${c} ${k} rank ${r}`)))
    .sort();
  assert.deepEqual(passLines(run), want);
});

for (const init of ['olmo-core', 'ct-moe'] as const) {
  test(`expertShard (${init} init): the shards' experts together are the whole layer's at the same seed, the generator ends where the whole layer's does, a sharded layer refuses to run alone, a shard of all experts runs as the whole layer`, () => {
    const cfg = parseMoEConfig({
      hiddenSize: 8,
      router: { numExperts: 6, topK: 2 },
      experts: { intermediateSize: 5, bias: true, layout: 'fused' },
    });
    const gen = new Generator(5);
    const whole = new MoELayer(cfg, { generator: gen, init });
    const after = gen.uniform();
    for (const [first, count] of [
      [0, 2],
      [2, 2],
      [4, 2],
      [1, 4],
      [0, 6],
    ]) {
      const g = new Generator(5);
      const part = new MoELayer(cfg, { generator: g, init, expertShard: { first: first!, count: count! } });
      assert.equal(g.uniform(), after, 'the draws after the layer');
      assert.equal(part.experts.numExperts, count);
      const parts = new Map(part.experts.namedParameters());
      for (const [name, p] of whole.experts.namedParameters()) {
        const per = p.size / 6;
        assert.deepEqual(
          parts.get(name)!.dataSync(),
          p.dataSync().slice(first! * per, (first! + count!) * per),
          `${name} of experts [${first}, ${first! + count!})`,
        );
      }
      assert.deepEqual(part.routerWeight.dataSync(), whole.routerWeight.dataSync());
      // a shard of every expert is the whole layer (the naive block runs it on its own plan)
      if (count === 6)
        assert.deepEqual(
          part
            .eval()
            .forward(randn([3, 8], { generator: new Generator(1) }))
            .dataSync(),
          whole
            .eval()
            .forward(randn([3, 8], { generator: new Generator(1) }))
            .dataSync(),
        );
      else
        assert.throws(
          () => part.forward(randn([3, 8])),
          /^Error: MoELayer: this layer holds experts \[\d, \d\) of 6 only \(expertShard\); run it inside an expert- or tensor-parallel block \(src\/dist\)$/,
        );
    }
    assert.throws(
      () => new MoELayer(cfg, { expertShard: { first: 5, count: 2 } }),
      /ExpertBank: shard experts \[5, 7\) must lie inside the 6 experts of the whole bank/,
    );
  });
}

test("a block over a layer built with another rank's expertShard is a one-line error naming both ranges", () => {
  const cfg = parseMoEConfig({ hiddenSize: 8, router: { numExperts: 4, topK: 2 }, experts: { intermediateSize: 6 } });
  const layer = new MoELayer(cfg, { expertShard: { first: 2, count: 2 } });
  assert.throws(
    () => buildMoeBlock('ep', layer),
    /^RangeError: ep MoE block: the layer holds experts \[2, 4\) but rank 0 of 1 runs \[0, 4\); build it with expertShard: expertShardFor\(4, group\)$/,
  );
});

test("experts not divisible by the group size, or a jittered router under TP: one-line errors at np 2; buildMlpOrMoe under EP builds a layer of only the rank's experts", {
  skip,
}, () => {
  const run = runMpi(2, 'parity-worker.ts', ['indivisible']);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(passLines(run), [
    'PASS buildMlpOrMoe ep rank 0',
    'PASS buildMlpOrMoe ep rank 1',
    'PASS indivisible ep rank 0',
    'PASS indivisible ep rank 1',
    'PASS indivisible tp rank 0',
    'PASS indivisible tp rank 1',
    'PASS jitter tp rank 0',
    'PASS jitter tp rank 1',
  ]);
});

test("buildMoeBlock: 'naive' runs on the layer's own bank; unknown kinds and bad options are one-line errors", () => {
  const layer = new MoELayer(parseMoEConfig({ hiddenSize: 8, router: { numExperts: 4, topK: 2 }, experts: { intermediateSize: 6 } }));
  layer.eval();
  const block = buildMoeBlock('naive', layer);
  assert.equal(block.experts, layer.experts);
  assert.throws(() => buildMoeBlock('pp' as never, layer), /buildMoeBlock: kind 'pp' is not one of 'naive', 'tp', 'ep'/);
  assert.throws(
    () => buildMoeBlock('ep', layer, { group: Communicator.single(), sharding: 'local', capacity: 'global' }),
    /capacity 'global' needs sharding 'round-robin'/,
  );
});

test('buildMlpOrMoe: dense below first_k_dense_replace, the naive MoE block from there on (ep / tp when their groups have ranks)', () => {
  const dense = new Module();
  const moe = () => new MoELayer(parseMoEConfig({ hiddenSize: 8, router: { numExperts: 4, topK: 2 }, experts: { intermediateSize: 6 } }));
  const hf = { num_experts: 4, first_k_dense_replace: 1 };
  assert.equal(
    buildMlpOrMoe(hf, 0, () => dense, moe),
    dense,
  );
  const block = buildMlpOrMoe(hf, 1, () => dense, moe, { ep: Communicator.single() });
  assert.ok(block instanceof TensorParallelMoeBlock && block.group.size === 1);
});

for (const np of [2, 4]) {
  test(`OLMo-core expert parallelism at np ${np}: per-rank batches (uneven), ep_world · allowed capacity with drops, postBatch's all-reduced bias update, global-batch LB and metrics over all ranks`, {
    skip,
  }, () => {
    const run = runMpi(np, 'ep-training-worker.ts');
    assert.equal(run.timedOut, false, 'mpirun timed out');
    assert.equal(run.status, 0, run.stderr);
    const want = ['dropless-selection-bias', 'global-batch-lb', 'olmo-capacity']
      .flatMap((c) => Array.from({ length: np }, (_, r) => `PASS ${c} rank ${r}`))
      .sort();
    assert.deepEqual(passLines(run), want);
  });
}
