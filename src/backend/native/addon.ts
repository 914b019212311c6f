/**
 * Loader for the native addon (build/Release/moekit_native.node, built by
 * scripts/build-native.mjs at install). The addon is optional: when it is
 * missing or fails to load, callers fall back to the reference backend and
 * can show `reason`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeKernels } from './kernels.js';

export type FloatArray = Float32Array | Float64Array;

/** ISA the native kernels were dispatched to at run time. */
export type NativeIsa = 'avx512' | 'avx2' | 'scalar';

export interface NativeCpuInfo {
  isa: NativeIsa;
  /** Threads the native pool uses (caller included). */
  threads: number;
  /** Per-core L2 cache size, when the OS reports it. */
  l2KiB?: number;
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
  /** Threads for all native kernels; n <= 0 restores the default. */
  setNumThreads(n: number): void;
  getNumThreads(): number;
  cpuInfo(): NativeCpuInfo;
  /** Lower the kernels' ISA (tests, comparisons); returns the ISA now used. */
  setIsa(isa: NativeIsa): NativeIsa;
}

export type NativeAddonResult = { addon: NativeAddon } | { addon: null; reason: string };

const ADDON_PATH = join('build', 'Release', 'moekit_native.node');

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
  const file = join(root, ADDON_PATH);
  if (!existsSync(file)) {
    cached = {
      addon: null,
      reason: `${file} not found (native build skipped or failed; run \`node scripts/build-native.mjs\`)`,
    };
    return cached;
  }
  try {
    const mod = createRequire(import.meta.url)(file) as Partial<NativeAddon>;
    if (typeof mod.matmul !== 'function' || typeof mod.cpuInfo !== 'function') {
      cached = { addon: null, reason: `${file} does not export the expected functions` };
    } else {
      cached = { addon: mod as NativeAddon };
    }
  } catch (err) {
    cached = { addon: null, reason: `loading ${file} failed: ${(err as Error).message}` };
  }
  return cached;
}
