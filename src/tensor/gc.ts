// Collecting the previous step's gradients before allocating new large ones.
//
// Weight gradients are fresh arrays that escape (param.grad). After zeroGrad() the previous
// step's gradients are garbage, but V8 frees an ArrayBuffer only after a mark-compact of the
// heap that owns it; a model whose forward allocates little (the fused MoE node pools its
// buffers) runs no GC before its backward allocates the new gradients, and both sets are
// resident at once (olmoe-like: +512 MB peak RSS). PyTorch frees them at once (refcounting).
//
// So a kernel about to allocate at least GC_MIN_BYTES of outputs calls collectBeforeLargeOutputs:
//  - when zeroGrad() has dropped at least GC_MIN_BYTES of gradients since the last collection,
//    it runs a full GC (the garbage is known to be there, and the memory is about to be needed);
//  - otherwise at most one GC per 10x the last one's duration (at most 1 s apart), for
//    gradients dropped some other way (p.grad = null).
// The array buffers are freed inside the call (not by V8's concurrent sweeper, which would
// still be freeing them while the caller allocates). A no-op where gc cannot be reached;
// MOEKIT_MOE_GC=0 turns it off.
import { setFlagsFromString } from 'node:v8';
import { fullGcFunction, startupFlag } from './gc-policy.js';
import { envSwitch } from '../env.js';

export const GC_MIN_BYTES = 128 << 20;
const SWEEP_FLAG = 'concurrent-array-buffer-sweeping';
let nextGcAt = 0;
let droppedBytes = 0;

/** zeroGrad() reports the bytes of the gradients it drops. */
export function noteDroppedGradient(bytes: number): void {
  droppedBytes += bytes;
}

/** The gradient bytes zeroGrad() dropped since the last collection. */
export function droppedGradientBytes(): number {
  return droppedBytes;
}

/**
 * Call before allocating `bytes` of fresh output arrays (see above). minBytes: the threshold in
 * bytes, GC_MIN_BYTES unless the caller's elements are smaller (bf16 gradients: half of it, the
 * same element count).
 */
export function collectBeforeLargeOutputs(bytes: number, minBytes = GC_MIN_BYTES): void {
  if (bytes < minBytes || !envSwitch('MOEKIT_MOE_GC', true)) return;
  const known = droppedBytes >= minBytes;
  if (!known && performance.now() < nextGcAt) return;
  const gc = fullGcFunction();
  if (!gc) return;
  const t0 = performance.now();
  const restore = startupFlag(SWEEP_FLAG) !== false;
  setFlagsFromString(`--no-${SWEEP_FLAG}`);
  try {
    gc();
  } finally {
    if (restore) setFlagsFromString(`--${SWEEP_FLAG}`);
  }
  const t1 = performance.now();
  droppedBytes = 0;
  nextGcAt = t1 + Math.min(10 * (t1 - t0), 1000);
}
