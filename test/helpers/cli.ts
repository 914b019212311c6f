// The `moekit` CLI (src/cli/main.ts under tsx) as a child process, for tests of what a user sees.
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const CLI_MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** How the child ended and the tail of its stderr: an assertion message that says why it failed. */
  why: string;
}

/** Runs `moekit ARGS` to completion (default limit 60 s). */
export function runMoekit(args: string[], options: Omit<SpawnSyncOptions, 'encoding'> = {}): CliRun {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI_MAIN, ...args], { timeout: 60_000, ...options, encoding: 'utf8' });
  const ms = performance.now() - t0;
  const ended = r.signal ? `killed by ${r.signal}${r.error ? ` (${r.error.message})` : ''}` : `exit ${r.status}`;
  const why = `moekit ${args.join(' ')}: ${ended} after ${Math.round(ms)} ms; stderr ends:\n${r.stderr.slice(-2000)}`;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms, why };
}
