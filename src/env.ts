// Every MOEKIT_* environment variable in one registry: its type, what it allows, its default
// and what it does. TypeScript code reads them through readEnv (validated: a bad value is a
// one-line EnvError naming the variable, the value and what is allowed, never ignored);
// the variables the C side reads with getenv are validated by validateNativeEnv when the
// native addon loads. README.md's table lists the same names (test/env-registry.test.ts).

export type EnvSpec =
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'int'; min: number; max: number }
  | { kind: 'switch' } // '0' or '1'
  | { kind: 'path' };

export interface EnvVar {
  name: string;
  spec: EnvSpec;
  /** The behaviour when unset or empty, in words. */
  default: string;
  /** Who reads it: TypeScript at run time, the native addon (C getenv), or the install script. */
  readBy: 'ts' | 'native' | 'install';
  description: string;
}

const SWITCH: EnvSpec = { kind: 'switch' };

export const ENV_VARS: readonly EnvVar[] = [
  {
    name: 'MOEKIT_BACKEND',
    spec: { kind: 'enum', values: ['native', 'reference', 'webgpu'] },
    default: 'native when the addon loads, else reference',
    readBy: 'ts',
    description: 'which backend new tensors are created on',
  },
  {
    name: 'MOEKIT_MPI_LIB',
    spec: { kind: 'path' },
    default:
      "the first that loads: Open MPI's libmpi.so.40, then MPICH's libmpich.so.12 / libmpi.so.12 (MPICH's first under an MPICH mpiexec)",
    readBy: 'ts',
    description: 'the MPI library the addon loads at run time (a path or another soname)',
  },
  {
    name: 'MOEKIT_WEBGPU_BACKEND',
    spec: { kind: 'enum', values: ['vulkan', 'opengl'] },
    default: 'vulkan, else opengl (Dawn in Node)',
    readBy: 'ts',
    description: "which of Dawn's backends the webgpu backend opens in Node",
  },
  {
    name: 'MOEKIT_CACHE_DIR',
    spec: { kind: 'path' },
    default: '~/.cache/moekit',
    readBy: 'ts',
    description: 'where tokenised corpora are cached',
  },
  {
    name: 'MOEKIT_POISON_UNINITIALIZED',
    spec: SWITCH,
    default: '0',
    readBy: 'ts',
    description: 'fill uninitialised tensor storage with NaN (tests catch reads of it)',
  },
  {
    name: 'MOEKIT_MOE_GC',
    spec: SWITCH,
    default: '1',
    readBy: 'ts',
    description: '0 turns off the garbage collection before large MoE outputs',
  },
  {
    name: 'MOEKIT_MOE_PATH',
    spec: { kind: 'enum', values: ['auto', 'reference', 'kernels', 'layer'] },
    default: 'auto',
    readBy: 'ts',
    description: 'which MoE execution path runs: the fastest covered, or one forced',
  },
  {
    name: 'MOEKIT_MOE_ROW_BLOCKS',
    spec: SWITCH,
    default: 'by expert size',
    readBy: 'ts',
    description: '0 / 1 forces the row-block fusion of the expert passes off / on',
  },
  {
    name: 'MOEKIT_NUM_THREADS',
    spec: { kind: 'int', min: 1, max: 256 },
    default: 'the CPUs this process may run on',
    readBy: 'native',
    description: 'threads of the native thread pool',
  },
  {
    name: 'MOEKIT_POOL_SPIN_US',
    spec: { kind: 'int', min: 0, max: 1_000_000 },
    default: 'built-in',
    readBy: 'native',
    description: 'microseconds an idle pool thread spins before it sleeps',
  },
  {
    name: 'MOEKIT_ISA',
    // the ISAs of this machine's architecture: NEON is aarch64's baseline, AVX2 / AVX-512 are x86-64's
    spec: {
      kind: 'enum',
      values: typeof process !== 'undefined' && process.arch === 'arm64' ? ['neon', 'scalar'] : ['avx512', 'avx2', 'scalar'],
    },
    default: 'the best the CPU has',
    readBy: 'native',
    description: 'caps the instruction set of the native kernels',
  },
  {
    name: 'MOEKIT_RETAIN_MEMORY',
    spec: SWITCH,
    default: '1',
    readBy: 'native',
    description: '0 leaves malloc trimming alone (else freed blocks are kept for reuse)',
  },
  {
    name: 'MOEKIT_GEMM_FAST_PACK',
    spec: SWITCH,
    default: '1',
    readBy: 'native',
    description: '0 keeps the scalar GEMM packs (A/B measurements)',
  },
  {
    name: 'MOEKIT_MOE_FAST_PACK',
    spec: SWITCH,
    default: '1',
    readBy: 'native',
    description: '0 keeps the scalar packs of the MoE GEMMs (A/B measurements)',
  },
  {
    name: 'MOEKIT_FUSE_STEAL',
    spec: { kind: 'int', min: 0, max: 1_000_000 },
    default: 'on, nothing left to take',
    readBy: 'native',
    description: "0 turns block stealing off; N > 0 leaves each part's last N blocks to be taken (tests)",
  },
  {
    name: 'MOEKIT_GEMM_KERNEL',
    spec: { kind: 'int', min: 0, max: 15 },
    default: '0',
    readBy: 'native',
    description: 'index of an alternative AVX-512 f32 GEMM kernel (tuning)',
  },
  {
    name: 'MOEKIT_GEMM_MC',
    spec: { kind: 'int', min: 1, max: 1 << 20 },
    default: 'per kernel and CPU',
    readBy: 'native',
    description: 'GEMM blocking: rows of A per block (tuning)',
  },
  {
    name: 'MOEKIT_GEMM_KC',
    spec: { kind: 'int', min: 1, max: 1 << 20 },
    default: 'per kernel and CPU',
    readBy: 'native',
    description: 'GEMM blocking: depth per block (tuning)',
  },
  {
    name: 'MOEKIT_GEMM_NC',
    spec: { kind: 'int', min: 1, max: 1 << 20 },
    default: 'per kernel and CPU',
    readBy: 'native',
    description: 'GEMM blocking: columns of B per block (tuning)',
  },
  {
    name: 'MOEKIT_SKIP_NATIVE_BUILD',
    spec: SWITCH,
    default: '0',
    readBy: 'install',
    description: '1 skips building the native addon at npm install',
  },
];

export class EnvError extends RangeError {
  override name = 'EnvError';
}

function find(name: string): EnvVar {
  const v = ENV_VARS.find((e) => e.name === name);
  if (!v) throw new Error(`readEnv: ${name} is not in the registry of src/env.ts`);
  return v;
}

function allowed(spec: EnvSpec): string {
  switch (spec.kind) {
    case 'enum':
      return spec.values.map((s) => `'${s}'`).join(' or ');
    case 'int':
      return `a decimal integer in [${spec.min}, ${spec.max}]`;
    case 'switch':
      return "'0' or '1'";
    case 'path':
      return 'a path';
  }
}

function shown(value: string): string {
  return value.length > 60 ? `'${value.slice(0, 60)}…'` : `'${value}'`;
}

/** The parsed value of a variable: undefined when unset or empty; throws EnvError when invalid. */
export function readEnv(name: 'MOEKIT_BACKEND' | 'MOEKIT_ISA' | 'MOEKIT_WEBGPU_BACKEND'): string | undefined;
export function readEnv(name: 'MOEKIT_NUM_THREADS' | 'MOEKIT_POOL_SPIN_US' | 'MOEKIT_FUSE_STEAL'): number | undefined;
export function readEnv(name: string): string | number | boolean | undefined;
export function readEnv(name: string): string | number | boolean | undefined {
  const v = find(name);
  const raw = typeof process !== 'undefined' ? process.env[name] : undefined;
  if (raw === undefined || raw === '') return undefined; // empty counts as unset
  const bad = () => new EnvError(`${name}=${shown(raw)} is invalid: expected ${allowed(v.spec)} (${v.description})`);
  switch (v.spec.kind) {
    case 'enum':
      if (!v.spec.values.includes(raw)) throw bad();
      return raw;
    case 'int': {
      if (!/^\d{1,16}$/.test(raw)) throw bad();
      const n = Number(raw);
      if (n < v.spec.min || n > v.spec.max) throw bad();
      return n;
    }
    case 'switch':
      if (raw !== '0' && raw !== '1') throw bad();
      return raw === '1';
    case 'path':
      return raw;
  }
}

/** A switch variable: its value, or `fallback` when unset. */
export function envSwitch(name: string, fallback: boolean): boolean {
  const v = readEnv(name);
  return v === undefined ? fallback : v === true;
}

/** Validate every variable the native addon reads (called when it loads). */
export function validateNativeEnv(): void {
  for (const v of ENV_VARS) if (v.readBy === 'native') readEnv(v.name);
}
