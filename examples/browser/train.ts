// A tiny MoE layer trained in the page: 8-wide tokens, 4 experts, top-2, fitting a fixed random
// linear map with AdamW. Runs on whatever backend is current (the page picks it).
import { Generator, MoELayer, moeConfig } from '../../src/index.js';
import { AdamW } from '../../src/optim/index.js';
import { matmul, mean, randn, square, sub } from '../../src/ops/index.js';

export interface TrainResult {
  losses: number[];
  ms: number;
}

export function trainTinyMoE(steps = 40): TrainResult {
  const t0 = performance.now();
  const g = new Generator(7);
  const layer = new MoELayer(moeConfig({ hiddenSize: 8, router: { numExperts: 4, topK: 2 }, experts: { intermediateSize: 16 } }), {
    dtype: 'f32',
    generator: g,
  });
  const x = randn([32, 8], { generator: g });
  const target = matmul(x, randn([8, 8], { generator: g })).tanh();
  const opt = new AdamW(layer.parameters(), { lr: 0.02, weightDecay: 0 });
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    for (const p of layer.parameters()) p.zeroGrad();
    const loss = mean(square(sub(layer.forward(x), target)));
    losses.push(loss.item());
    loss.backward();
    opt.step();
  }
  return { losses, ms: performance.now() - t0 };
}
