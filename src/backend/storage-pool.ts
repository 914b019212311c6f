// Idle CPU tensor storages, handed out again by the allocation helpers of types.ts.
//
// Why: a training step's activations and gradients are fresh ArrayBuffers that survive the
// step's scavenges, and V8 frees them only at a mark-compact, which it forces for every
// ~64 MB of ArrayBuffer memory allocated since the last one: about one a step for CT-MoE tiny
// (docs/performance.md, "What the GC costs a CT-MoE training step"). A tidy scope
// (src/tensor/scope.ts) knows which storages died at its end and gives them back here; the
// next step's allocations of the same (type, length) take them instead of new memory.
//
// Every array of >= MIN_BYTES the helpers hand out (fresh or from here) and every array given
// back gets a new hand-out generation: a tensor remembers the generation of its storage when it
// is made, and a scope recycles a storage only through a tensor that holds the current one and
// only if it was handed out while the scope was open. So an array user code made (no
// generation), one a stale tensor still points at after its buffer went round again, or one
// another pool holds now (the experts node's scratch.ts, which gives its surplus back here)
// is never given back twice.
import type { TypedArray } from './types.js';

/** Below this, V8's own small allocations are cheap and count for little external memory. */
const MIN_BYTES = 4096;
/** Idle bytes beyond this go to the GC instead. */
const MAX_IDLE_BYTES = 1 << 30;

export type PooledArray = Float32Array | Float64Array | Int32Array;
/** 0: Float32Array, 1: Float64Array, 2: Int32Array. */
export type PoolKind = 0 | 1 | 2;

interface Bucket {
  arrays: PooledArray[];
  /** Taken from since the last trim. */
  used: boolean;
}

const idle: Map<number, Bucket>[] = [new Map(), new Map(), new Map()];
let idleBytes = 0;
let generation = 0;
const generations = new WeakMap<ArrayBufferLike, number>();

function kindOf(a: TypedArray): PoolKind | null {
  if (a instanceof Float32Array) return 0;
  if (a instanceof Float64Array) return 1;
  if (a instanceof Int32Array) return 2;
  return null;
}

/** An idle array of this kind and length (contents arbitrary), or undefined. */
export function takeIdle(kind: PoolKind, n: number): PooledArray | undefined {
  const bucket = idle[kind]!.get(n);
  const a = bucket?.arrays.pop();
  if (!a) return undefined;
  bucket!.used = true;
  idleBytes -= a.byteLength;
  generations.set(a.buffer, ++generation);
  return a;
}

/** The helpers report each fresh array: it gets a hand-out generation (arrays of >= MIN_BYTES). */
export function noteAllocated<T extends TypedArray>(a: T): T {
  if (a.byteLength >= MIN_BYTES) generations.set(a.buffer, ++generation);
  return a;
}

/** The generation of the last hand-out or give-back of this buffer; -1 for arrays the helpers did not hand out. */
export function handOutGeneration(buffer: ArrayBufferLike): number {
  return generations.get(buffer) ?? -1;
}

/** The latest generation issued (a scope's later hand-outs have larger ones). */
export function latestGeneration(): number {
  return generation;
}

/**
 * Give back an array nothing references any more. Returns whether it was pooled: only a
 * Float32Array / Float64Array / Int32Array spanning its whole buffer, of at least MIN_BYTES,
 * while the pool holds less than MAX_IDLE_BYTES.
 */
export function giveBack(a: TypedArray): boolean {
  const kind = kindOf(a);
  if (kind === null || a.byteLength < MIN_BYTES || a.byteOffset !== 0 || a.byteLength !== a.buffer.byteLength) return false;
  if (idleBytes + a.byteLength > MAX_IDLE_BYTES) return false;
  const map = idle[kind]!;
  let bucket = map.get(a.length);
  if (!bucket) {
    bucket = { arrays: [], used: false };
    map.set(a.length, bucket);
  }
  bucket.arrays.push(a as PooledArray);
  idleBytes += a.byteLength;
  generations.set(a.buffer, ++generation); // no tensor holds this generation: stale ones cannot give it back again
  return true;
}

/** Drop the buckets nothing took from since the last trim (shapes a run no longer uses); a scope trims before it gives back. */
export function trimIdle(): void {
  for (const map of idle) {
    for (const [n, bucket] of map) {
      if (bucket.used) {
        bucket.used = false;
        continue;
      }
      for (const a of bucket.arrays) idleBytes -= a.byteLength;
      map.delete(n);
    }
  }
}

/** Bytes held idle. */
export function idleStorageBytes(): number {
  return idleBytes;
}

/** Drop every idle array (tests, or to hand the memory back). */
export function clearIdleStorage(): void {
  for (const map of idle) map.clear();
  idleBytes = 0;
}
