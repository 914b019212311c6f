// The open tidy scopes (scope.ts), kept apart from it so that tensor.ts can report to them
// without importing the module that imports Tensor.
import { giveBack, handOutGeneration, latestGeneration } from '../backend/storage-pool.js';
import type { Storage, TypedArray } from '../backend/types.js';
import { envSwitch } from '../env.js';

/** What a scope needs to know of a tensor (tensor.ts's Tensor). */
export interface TrackedTensor {
  readonly id: number;
}

export interface ScopeState {
  /** Tensors created while this scope was the innermost one (or kept by an inner scope). */
  readonly tensors: TrackedTensor[];
  /** Buffers read out as arrays (dataSync / data) or assigned to a tensor's storage: never recycled. */
  readonly pinned: Set<ArrayBufferLike>;
  /** Tensors with a smaller id were created before the scope opened. */
  readonly firstId: number;
  /** Storages handed out before the scope opened have a generation up to this one (storage-pool.ts). */
  readonly openedAtGeneration: number;
}

const open: ScopeState[] = [];
let nextId = 1;

/** A new tensor's id (ids grow: a scope's tensors have ids from its firstId on). */
export function takeTensorId(): number {
  return nextId++;
}

export function innermostScope(): ScopeState | undefined {
  return open[open.length - 1];
}

export function pushScope(): ScopeState {
  const s: ScopeState = { tensors: [], pinned: new Set(), firstId: nextId, openedAtGeneration: latestGeneration() };
  open.push(s);
  return s;
}

/** Pops `s`, which must be the innermost scope. */
export function popScope(s: ScopeState): void {
  if (open[open.length - 1] !== s) throw new Error('tidy: scopes must close in the reverse order they opened');
  open.pop();
}

/** Tensor's constructor: a tensor created inside a scope belongs to it; returns its storage's hand-out generation (-1 outside scopes). */
export function trackTensor(t: TrackedTensor, s: Storage): number {
  if (open.length === 0) return -1;
  open[open.length - 1]!.tensors.push(t);
  return ArrayBuffer.isView(s) ? handOutGeneration(s.buffer) : -1;
}

/** Whether `s`, held by a tensor made when its generation was `gen`, may go back to the pool from `scope`. */
export function recyclable(scope: ScopeState, s: Storage, gen: number): s is TypedArray {
  if (!ArrayBuffer.isView(s)) return false;
  return gen > scope.openedAtGeneration && handOutGeneration(s.buffer) === gen && !scope.pinned.has(s.buffer);
}

function bufferOf(s: Storage): ArrayBufferLike | null {
  return ArrayBuffer.isView(s) ? s.buffer : null;
}

/**
 * A storage with a holder no scope can see (read out as an array by dataSync / data, or
 * assigned to a tensor by `t.storage = ...` / setStorage_): no scope open now recycles it.
 */
export function pinStorage(s: Storage): void {
  if (open.length === 0) return;
  const b = bufferOf(s);
  if (b) for (const scope of open) scope.pinned.add(b);
}

/** An inner scope's tensors and pins belong to the outer scope. */
export function handOver(inner: ScopeState, outer: ScopeState, tensors: readonly TrackedTensor[] = inner.tensors): void {
  for (const t of tensors) outer.tensors.push(t);
  for (const b of inner.pinned) outer.pinned.add(b);
}

let poison: boolean | undefined;

/** Give a dead storage to the pool; under MOEKIT_POISON_UNINITIALIZED filled first, so a stale reader sees NaN (integers: the most negative int32). */
export function recycle(a: TypedArray): void {
  poison ??= envSwitch('MOEKIT_POISON_UNINITIALIZED', false);
  if (poison) a.fill(a instanceof Int32Array ? -0x80000000 : Number.NaN);
  giveBack(a);
}
