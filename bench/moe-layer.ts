// The MoE layer every MoE benchmark measures: softmax top-k renormalised, SwiGLU experts, LB and
// z-losses on, built from seed 1234 (the PyTorch peer builds the same one).
import { manualSeed } from '../src/index.js';
import { MoELayer, moeConfig } from '../src/moe/index.js';

export interface BenchLayerShape {
  dModel: number;
  dFf: number;
  experts: number;
  topK: number;
}

/** dtype bf16: the layer built in bf16 (MoELayer's `dtype` option), never held in f32. */
export function benchMoeLayer(c: BenchLayerShape, dtype: 'f32' | 'bf16' = 'f32'): MoELayer {
  manualSeed(1234);
  return new MoELayer(
    moeConfig({
      hiddenSize: c.dModel,
      router: { numExperts: c.experts, topK: c.topK, scoreFunc: 'softmax', renormalize: 'sum' },
      experts: { kind: 'swiglu', intermediateSize: c.dFf },
      losses: { lbWeight: 0.01, zLossWeight: 0.001, lbConvention: 'one' },
    }),
    { dtype },
  );
}
