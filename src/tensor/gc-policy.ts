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
// is opt-in: moekit's CLI and benchmarks call it, a training script can.
import { setFlagsFromString } from 'node:v8';

const FLAG = 'incremental-marking';

/** How the process was started for V8 flag `name`: true (--name), false (--no-name), null (neither). */
export function startupFlag(name: string): boolean | null {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (args.includes(`--no-${name}`)) return false;
  if (args.includes(`--${name}`)) return true;
  return null;
}

/**
 * Turns V8's incremental marking off for this process (see above), unless it was started with
 * --incremental-marking or --no-incremental-marking. Returns whether marking is now off.
 */
export function useThroughputGc(): boolean {
  const choice = startupFlag(FLAG);
  if (choice !== null) return !choice;
  setFlagsFromString(`--no-${FLAG}`);
  return true;
}
