/**
 * Loader for the native addon. node-gyp-build picks the binary: a compiled
 * build/Release/*.node first (a developer build, or the install script's
 * fallback compile), else the package's prebuilt prebuilds/<platform>-<arch>/
 * binary for this libc. The addon is optional: when none is found or it fails
 * to load, callers fall back to the reference backend and can show `reason`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeKernels } from './kernels.js';

export type FloatArray = Float32Array | Float64Array;

/** ISA the native kernels were dispatched to at run time. */
export type NativeIsa = 'avx512' | 'avx2' | 'neon' | 'scalar';

export interface NativeCpuInfo {
  isa: NativeIsa;
  /** Threads the native pool uses (caller included). */
  threads: number;
  /** Per-core L2 cache size, when the OS reports it. */
  l2KiB?: number;
  /** One core's data caches as the GEMM blocking sees them (native/runtime/cpu.h mk_cpu_caches). */
  caches: { l1dKiB: number; l2KiB: number; l3KiB: number; source: 'cpuid' | 'sysfs' | 'default' };
}

/**
 * Functions exported by moekit_native. Kernel files add their exports here
 * (see native/runtime/addon.h for the C side).
 */
export interface NativeAddon extends NativeKernels {
  /**
   * out[b] = (accumulate ? out[b] : 0) + op(A_b) · op(B_b) for b < batch, where
   * A_b starts at a[b * aBatchStride] and is stored [m,k] (or [k,m] if transA),
   * B_b starts at b[b * bBatchStride] and is stored [k,n] (or [n,k] if transB),
   * out is [batch, m, n] contiguous. A stride of 0 broadcasts the operand.
   * a, b, out must all be Float32Array or all Float64Array (TypeError
   * otherwise); too-short arrays throw a RangeError. Synchronous.
   */
  matmul(
    a: FloatArray,
    b: FloatArray,
    out: FloatArray,
    batch: number,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
    aBatchStride: number,
    bBatchStride: number,
    accumulate: boolean,
  ): void;
  /**
   * native/gemm/gemm_bf16.c: out = bf16(op(a) . op(b)) over bf16 bit patterns (Uint16Arrays),
   * f32 accumulation, rounded once; AVX512_BF16 where the CPU has it. Absent in older builds.
   */
  matmulBf16?(
    a: Uint16Array,
    b: Uint16Array,
    out: Uint16Array,
    batch: number,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
    aBatchStride: number,
    bBatchStride: number,
  ): void;
  /** native/ops/half_convert.c: bf16 (or f16) bit patterns -> f32 values, as src/io/half.ts's engine casts. */
  halfToF32?(src: Uint16Array, out: Float32Array, f16: boolean): void;
  /** f32 values -> bf16 (or f16) bit patterns, round to nearest even (PyTorch's NaN). */
  f32ToHalf?(src: Float32Array, out: Uint16Array, f16: boolean): void;
  /** src's rows (src.length / rowScale.length elements each) times their scale in f32, then rounded to bf16 as f32ToHalf. */
  f32ToBf16ScaledRows?(src: Float32Array, rowScale: Float32Array, out: Uint16Array): void;
  /** Threads for all native kernels; n <= 0 restores the default. */
  setNumThreads(n: number): void;
  getNumThreads(): number;
  cpuInfo(): NativeCpuInfo;
  /** Lower the kernels' ISA (tests, comparisons); returns the ISA now used. */
  setIsa(isa: NativeIsa): NativeIsa;
  /** native/runtime/fma_peak.c: the f32 FMA roofline of `isa` on every kernel thread (GFLOP/s, best of rounds over ~ms); null where this CPU cannot run it. */
  fmaPeak(isa: Exclude<NativeIsa, 'scalar'>, ms: number): { isa: NativeIsa; threads: number; gflops: number } | null;
}

/** Which binary loaded: the package's prebuilt one or one compiled on this machine. */
export interface NativeBinary {
  origin: 'prebuilt' | 'compiled';
  file: string;
  /** Why node-gyp-build chose this binary. */
  why: string;
}

export type NativeAddonResult = { addon: NativeAddon; binary: NativeBinary } | { addon: null; reason: string };

/** node-gyp-build's resolver (CommonJS, untyped): the .node file it would load from `dir`; throws when none fits. */
function resolveBinary(dir: string): string {
  return (createRequire(import.meta.url)('node-gyp-build') as { resolve(dir: string): string }).resolve(dir);
}

function describeBinary(root: string, file: string): NativeBinary {
  if (relative(root, file).split(sep)[0] === 'prebuilds') {
    return {
      origin: 'prebuilt',
      file,
      why: `no compiled build/Release, so node-gyp-build took the prebuild for ${process.platform}-${process.arch}`,
    };
  }
  return {
    origin: 'compiled',
    file,
    why: 'build/Release holds a binary compiled here (at install when no prebuild loaded, or a developer build), which node-gyp-build prefers to prebuilds',
  };
}

/** Nearest directory at or above `start` that holds a package.json. */
function findPackageRoot(start: string): string | null {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

let cached: NativeAddonResult | undefined;

/**
 * A lazily cached accessor for a group of kernels: the addon typed as T when it exports every
 * function in `names`, else null (no addon, or one built before those kernels landed).
 */
export function addonKernels<T>(names: readonly (keyof T & string)[]): () => T | null {
  let cachedKernels: T | null | undefined;
  return () => {
    if (cachedKernels !== undefined) return cachedKernels;
    const addon = loadNativeAddon().addon as unknown as Record<string, unknown> | null;
    cachedKernels = addon && names.every((n) => typeof addon[n] === 'function') ? (addon as unknown as T) : null;
    return cachedKernels;
  };
}

/**
 * Load the addon once (later calls return the same result). Never throws.
 * Works from src/ (tsx) and from dist/ (compiled): the package root is found
 * by walking up from this file.
 */
export function loadNativeAddon(): NativeAddonResult {
  if (cached) return cached;
  const here = dirname(fileURLToPath(import.meta.url));
  const root = findPackageRoot(here);
  if (root === null) {
    cached = { addon: null, reason: `no package.json above ${here}` };
    return cached;
  }
  let file: string;
  try {
    file = resolveBinary(root);
  } catch (err) {
    const first = (err as Error).message.split('\n')[0];
    cached = {
      addon: null,
      reason: `${first} (no prebuild fits and none was compiled: \`node scripts/build-native.mjs\` in ${root} compiles one, given a C compiler, make and python3)`,
    };
    return cached;
  }
  try {
    const mod = createRequire(import.meta.url)(file) as Partial<NativeAddon>;
    if (typeof mod.matmul !== 'function' || typeof mod.cpuInfo !== 'function') {
      cached = { addon: null, reason: `${file} does not export the expected functions` };
    } else {
      cached = { addon: mod as NativeAddon, binary: describeBinary(root, file) };
    }
  } catch (err) {
    cached = { addon: null, reason: `loading ${file} failed: ${(err as Error).message}` };
  }
  return cached;
}
