// Shared helpers for bench/<name>.ts modules.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';

export interface CommonOptions {
  json?: boolean;
  threads?: number;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** --json (one JSON line per result) and --threads N, for every benchmark. */
export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print one JSON object per line instead of a table')
    .option('--threads <n>', 'threads for native kernels (default: all cores)', positiveInt);
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Time fn: `warmup` untimed calls, then at least `minRuns` timed calls and more
 * until `minSeconds` have passed (capped at maxRuns). Returns seconds per call.
 */
export function timeRuns(
  fn: () => void,
  opts: { warmup?: number; minRuns?: number; maxRuns?: number; minSeconds?: number } = {},
): number[] {
  const { warmup = 2, minRuns = 5, maxRuns = 50, minSeconds = 0.5 } = opts;
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  const start = process.hrtime.bigint();
  while (times.length < maxRuns) {
    const t0 = process.hrtime.bigint();
    fn();
    const t1 = process.hrtime.bigint();
    times.push(Number(t1 - t0) / 1e9);
    if (times.length >= minRuns && Number(t1 - start) / 1e9 >= minSeconds) break;
  }
  return times;
}

/**
 * Warm-up for a JavaScript hot loop: V8 compiles it in tiers over its first few dozen calls, on
 * a background thread that shares the cores with the kernels, so some early calls run much slower
 * than the steady state (docs/performance.md: bench/util.ts: warmUp). Calls fn at least
 * `minRuns` times and until `seconds` have passed (at most `maxRuns`); a single call slower than
 * `slowMs` is warm-up enough. Returns the last call's duration in ms.
 */
export function warmUp(fn: () => void, opts: { minRuns?: number; maxRuns?: number; seconds?: number; slowMs?: number } = {}): number {
  const { minRuns = 3, maxRuns = 150, seconds = 2.5, slowMs = 500 } = opts;
  const start = performance.now();
  let last = 0;
  for (let n = 0; n < maxRuns; n++) {
    const t0 = performance.now();
    fn();
    last = performance.now() - t0;
    if (last > slowMs) break;
    if (n + 1 >= minRuns && performance.now() - start >= seconds * 1000) break;
  }
  return last;
}

/** Render rows as an aligned text table. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Debian's python with torch, and OpenBLAS-openmp: the PyTorch peer's environment. */
export const PEER_PYTHON = '/usr/bin/python3';
export const OPENBLAS_OPENMP_DIR = '/usr/lib/x86_64-linux-gnu/openblas-openmp';

/** null when the PyTorch peer can run here, else why not. */
export function torchPeerMissing(): string | null {
  if (!existsSync(OPENBLAS_OPENMP_DIR)) return 'libopenblas0-openmp is not installed';
  const r = spawnSync(PEER_PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.status !== 0) return "Debian's python3-torch is not installed";
  return null;
}

export const PEER_INSTALL_HINT = 'apt-get install -y python3-torch python3-numpy libopenblas0-openmp';

/**
 * The peer's BLAS: OpenBLAS-openmp, and which of its kernel families (its "core") it runs.
 *
 * OpenBLAS picks the core from the CPU id at load time, unless `OPENBLAS_CORETYPE` names one
 * (and `OPENBLAS_L2_SIZE` overrides its cache size). Such overrides can sit in a machine's
 * environment for reasons of its own: the project machine had `OPENBLAS_CORETYPE=Haswell` set,
 * which holds the peer to its AVX2 kernels on an AVX-512 CPU, far below its AVX-512 rate
 * (docs/performance.md: bench/util.ts: PeerBlas). The peer stands for PyTorch at its best on
 * this CPU, so by default it runs OpenBLAS's own choice with those two overrides dropped;
 * `keepEnv` keeps them.
 */
export interface PeerBlas {
  /** The environment for peer processes: LD_LIBRARY_PATH to OpenBLAS-openmp, overrides dropped unless kept. */
  env: NodeJS.ProcessEnv;
  /** OpenBLAS's name for the kernels it runs in that environment (openblas_get_corename). */
  core: string;
  /** Which overrides were dropped or kept, for the human-readable output. */
  note: string;
}

const OPENBLAS_OVERRIDES = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'];

function openblasCore(env: NodeJS.ProcessEnv): string {
  const lib = `${OPENBLAS_OPENMP_DIR}/libblas.so.3`;
  const probe = `import ctypes; l = ctypes.CDLL(${JSON.stringify(lib)}); l.openblas_get_corename.restype = ctypes.c_char_p; print(l.openblas_get_corename().decode())`;
  const r = spawnSync(PEER_PYTHON, ['-c', probe], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`could not ask OpenBLAS which kernels it runs: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

export function peerBlas(opts: { keepEnv?: boolean; isa?: ForcedIsa } = {}): PeerBlas {
  const ld = OPENBLAS_OPENMP_DIR + (process.env.LD_LIBRARY_PATH ? `:${process.env.LD_LIBRARY_PATH}` : '');
  const env: NodeJS.ProcessEnv = { ...process.env, LD_LIBRARY_PATH: ld };
  const found = OPENBLAS_OVERRIDES.filter((k) => env[k] !== undefined).map((k) => `${k}=${env[k]}`);
  if (opts.isa) {
    // --isa: both sides on the same instruction set; OpenBLAS's own cache-size guess stays
    const want = FORCED_ISAS[opts.isa].openblasCore;
    delete env.OPENBLAS_L2_SIZE;
    env.OPENBLAS_CORETYPE = want;
    const core = openblasCore(env);
    if (core.toLowerCase() !== want.toLowerCase())
      throw new Error(`--isa ${opts.isa}: OpenBLAS ran its ${core} kernels with OPENBLAS_CORETYPE=${want} (not a DYNAMIC_ARCH build?)`);
    return { env, core, note: `OPENBLAS_CORETYPE=${want} (--isa ${opts.isa})` };
  }
  if (!opts.keepEnv) for (const k of OPENBLAS_OVERRIDES) delete env[k];
  const core = openblasCore(env);
  const note =
    found.length === 0
      ? "OpenBLAS's own choice"
      : opts.keepEnv
        ? `kept from the environment: ${found.join(' ')}`
        : `OpenBLAS's own choice (dropped from the environment: ${found.join(' ')}; --peer-blas-env keeps them)`;
  return { env, core, note };
}

/**
 * `--isa`: measure one instruction set on both sides on any host that has it: moekit's kernels
 * capped by MOEKIT_ISA (src/env.ts) and the peer's OpenBLAS held to its kernel family for that
 * ISA by OPENBLAS_CORETYPE (honoured by Debian's DYNAMIC_ARCH build; peerBlas checks that it was).
 */
export const FORCED_ISAS = {
  avx2: { moekitIsa: 'avx2', openblasCore: 'Haswell' },
} as const;
export type ForcedIsa = keyof typeof FORCED_ISAS;

export function parseForcedIsa(value: string): ForcedIsa {
  if (!Object.hasOwn(FORCED_ISAS, value))
    throw new InvalidArgumentError(`'${value}' is not an ISA the bench can force (allowed: ${Object.keys(FORCED_ISAS).join(', ')})`);
  return value as ForcedIsa;
}

export const ISA_OPTION_HELP =
  "force one instruction set on both sides: moekit's kernels (MOEKIT_ISA) and the peer's OpenBLAS kernels (OPENBLAS_CORETYPE); allowed: avx2";

/**
 * The PyTorch MoE peer's folder (bench.py, moe_ref.py): `shared/peers/torch-moe` beside the
 * checkout; from a git worktree elsewhere, beside the main checkout it belongs to (git's common
 * dir). The first that holds bench.py, else the first (the bench then says it is missing).
 */
export function defaultPeerDir(): string {
  const repo = new URL('..', import.meta.url).pathname;
  const candidates = [join(repo, '..', 'shared', 'peers', 'torch-moe')];
  const git = spawnSync('git', ['rev-parse', '--path-format=absolute', '--git-common-dir'], { cwd: repo, encoding: 'utf8' });
  if (git.status === 0) candidates.push(join(dirname(dirname(git.stdout.trim())), 'shared', 'peers', 'torch-moe'));
  return candidates.find((d) => existsSync(join(d, 'bench.py'))) ?? candidates[0]!;
}
