// A loader batch as [B, T] i32 tensors (inputs and next-token targets).
import type { Batch } from '../data/batches.js';
import { fromArray } from '../ops/creation.js';

export function batchTensors(b: Batch) {
  return { input: fromArray(b.input, [b.batch, b.seqLen]), target: fromArray(b.target, [b.batch, b.seqLen]) };
}
