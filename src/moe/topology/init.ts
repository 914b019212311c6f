// The CT-MoE seed's initialisation of an MoELayer's router (MoELayerOptions.init 'ct-moe'; the
// experts' randn / sqrt(fan_in) is ExpertBankOptions.init 'normal'). The seed's router is an
// nn.Linear (kaiming-uniform at construction) that its GPT init then redraws from N(0, 0.02):
// both draws are taken, in that order, so a model's generator stream (the experts' draws after
// the router, dropout later) is the one the ablation drew before its block joined MoELayer.
import type { FloatDType } from '../../backend/types.js';
import type { Generator } from '../../tensor/random.js';
import { zeros } from '../../ops/creation.js';
import { Parameter } from '../../nn/module.js';
import { kaimingUniform_, normal_ } from '../../nn/init.js';

/** [E, H] router weight: kaiming-uniform (a = sqrt(5)) drawn, then overwritten by N(0, 0.02). */
export function ctMoeRouterWeight(numExperts: number, hiddenSize: number, dtype: FloatDType, gen: Generator): Parameter {
  const w = kaimingUniform_(new Parameter(zeros([numExperts, hiddenSize], { dtype })), Math.sqrt(5), gen);
  return normal_(w, 0, 0.02, gen);
}
