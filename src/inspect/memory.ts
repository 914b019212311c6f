// Bytes of the weights in fp32, bf16 and MXFP4. MXFP4 (OCP microscaling) stores 32 fp4 values
// and one e8m0 scale per block: 4.25 bits a value; as in GPT-OSS's published checkpoints only
// the routed experts' weight matrices are quantised, everything else (biases too) stays bf16.
import type { ModelSpec } from './model-spec.js';
import type { ModelParamCounts } from './params.js';

export interface WeightMemory {
  fp32: number;
  bf16: number;
  mxfp4: number;
}

export const MXFP4_BITS_PER_VALUE = 4 + 8 / 32;

/** Routed-expert weight-matrix elements (no biases) of the whole model. */
export function expertMatrixParams(spec: ModelSpec): number {
  let n = 0;
  for (const f of spec.layers) if (f.kind === 'moe') n += f.numExperts * 3 * spec.hiddenSize * f.expertIntermediateSize;
  return n;
}

export function weightMemory(spec: ModelSpec, counts: ModelParamCounts): WeightMemory {
  const q = expertMatrixParams(spec);
  return { fp32: 4 * counts.total, bf16: 2 * counts.total, mxfp4: (q * MXFP4_BITS_PER_VALUE) / 8 + 2 * (counts.total - q) };
}
