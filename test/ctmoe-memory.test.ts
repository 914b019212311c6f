// The CT-MoE memory estimate per rank under --parallel ep / dp (src/experiments/ctmoe/memory.ts):
// the parameters a rank holds equal the model it builds (expertShard), the activations follow
// the closed form of its terms, the check counts the ranks on one machine; and at np 2 the
// estimate's growth per batch row bounds one EP rank's measured peak RSS growth from above
// without being loose by more than 2.5x (test/helpers/dist/memory-worker.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { experimentConfig, VARIANTS } from '../src/experiments/ctmoe/index.js';
import { CtMoeGPT } from '../src/experiments/ctmoe/model.js';
import { checkTrainingMemory, estimateTrainingMemory } from '../src/experiments/ctmoe/memory.js';
import { mpiSkipReason, runMpi } from './helpers/dist/mpirun.js';

const MiB = 2 ** 20;

test("per-rank parameters: under EP the replicated parameters and the rank's E / ranks experts (the model it builds), under DP the whole model", () => {
  for (const preset of ['tiny', 'small'] as const) {
    const cfg = experimentConfig(preset);
    const whole = new CtMoeGPT(cfg, VARIANTS[0]!.flags).numParameters();
    assert.equal(estimateTrainingMemory(cfg).parameters, whole);
    assert.equal(estimateTrainingMemory(cfg, { mode: 'dp', ranks: 2 }).parameters, whole);
    for (const ranks of [2, 4]) {
      const count = cfg.numExperts / ranks;
      const rank = new CtMoeGPT(cfg, VARIANTS[0]!.flags, { first: count, count }).numParameters();
      assert.equal(estimateTrainingMemory(cfg, { mode: 'ep', ranks }).parameters, rank, `${preset} ep ${ranks}`);
      assert.ok(rank < whole);
    }
  }
});

test("per-rank activations in closed form: DP's are one process's on batchSize / ranks rows plus the gradient buckets; EP's route K / ranks slots per token through the rank's experts and add the all-to-all and all-reduce buffers", () => {
  const cfg = experimentConfig('tiny', { batchSize: 32 });
  const { vocabSize: V, seqLen: T, dModel: D, nHead: H, nLayer: L, numExperts: N, topK: K } = cfg;
  const one = estimateTrainingMemory(cfg);
  const half = estimateTrainingMemory({ ...cfg, batchSize: 16 });
  const dp = estimateTrainingMemory(cfg, { mode: 'dp', ranks: 2 });
  assert.equal(dp.activationBytes, half.activationBytes);
  assert.equal(dp.bytes - half.bytes, 2 * 4 * one.parameters, 'a flat bucket and its reduced copy (fewer floats than 2^22)');
  assert.equal(dp.commBytes, 0);
  const ranks = 2;
  const ep = estimateTrainingMemory(cfg, { mode: 'ep', ranks });
  const tokens = 32 * T;
  const experts = 1.5 * 4 * tokens * L * 4 * D * (K / ranks);
  const comm = 1.5 * 4 * tokens * L * ((10 * D * K) / ranks + D / ranks + 2 * D + 4 * N);
  const rest = 1.5 * 4 * tokens * (3 * V + L * (3 * H * T + 16 * D + 4 * N));
  assert.ok(Math.abs(ep.activationBytes - (rest + experts + comm)) < 1e-6 * ep.activationBytes);
  assert.ok(Math.abs(ep.commBytes - comm) < 1e-6 * comm);
  assert.equal(ep.bytes, 256 * MiB + 16 * ep.parameters + ep.activationBytes);
  // dense expert compute: one process runs every expert on every token; EP's dispatcher is sparse
  const dense = { ...cfg, expertCompute: 'dense' as const };
  assert.ok(estimateTrainingMemory(dense).activationBytes > one.activationBytes);
  assert.equal(estimateTrainingMemory(dense, { mode: 'ep', ranks }).activationBytes, ep.activationBytes);
});

test('the check counts every rank on this machine and says so', () => {
  const cfg = experimentConfig('tiny');
  const ep = estimateTrainingMemory(cfg, { mode: 'ep', ranks: 4 });
  const available = 3 * ep.bytes;
  assert.deepEqual(checkTrainingMemory(cfg, available, 8 * available, { mode: 'ep', ranks: 4, ranksOnMachine: 2 }), ep);
  assert.throws(
    () => checkTrainingMemory(cfg, available, 8 * available, { mode: 'ep', ranks: 4 }),
    /^RangeError: each of the 4 --parallel ep ranks on this machine needs about 0\.\d\d GiB to train \(batchSize 16 x seqLen 64 tokens: /,
  );
});

test("at np 2, one EP rank's peak RSS grows per batch row by at most the estimate's growth, and by more than 0.4 of it (tiny preset, batch 32 and 96, 3 steps)", {
  skip: mpiSkipReason(),
}, () => {
  const peaks = [32, 96].map((batch) => {
    const run = runMpi(2, 'memory-worker.ts', ['ep', String(batch)], 240_000);
    assert.equal(run.timedOut, false, 'mpirun timed out');
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.split('\n').filter((l) => l.startsWith('RSS ep 2 '));
    assert.equal(lines.length, 2, run.stdout);
    const ranks = lines.map((l) => l.split(' ').slice(-2).map(Number) as [number, number]);
    for (const [measured, estimated] of ranks)
      assert.ok(measured <= estimated, `batch ${batch}: a rank's peak ${measured} MiB is above its estimate ${estimated} MiB`);
    return { measured: Math.max(...ranks.map((r) => r[0])), estimated: ranks[0]![1] };
  });
  const measured = (peaks[1]!.measured - peaks[0]!.measured) / 64;
  const estimated = (peaks[1]!.estimated - peaks[0]!.estimated) / 64;
  assert.ok(
    measured <= estimated && measured > 0.4 * estimated,
    `per batch row: ${measured.toFixed(2)} MiB measured, ${estimated.toFixed(2)} MiB estimated`,
  );
});
