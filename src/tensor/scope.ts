// Tidy scopes: tensors a stretch of code creates and nothing keeps are released when it ends,
// and their storages go back to the allocation pool (src/backend/storage-pool.ts) for the next
// allocations of the same type and length, instead of waiting for V8's mark-compact.
//
// The ownership rule (docs/architecture.md, "Tensor ownership and tidy scopes"): when a scope
// closes, a tensor created inside it survives if it is
//   - returned by tidy's fn (found in the value: arrays, plain objects, Maps, Sets, nested), or
//   - passed to keep() inside the scope, or
//   - reachable from one of the scope's roots (a model, an optimiser, any object: its own
//     properties, arrays, Maps and Sets are walked, a tensor's grad too, not its graph),
//     which also keeps every typed array found there (a layer's cached routing arrays);
// every other tensor created inside is released: reading its storage throws a one-line error.
// A released tensor's storage is recycled only if the allocation helpers handed it out inside
// the scope and the tensor still holds that hand-out (storage-pool.ts's generations), no
// survivor or root shares its buffer, it was never read out as an array (dataSync / data: the
// caller may keep the array) and no tensor was assigned it (`t.storage = ...`).
// Survivors of an inner scope belong to the outer one. Opt-in: nothing is released outside a
// scope. A scope is for synchronous code (or code that awaits only its own reads): tensors
// that other code creates while it is open belong to it too. When fn throws, nothing is
// released (the tensors go to the GC as before).
import { trimIdle } from '../backend/storage-pool.js';
import type { Storage, TypedArray } from '../backend/types.js';
import { handOver, innermostScope, popScope, pushScope, recyclable, recycle, type ScopeState } from './scope-state.js';
import { Tensor } from './tensor.js';

/** An open scope (openScope); close it exactly once, innermost first. */
export interface TidyScope {
  /** Release what nothing keeps (see above); `result` and `roots` are kept. */
  close(result?: unknown, ...roots: unknown[]): void;
  /** Close without releasing anything (an error path): what was created goes to the outer scope. */
  abandon(): void;
}

/** Open a scope by hand (code whose body cannot be one function, as a generator's loop step). */
export function openScope(): TidyScope {
  const state = pushScope();
  let closed = false;
  const finish = (release: boolean, result: unknown, roots: unknown[]) => {
    if (closed) throw new Error('tidy: this scope is already closed');
    popScope(state);
    closed = true;
    closeScope(state, release, result, roots);
  };
  return {
    close: (result, ...roots) => finish(true, result, roots),
    abandon: () => finish(false, undefined, []),
  };
}

/** Run fn in a scope (see above): returns fn's result, releasing what it created and nothing keeps. */
export function tidy<T>(fn: () => T, ...roots: unknown[]): T {
  const scope = openScope();
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scope.abandon();
    throw e;
  }
  scope.close(result, ...roots);
  return result;
}

const keptMark = new WeakSet<Tensor>();

/** Keep `t` past the end of the scopes open now and of any it is handed on to (TF.js's keep). */
export function keep<T extends Tensor>(t: T): T {
  keptMark.add(t);
  return t;
}

function closeScope(state: ScopeState, release: boolean, result: unknown, roots: unknown[]): void {
  const outer = innermostScope();
  if (!release) {
    if (outer) handOver(state, outer);
    return;
  }
  const kept = new Set<Tensor>();
  const keptBuffers = new Set<ArrayBufferLike>(state.pinned);
  collect([result, ...roots], kept, keptBuffers);
  for (const t of state.tensors as Tensor[]) {
    if (keptMark.has(t)) {
      kept.add(t);
      addBuffer(keptBuffers, t.storageOrNull());
    }
  }
  const survivors: Tensor[] = [];
  const released = new Set<ArrayBufferLike>();
  const dead: TypedArray[] = [];
  for (const t of state.tensors as Tensor[]) {
    if (kept.has(t)) {
      survivors.push(t);
      continue;
    }
    const s = t.storageOrNull();
    t.markReleased();
    if (!s || t.backend.onDevice || !recyclable(state, s, t.storageGeneration)) continue;
    const b = s.buffer;
    if (keptBuffers.has(b) || released.has(b)) continue;
    released.add(b);
    dead.push(s);
  }
  if (outer) handOver(state, outer, survivors);
  else trimIdle();
  for (const a of dead) recycle(a);
}

function addBuffer(set: Set<ArrayBufferLike>, s: Storage | null): void {
  if (s && ArrayBuffer.isView(s)) set.add(s.buffer);
}

/** Every tensor (with its grad) and typed array reachable from `roots`. */
function collect(roots: unknown[], tensors: Set<Tensor>, buffers: Set<ArrayBufferLike>): void {
  const seen = new Set<object>();
  const stack: unknown[] = [...roots];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof Tensor) {
      tensors.add(v);
      addBuffer(buffers, v.storageOrNull());
      stack.push(v.grad);
    } else if (ArrayBuffer.isView(v)) {
      buffers.add(v.buffer);
    } else if (v instanceof ArrayBuffer) {
      buffers.add(v);
    } else if (v instanceof Map) {
      for (const [k, x] of v) stack.push(k, x);
    } else if (v instanceof Set || Array.isArray(v)) {
      for (const x of v) if (x !== null && typeof x === 'object') stack.push(x);
    } else {
      for (const x of Object.values(v)) if (x !== null && typeof x === 'object') stack.push(x);
    }
  }
}
