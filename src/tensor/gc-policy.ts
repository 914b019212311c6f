// A V8 garbage-collection policy for training loops: useThroughputGc().
//
// Why. V8 starts incremental marking of the old generation whenever the room left under its
// global memory limit is no more than the new space's capacity, and that limit counts the
// memory of ArrayBuffers. A training loop keeps a small JavaScript heap (~10 MB) but allocates
// tensor buffers every step (the small MoE layer: ~6 MB a step, freed by scavenges), so once the
// limit settles low (at a mark-compact, by V8's speed heuristics) the room never exceeds the
// new space again: marking cycles run back to back, each a few ms on the main thread and tens
// of ms on a background thread, which takes the core our kernels' worker threads run on.
// A good share of processes fall into that state, and their MoE steps and training run
// markedly slower (docs/performance.md: src/tensor/gc-policy.ts: useThroughputGc).
//
// With incremental marking off, a major GC runs at once when the old generation reaches its
// limit; for tensor workloads (small heap, data in ArrayBuffers that scavenges free) that is a
// few ms, rarely. For a process whose JavaScript heap is large, it means longer pauses, so this
// is opt-in: moekit's CLI (for the commands that train) and benchmarks call it, a training
// script can.
//
// The flag is flipped at run time, which V8 supports only between marking cycles: flipped while
// an incremental cycle runs, the concurrent marker can crash the process (a fatal "unreachable
// code" in ConcurrentMarking::RunMajor, seen in CI). So a full GC ends any cycle first; nothing
// allocates between it and the flip, so no cycle can start in between.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const FLAG = 'incremental-marking';

/** How the process was started for V8 flag `name`: true (--name), false (--no-name), null (neither). */
export function startupFlag(name: string): boolean | null {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (args.includes(`--no-${name}`)) return false;
  if (args.includes(`--${name}`)) return true;
  return null;
}

let gcFn: (() => void) | null | undefined;

/** V8's full, synchronous GC (`global.gc`, or reached through --expose-gc); null where neither works. */
export function fullGcFunction(): (() => void) | null {
  if (gcFn !== undefined) return gcFn;
  try {
    const g = (globalThis as { gc?: () => void }).gc;
    if (typeof g === 'function') {
      gcFn = g;
      return g;
    }
    setFlagsFromString('--expose-gc');
    const f = runInNewContext('gc') as unknown;
    gcFn = typeof f === 'function' ? (f as () => void) : null;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

/**
 * Turns V8's incremental marking off for this process (see above), unless it was started with
 * --incremental-marking or --no-incremental-marking. Returns whether marking is now off (false
 * also where no full GC can be run first).
 */
export function useThroughputGc(): boolean {
  const choice = startupFlag(FLAG);
  if (choice !== null) return !choice;
  const gc = fullGcFunction();
  if (!gc) return false;
  gc();
  setFlagsFromString(`--no-${FLAG}`);
  return true;
}
