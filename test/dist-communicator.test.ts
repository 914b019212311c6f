// Communicators: the 'single' backend and its errors here; every collective (f32 / f64 / i32,
// Promise and synchronous forms, sub-communicators, the differentiable allToAllV's reverse
// gradient, Diffulex's inactive rank) against closed forms at np 2 and 4; an uncaught error on
// one rank ends them all.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray } from '../src/ops/creation.js';
import { Communicator, worldCommunicator } from '../src/dist/communicator.js';
import { mpiSkipReason, passLines, runMpi } from './helpers/dist/mpirun.js';

const skip = mpiSkipReason();
const skipMpich = mpiSkipReason('mpich');

test("'single': size 1, collectives are copies, bad arguments are one-line errors", async () => {
  const c = worldCommunicator('single');
  assert.equal(c.backend, 'single');
  assert.deepEqual([c.rank, c.size], [0, 1]);
  const t = fromArray(Float32Array.of(1, 2, 3, 4), [2, 2]);
  assert.deepEqual(Array.from((await c.allReduce(t, 'avg')).dataSync()), [1, 2, 3, 4]);
  assert.deepEqual((await c.allGather(t)).shape, [2, 2]);
  assert.deepEqual(Array.from(c.allToAllVSync(t, [2]).dataSync()), [1, 2, 3, 4]);
  assert.deepEqual((await c.split(5)).size, 1);
  await assert.rejects(
    c.allReduce(fromArray(Int32Array.of(1), [1]), 'avg'),
    /allReduce: op 'avg' needs a floating tensor \(got i32\); use 'sum'/,
  );
  await assert.rejects(c.allReduce(t, 'min' as never), /allReduce: op 'min' is not one of 'sum', 'avg', 'max'/);
  await assert.rejects(c.broadcast(t, 1), /broadcast: root 1 is not a rank in \[0, 1\)/);
  assert.throws(() => c.allToAllVSync(t, [3]), /allToAllV: sendSplits sum to 3 but the tensor \[2, 2\] has 2 rows/);
  assert.throws(() => c.allToAllVSync(t, [1, 1], [2]), /allToAllV: sendSplits and recvSplits need one entry per rank \(1\), got 2 and 1/);
  assert.throws(() => c.allToAllVSync(t, [1, 1]), /allToAll: counts must have one entry per rank \(1\), got 2/);
  assert.equal(Communicator.single().size, 1);
});

test('a synchronous collective while an asynchronous one is in flight is refused', async () => {
  const c = Communicator.single();
  const p = c.barrier();
  assert.throws(() => c.allReduceSync(fromArray(Float32Array.of(1), [1])), /while an asynchronous one is in flight/);
  await p;
});

test("'mpi' without mpirun and without the library: one line naming what to install", () => {
  const prev = process.env.MOEKIT_MPI_LIB;
  process.env.MOEKIT_MPI_LIB = 'libmpi-not-here.so.0';
  try {
    assert.throws(
      () => worldCommunicator('mpi'),
      /^Error: mpi: cannot load MPI \(mpi: libmpi-not-here\.so\.0: cannot open shared object file.*\); install Open MPI \(Debian\/Ubuntu: apt-get install openmpi-bin libopenmpi3\) or MPICH \(apt-get install mpich libmpich12\) and start the ranks with its mpirun \/ mpiexec$/,
    );
  } finally {
    if (prev === undefined) delete process.env.MOEKIT_MPI_LIB;
    else process.env.MOEKIT_MPI_LIB = prev;
  }
});

for (const np of [2, 4]) {
  test(`collectives equal their closed forms at np ${np}`, { skip }, () => {
    const run = runMpi(np, 'collectives-worker.ts');
    assert.equal(run.timedOut, false, 'mpirun timed out');
    assert.equal(run.status, 0, run.stderr);
    const lines = passLines(run);
    // 3 dtypes x 9 checks (avg only for floats) + counts + 3 split checks + gradient + 2 inactive-rank checks, per rank
    assert.equal(lines.length, np * (3 * 9 - 1 + 1 + 3 + 1 + 2));
    for (let r = 0; r < np; r++) assert.ok(lines.includes(`PASS inactive rank: combine rank ${r}`));
    for (let r = 0; r < np; r++) assert.ok(lines.includes(`PASS allToAllV gradient rank ${r}`));
  });
}

// MPICH's handles are integers, not Open MPI's pointers (native/dist/mpi.c): the same checks under its launcher
test('collectives equal their closed forms at np 2 under MPICH (mpiexec.mpich, libmpich.so.12)', { skip: skipMpich }, () => {
  const run = runMpi(2, 'collectives-worker.ts', [], 120_000, 'mpich');
  assert.equal(run.timedOut, false, 'mpiexec timed out');
  assert.equal(run.status, 0, run.stderr);
  assert.equal(passLines(run).length, 2 * (3 * 9 - 1 + 1 + 3 + 1 + 2));
});

test('an uncaught error on one of 4 ranks ends every rank non-zero (MPI_Abort, no hang)', { skip }, () => {
  const run = runMpi(4, 'collectives-worker.ts', ['throw'], 60_000);
  assert.equal(run.timedOut, false, 'mpirun timed out: a rank hung');
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /\[rank 3\] Error: deliberate failure on the last rank/);
  assert.doesNotMatch(run.stdout, /UNREACHABLE/);
});
