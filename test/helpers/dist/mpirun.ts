// Start test workers under Open MPI's mpirun, or MPICH's mpiexec, with a timeout. Tests skip
// (with the reason printed) only when the launcher is absent and CI is not set; on CI a missing
// launcher fails them.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export type Launcher = 'openmpi' | 'mpich';

const LAUNCHERS = {
  openmpi: { cmd: 'mpirun', args: ['--allow-run-as-root', '--oversubscribe', '-np'], apt: 'openmpi-bin libopenmpi3' },
  mpich: { cmd: 'mpiexec.mpich', args: ['-n'], apt: 'mpich libmpich12' },
} as const;

/** undefined when the multi-process tests can run under `launcher`; else why they skip. Throws on CI without it. */
export function mpiSkipReason(launcher: Launcher = 'openmpi'): string | undefined {
  const { cmd, apt } = LAUNCHERS[launcher];
  if (spawnSync(cmd, ['--version'], { encoding: 'utf8' }).status === 0) return undefined;
  if (process.env.CI) throw new Error(`${cmd} not found on CI: .ci/run must install ${apt}`);
  const reason = `${cmd} not found (apt-get install ${apt}); its multi-process tests skipped`;
  console.log(`# ${reason}`);
  return reason;
}

export interface MpiRun {
  status: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** mpirun -np n node --import tsx test/helpers/dist/<worker> ...args (or mpiexec.mpich -n n ...), killed after timeoutMs. */
export function runMpi(np: number, worker: string, args: string[] = [], timeoutMs = 120_000, launcher: Launcher = 'openmpi'): MpiRun {
  const script = join(import.meta.dirname, worker);
  const { cmd, args: npArgs } = LAUNCHERS[launcher];
  const r = spawnSync(cmd, [...npArgs, String(np), process.execPath, '--import', 'tsx', script, ...args], {
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
