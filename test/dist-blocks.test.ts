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

test('experts not divisible by the group size, or a jittered router under TP: one-line errors at np 2', { skip }, () => {
  const run = runMpi(2, 'parity-worker.ts', ['indivisible']);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(passLines(run), [
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
