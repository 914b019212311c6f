// Reuse of the fused MoE node's large internal buffers (gate/up pre-activations, h, the
// per-row expert outputs, dY·W_down, the per-row dX) across calls.
//
// Why: a fresh typed array of this size is untouched mmap'd memory, so the kernel that first
// writes it page-faults every 4 KiB (measured: a fresh 117 MB output costs ~50 ms more to
// write than a reused one, single GEMM at ~190 GFLOP/s), and glibc hands anything above its
// mmap threshold (<= 32 MiB) straight back to the OS on free. Only buffers that never leave
// fused-experts.ts go through here; outputs (y, dX, weight gradients) stay fresh arrays.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FloatArray } from './native-moe.js';

/** Below this, malloc's own reuse is fine. */
const MIN_BYTES = 1 << 20;
/** At most this many idle buffers of one (type, length). */
const PER_KEY = 2;
/** At most this many idle bytes in total (beyond it, released buffers go to the GC). */
const MAX_IDLE_BYTES = 1 << 30;

const idle = new Map<string, FloatArray[]>();
let idleBytes = 0;

function key(f64: boolean, n: number): string {
  return `${f64 ? 'd' : 'f'}${n}`;
}

/** An array like `like` of n elements; contents are arbitrary (callers overwrite all of it). */
export function acquireScratch(like: FloatArray, n: number): FloatArray {
  const f64 = like instanceof Float64Array;
  if (n * (f64 ? 8 : 4) >= MIN_BYTES) {
    const list = idle.get(key(f64, n));
    const a = list?.pop();
    if (a) {
      idleBytes -= a.byteLength;
      return a;
    }
  }
  return f64 ? new Float64Array(n) : new Float32Array(n);
}

/** Give back an array from acquireScratch that nothing references any more. */
export function releaseScratch(a: FloatArray): void {
  if (a.byteLength < MIN_BYTES || a.byteOffset !== 0 || a.byteLength !== a.buffer.byteLength) return;
  if (idleBytes + a.byteLength > MAX_IDLE_BYTES) return;
  const k = key(a instanceof Float64Array, a.length);
  let list = idle.get(k);
  if (!list) idle.set(k, (list = []));
  if (list.length >= PER_KEY || list.includes(a)) return;
  list.push(a);
  idleBytes += a.byteLength;
}

/** Drop every idle buffer (tests, or to hand the memory back). */
export function clearScratch(): void {
  idle.clear();
  idleBytes = 0;
}

// ---- big fresh outputs: collect the previous step's garbage first ----------------------
//
// Weight gradients are fresh arrays that escape (param.grad). After zeroGrad() the previous
// step's gradients are garbage, but V8 only frees an ArrayBuffer after a mark-compact of the
// heap that owns it; with the scratch pool the forward allocates little, so no GC runs before
// the backward allocates the new gradients and both sets are resident at once (olmoe-like:
// +450 MB peak RSS). PyTorch frees them at once (refcounting). Before allocating at least
// GC_MIN_BYTES of gradients, run a full GC (~5 ms with a small JS heap; up to ~120 ms when it
// unmaps 1.6 GB of old gradients, work that is due anyway). Rate-limited for a very large JS
// heap: the next one waits 10x the last one's duration, at most 1 s. (A layer with >= 128 MB
// of weight gradients spends far longer than that in its backward GEMMs.) A no-op where gc
// cannot be reached; MOEKIT_MOE_GC=0 turns it off.
const GC_MIN_BYTES = 128 << 20;
let gcFn: (() => void) | null | undefined;
let nextGcAt = 0;

function gcFunction(): (() => void) | null {
  if (gcFn !== undefined) return gcFn;
  try {
    const g = (globalThis as { gc?: () => void }).gc;
    if (typeof g === 'function') return (gcFn = g);
    setFlagsFromString('--expose-gc');
    const f = runInNewContext('gc') as unknown;
    gcFn = typeof f === 'function' ? (f as () => void) : null;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

/** Call before allocating `bytes` of fresh output arrays (see above). */
export function collectBeforeLargeOutputs(bytes: number): void {
  if (bytes < GC_MIN_BYTES || process.env.MOEKIT_MOE_GC === '0') return;
  if (performance.now() < nextGcAt) return;
  const gc = gcFunction();
  if (!gc) return;
  const t0 = performance.now();
  gc();
  const t1 = performance.now();
  nextGcAt = t1 + Math.min(10 * (t1 - t0), 1000);
}
