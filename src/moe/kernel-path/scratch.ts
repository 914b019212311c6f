// Reuse of the experts node's large internal buffers (gate/up pre-activations, h, the
// per-row expert outputs, dY·W_down, the per-row dX) across calls.
//
// Why: a fresh typed array of this size is untouched mmap'd memory, so the kernel that first
// writes it page-faults every 4 KiB, which costs a large GEMM noticeably more than writing a
// reused buffer (docs/performance.md: src/moe/kernel-path/scratch.ts), and glibc hands anything
// above its mmap threshold (<= 32 MiB) straight back to the OS on free. Only buffers that never
// leave experts-node.ts go through here; outputs (y, dX, weight gradients) stay fresh arrays.
import { giveBack } from '../../backend/storage-pool.js';
import { BF16Array, uninitializedFloatArrayLike } from '../../backend/types.js';

type FloatArray = Float32Array | Float64Array;
type ScratchArray = FloatArray | BF16Array;

/** Below this, malloc's own reuse is fine. */
const MIN_BYTES = 1 << 20;
/** At most this many idle buffers of one (type, length). */
const PER_KEY = 2;
/** At most this many idle bytes in total (beyond it, released buffers go to the GC). */
const MAX_IDLE_BYTES = 1 << 30;

const idle = new Map<string, ScratchArray[]>();
let idleBytes = 0;

type Kind = 'f' | 'd' | 'h';

function kindOf(a: ScratchArray): Kind {
  return a instanceof BF16Array ? 'h' : a instanceof Float64Array ? 'd' : 'f';
}

/** An idle buffer of this kind and length, if one is pooled (nothing below MIN_BYTES is). */
function takeIdle(kind: Kind, n: number, bytesPerElement: number): ScratchArray | undefined {
  if (n * bytesPerElement < MIN_BYTES) return undefined;
  const a = idle.get(`${kind}${n}`)?.pop();
  if (a) idleBytes -= a.byteLength;
  return a;
}

/** An array like `like` of n elements; contents are arbitrary (callers overwrite all of it). */
export function acquireScratch(like: FloatArray, n: number): FloatArray {
  const f64 = like instanceof Float64Array;
  return (takeIdle(f64 ? 'd' : 'f', n, f64 ? 8 : 4) as FloatArray | undefined) ?? uninitializedFloatArrayLike(like, n);
}

/** A BF16Array of n elements from the same pool (the bf16 node's saved pre-activations, h and their gradients); contents arbitrary. */
export function acquireHalfScratch(n: number): BF16Array {
  return (takeIdle('h', n, BF16Array.BYTES_PER_ELEMENT) as BF16Array | undefined) ?? new BF16Array(n);
}

/** Give back an array from acquireScratch that nothing references any more. */
export function releaseScratch(a: ScratchArray): void {
  if (a.byteLength < MIN_BYTES || a.byteOffset !== 0 || a.byteLength !== a.buffer.byteLength) return;
  const k = `${kindOf(a)}${a.length}`;
  const list = idle.get(k) ?? [];
  idle.set(k, list);
  if (list.includes(a)) return;
  if (list.length >= PER_KEY || idleBytes + a.byteLength > MAX_IDLE_BYTES) {
    giveBack(a); // to the tensor storage pool (backend/storage-pool.ts) rather than to the GC
    return;
  }
  list.push(a);
  idleBytes += a.byteLength;
}

/** Drop every idle buffer (tests, or to hand the memory back). */
export function clearScratch(): void {
  idle.clear();
  idleBytes = 0;
}
