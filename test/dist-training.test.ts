// Data- and expert-parallel CT-MoE training: DP=2 and EP=2 end with the parameters of one
// process on the same global batch and resume exactly on the same world size
// (test/helpers/dist/dp-worker.ts, ep-ablation-worker.ts); the CLI's --parallel and info lines.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { mpiSkipReason, passLines, runMpi } from './helpers/dist/mpirun.js';

const skip = mpiSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'moekit-dp-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'src', 'cli', 'main.ts'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });

test('DP=2 training of a micro CT-MoE for 30 steps: the parameters and losses of one process on the same global batch; resume on the same world size only', {
  skip,
}, () => {
  const run = runMpi(2, 'dp-worker.ts', [dir], 240_000);
  assert.equal(run.timedOut, false, 'mpirun timed out');
  assert.equal(run.status, 0, run.stderr);
  const lines = passLines(run);
  assert.equal(lines.length, 4, run.stdout);
  assert.match(lines.join('\n'), /PASS dp resume with per-rank dropout reproduces the uninterrupted run/);
  assert.match(lines.join('\n'), /PASS dp parameters equal one process after 30 steps/);
  assert.match(lines.join('\n'), /PASS dp resume reproduces the uninterrupted run/);
  assert.match(lines.join('\n'), /PASS world-size mismatch refused/);
});

test("EP=2 training of a micro CT-MoE (Full, dropout, LB) for 12 steps: each rank allocates only its experts, which with the replicated parameters equal one process on the same global batch; the dashboard log's loads and routing sample equal one process's; resume on the same world size only", {
  skip,
}, () => {
  const run = runMpi(2, 'ep-ablation-worker.ts', [join(dir, 'ep')], 300_000);
  assert.equal(run.timedOut, false, 'mpirun timed out');
  assert.equal(run.status, 0, run.stderr);
  const lines = passLines(run);
  assert.equal(lines.length, 6, run.stdout);
  assert.match(lines.join('\n'), /PASS ep dashboard log equals one process/);
  for (const r of [0, 1]) {
    assert.match(lines.join('\n'), new RegExp(`PASS ep parameters equal one process after 12 steps rank ${r}`));
    assert.match(lines.join('\n'), new RegExp(`PASS ep resume reproduces the uninterrupted run rank ${r}`));
  }
  assert.match(lines.join('\n'), /PASS world-size mismatch refused/);
});

test('moekit ablate --parallel: one line saying what to install without Open MPI, or to use mpirun without it', () => {
  const missing = cli(['ablate', '--preset', 'tiny', '--parallel', 'dp', '--out', join(dir, 'x')], {
    MOEKIT_MPI_LIB: 'libmpi-not-here.so.0',
  });
  assert.notEqual(missing.status, 0);
  assert.match(
    missing.stderr,
    /^error: --parallel dp: MPI not found \(libmpi-not-here\.so\.0: cannot open shared object file.*\); install Open MPI \(Debian\/Ubuntu: apt-get install openmpi-bin libopenmpi3\) or MPICH \(apt-get install mpich libmpich12\) and start the ranks with its mpirun \/ mpiexec$/m,
  );
  assert.doesNotMatch(missing.stderr, /^\s+at /m, 'no stack trace');
  const info = cli(['info'], { MOEKIT_MPI_LIB: 'libmpi-not-here.so.0' });
  assert.match(info.stdout, /^MPI: not found \(libmpi-not-here\.so\.0: cannot open shared object file/m);
});

test('moekit ablate --parallel dp outside mpirun says to start the ranks with mpirun; info gives the world size', { skip }, () => {
  const r = cli(['ablate', '--preset', 'tiny', '--parallel', 'dp', '--out', join(dir, 'y')]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /^error: --parallel dp: start the ranks with mpirun, e\.g\. mpirun -np 2 npx moekit ablate --parallel dp$/m);
  const e = cli(['ablate', '--preset', 'tiny', '--parallel', 'ep', '--out', join(dir, 'z')]);
  assert.match(e.stderr, /^error: --parallel ep: start the ranks with mpirun, e\.g\. mpirun -np 2 npx moekit ablate --parallel ep$/m);
  assert.doesNotMatch(e.stderr, /^\s+at /m, 'no stack trace');
  assert.match(cli(['info']).stdout, /^MPI: found \(libmpi\.so\.40\); world size 1 \(not started by mpirun \/ mpiexec\)$/m);
});
