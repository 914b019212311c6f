// Diffulex's dispatcher contracts on one process: the stage lifecycle, validation errors,
// the dispatch / combine round trip, inactive ranks, the dispatcher builder.
// Across processes: a validation error on one rank ends every rank (no hang).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray } from '../src/ops/creation.js';
import { Communicator } from '../src/dist/communicator.js';
import { DispatcherStage, resolveDeepEPMode } from '../src/dist/contracts.js';
import { RouterMetadata } from '../src/moe/contracts.js';
import { NaiveAllToAllDispatcher } from '../src/dist/naive-dispatcher.js';
import { buildTokenDispatcher } from '../src/dist/builders.js';
import { mpiSkipReason, runMpi } from './helpers/dist/mpirun.js';

const skip = mpiSkipReason();
const single = Communicator.single();
const f32 = (v: number[], shape: number[]) => fromArray(Float32Array.from(v), shape);
const i32 = (v: number[], shape: number[]) => fromArray(Int32Array.from(v), shape);

// 3 tokens, H 2, K 2, 4 experts on one rank
const hidden = f32([1, 2, 3, 4, 5, 6], [3, 2]);
const ids = i32([2, 0, 1, 2, 3, 0], [3, 2]);
const weights = f32([0.7, 0.3, 0.6, 0.4, 0.9, 0.1], [3, 2]);

test('dispatch sorts slots stably by destination and sends (local expert, token) with each row', () => {
  const d = new NaiveAllToAllDispatcher(single, 1, 4, 2);
  const out = d.dispatch(hidden, ids, weights);
  assert.equal(d.stage, DispatcherStage.AFTER_DISPATCH_B);
  const m = out.metadata;
  assert.deepEqual(Array.from(m.sendSplits), [6]);
  assert.deepEqual(Array.from(m.recvSplits), [6]);
  assert.equal(m.totalRecvSlots, 6);
  assert.deepEqual(Array.from(out.recvLocalExpertIds.dataSync()), [2, 0, 1, 2, 3, 0]);
  assert.deepEqual(Array.from(m.recvTokenIndices.dataSync()), [0, 0, 1, 1, 2, 2]);
  assert.deepEqual(Array.from(out.recvHiddenStates.dataSync()), [1, 2, 1, 2, 3, 4, 3, 4, 5, 6, 5, 6]);
  assert.deepEqual(
    Array.from(out.recvWeights.dataSync(), (v) => Math.round(v * 10) / 10),
    [0.7, 0.3, 0.6, 0.4, 0.9, 0.1],
  );
  assert.equal(m.numLocalTokens, 3);
  assert.equal(m.activeDispatch, true);
  // combine index-adds the (already weighted) slot outputs per token and applies no weight itself
  const y = d.combine(out.recvHiddenStates, m);
  assert.deepEqual(Array.from(y.dataSync()), [2, 4, 6, 8, 10, 12]);
  assert.equal(d.stage, DispatcherStage.INITIAL);
});

test("the dispatcher's EP size must be its group's size", () => {
  assert.throws(() => new NaiveAllToAllDispatcher(single, 2, 2, 2), /epSize 2 must equal the EP group's size 1/);
});

test('an inactive rank sends nothing, joins the collectives, and gets zeros from combine', () => {
  const d = new NaiveAllToAllDispatcher(single, 1, 4, 2);
  const out = d.dispatch(hidden, ids, weights, false);
  assert.equal(out.metadata.totalRecvSlots, 0);
  assert.equal(out.metadata.numLocalTokens, 0);
  assert.deepEqual(out.recvHiddenStates.shape, [0, 2]);
  assert.deepEqual(Array.from(d.combine(out.recvHiddenStates, out.metadata).dataSync()), [0, 0, 0, 0, 0, 0]);
});

test('out-of-order calls throw and name the stage', () => {
  const d = new NaiveAllToAllDispatcher(single, 1, 4, 2);
  const out = d.dispatch(hidden, ids, weights);
  assert.throws(() => d.dispatch(hidden, ids, weights), /dispatch: the dispatcher is at stage AFTER_DISPATCH_B; dispatch needs INITIAL/);
  assert.throws(
    () => d.setForwardPhase('decode'),
    /setForwardPhase: the dispatcher is at stage AFTER_DISPATCH_B; setForwardPhase needs INITIAL/,
  );
  d.combineA(out.recvHiddenStates, out.metadata);
  assert.equal(d.stage, DispatcherStage.AFTER_COMBINE_A);
  assert.throws(
    () => d.combine(out.recvHiddenStates, out.metadata),
    /combine: the dispatcher is at stage AFTER_COMBINE_A; combine needs AFTER_DISPATCH_B/,
  );
  d.combineB();
  assert.throws(() => d.combine(out.recvHiddenStates, out.metadata), /needs AFTER_DISPATCH_B/);
  assert.throws(() => d.dispatchB(), /dispatchB: the dispatcher is at stage INITIAL; dispatchB needs AFTER_DISPATCH_A/);
  d.setForwardPhase('decode');
  assert.equal(d.forwardPhase, 'decode');
  assert.throws(() => d.setForwardPhase('train' as never), /phase 'train' is not one of 'prefill', 'decode', 'mixed'/);
});

test('dispatch and combine validate shapes, dtypes and ids with one-line errors', () => {
  const d = new NaiveAllToAllDispatcher(single, 1, 4, 2);
  assert.throws(() => d.dispatch(f32([1, 2], [2]), ids, weights), /dispatch: hidden must be \[T, H\] \(got \[2\]\)/);
  assert.throws(() => d.dispatch(hidden, f32([0, 0, 0, 0, 0, 0], [3, 2]), weights), /dispatch: topkIds must have dtype i32 \(got f32\)/);
  assert.throws(() => d.dispatch(hidden, i32([0, 1, 2], [3, 1]), weights), /dispatch: topkIds must be \[T=3, K=2\] \(got \[3, 1\]\)/);
  assert.throws(
    () => d.dispatch(hidden, ids, f32([1, 1, 1], [3, 1])),
    /dispatch: topkWeights must have topkIds' shape \[3, 2\] \(got \[3, 1\]\)/,
  );
  assert.throws(
    () => d.dispatch(hidden, i32([0, 1, 2, 4, 0, 1], [3, 2]), weights),
    /dispatch: topkIds\[1, 1\] = 4 is outside \[0, 4\) \(ep 1 x 4 local experts\)/,
  );
  assert.throws(() => d.dispatch(hidden, i32([0, -1, 2, 3, 0, 1], [3, 2]), weights), /topkIds\[0, 1\] = -1 is outside/);
  assert.equal(d.stage, DispatcherStage.INITIAL, 'a rejected dispatch leaves the stage alone');
  const out = d.dispatch(hidden, ids, weights);
  assert.throws(() => d.combine(f32([1, 2], [1, 2]), out.metadata), /combine: slotOutputs must be \[R=6, H=2\] \(got \[1, 2\]\)/);
  // a token index outside the sender's batch is refused at combineB
  const bad = { ...out.metadata, recvTokenIndices: i32([0, 0, 1, 1, 2, 3], [6]) };
  d.combineA(out.recvHiddenStates, bad);
  assert.throws(() => d.combineB(), /combine: returned token index 3 at slot 5 is outside \[0, 3\)/);
});

test('buildTokenDispatcher: naive, deepep not available (names the alternative), anything else refused', () => {
  assert.ok(buildTokenDispatcher('naive', { epGroup: single, numLocalExperts: 4, topK: 2 }) instanceof NaiveAllToAllDispatcher);
  assert.throws(
    () => buildTokenDispatcher('deepep', { epGroup: single, numLocalExperts: 4, topK: 2 }),
    /'deepep' is not available in moekit .*; use 'naive'/,
  );
  assert.throws(
    () => buildTokenDispatcher('standard' as never, { epGroup: single, numLocalExperts: 4, topK: 2 }),
    /kind 'standard' is not one of 'naive', 'deepep'/,
  );
});

test('a bad expert id on one of 4 ranks ends every rank with the validation error (no hang)', { skip }, () => {
  const run = runMpi(4, 'collectives-worker.ts', ['bad-ids'], 60_000);
  assert.equal(run.timedOut, false, 'mpirun timed out: a rank hung');
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /\[rank 3\] RangeError: dispatch: topkIds\[0, 0\] = 11 is outside \[0, 8\) \(ep 4 x 2 local experts\)/);
  assert.doesNotMatch(run.stdout, /UNREACHABLE/);
});

test("Diffulex's RouterMetadata (empty, from a router output) and DeepEP's AUTO mode", () => {
  const like = f32([0], [1]);
  const e = RouterMetadata.empty(like, 8, 2);
  assert.deepEqual(
    [e.routerLogits.shape, e.topkIds.shape, e.topkWeights.shape],
    [
      [0, 8],
      [0, 2],
      [0, 2],
    ],
  );
  assert.equal(e.topkIds.dtype, 'i32');
  const m = RouterMetadata.fromTopkOutput({ logits: hidden, topkIds: ids, topkWeights: weights });
  assert.equal(m.routerLogits, hidden);
  assert.deepEqual(
    ['prefill', 'decode', 'mixed'].map((p) => resolveDeepEPMode('AUTO', p as never)),
    ['NORMAL', 'LOW_LATENCY', 'NORMAL'],
  );
  assert.equal(resolveDeepEPMode('NORMAL', 'decode'), 'NORMAL');
  // an empty router output dispatches as a rank with no tokens
  const d = new NaiveAllToAllDispatcher(single, 1, 8, 2);
  const out = d.dispatch(f32([], [0, 4]), e.topkIds, e.topkWeights);
  assert.equal(out.metadata.totalRecvSlots, 0);
  assert.deepEqual(d.combine(out.recvHiddenStates, out.metadata).shape, [0, 4]);
});
