// The weights an expert bank runs with (ExpertBank holds them as Parameters; loaders and the
// kernel path take any object of this shape).
import type { Tensor } from '../tensor/tensor.js';

/** The weights an expert bank runs with; which are present depends on kind and layout. */
export interface ExpertWeights {
  /** separate layout: [E, I, H] ('out-in') or [E, H, I] ('in-out'); GELU uses upProj only. */
  gateProj?: Tensor | null;
  upProj?: Tensor | null;
  /** fused / interleaved: [E, 2I, H] or [E, H, 2I]. */
  gateUpProj?: Tensor | null;
  /** [E, H, I] or [E, I, H]. */
  downProj: Tensor;
  /** Biases [E, out] (GPT-OSS): of gateUpProj (or upProj), and of downProj. */
  gateUpBias?: Tensor | null;
  downBias?: Tensor | null;
}
