// Start test workers under mpirun with a timeout. Tests skip (with the reason printed) only
// when mpirun is absent and CI is not set; on CI a missing mpirun fails them.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

function hasMpirun(): boolean {
  return spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
}

/** undefined when the multi-process tests can run; else why they skip. Throws on CI without mpirun. */
export function mpiSkipReason(): string | undefined {
  if (hasMpirun()) return undefined;
  if (process.env.CI) throw new Error('mpirun not found on CI: .ci/run must install openmpi-bin libopenmpi3');
  const reason = 'mpirun not found (apt-get install openmpi-bin libopenmpi3); multi-process tests skipped';
  console.log(`# ${reason}`);
  return reason;
}

export interface MpiRun {
  status: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** mpirun -np n node --import tsx test/helpers/dist/<worker> ...args, killed after timeoutMs. */
export function runMpi(np: number, worker: string, args: string[] = [], timeoutMs = 120_000): MpiRun {
  const script = join(import.meta.dirname, worker);
  const r = spawnSync('mpirun', ['--allow-run-as-root', '--oversubscribe', '-np', String(np), process.execPath, '--import', 'tsx', script, ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGTERM',
    // no cross-memory-attach copies between ranks: containers often forbid ptrace (CMA)
    env: { ...process.env, OMPI_MCA_btl_vader_single_copy_mechanism: 'none' },
  });
  return { status: r.status, timedOut: r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT', stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** The "PASS ..." lines of a run, sorted. */
export function passLines(run: MpiRun): string[] {
  return run.stdout.split('\n').filter((l) => l.startsWith('PASS ')).sort();
}
