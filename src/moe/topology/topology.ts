// The learned collaboration topology S of one CT-MoE layer, from a raw parameter S_raw:
//   S = softmax( mask_diag( (S_raw + S_rawᵀ) / 2 ) / s_temp , dim=-1 )
// mask_diag puts -inf on the diagonal (no self-loops), so S is row-stochastic with a zero
// diagonal. S is NOT symmetric after the row softmax (rows normalise differently).
// S_raw starts at zeros, so S starts uniform off the diagonal: 1/(N-1).
import type { FloatDType } from '../../backend/types.js';
import type { Tensor } from '../../tensor/tensor.js';
import { zeros } from '../../ops/creation.js';
import { add, div, mul } from '../../ops/elementwise.js';
import { softmax } from '../../ops/softmax.js';
import { transpose } from '../../ops/shape.js';
import { Module, Parameter } from '../../nn/module.js';
import { arrayLike } from '../tensors.js';

export class Topology extends Module {
  /** [N, N] raw adjacency, zeros at init; optimise it in its own group (lr x s_lr_scale, no weight decay). */
  readonly sRaw: Parameter;
  readonly numExperts: number;
  readonly sTemp: number;
  // [N, N] constant: -inf on the diagonal, 0 elsewhere (a plain Tensor: not a parameter)
  private readonly diagMask: Tensor;

  constructor(numExperts: number, options: { sTemp?: number; dtype?: FloatDType } = {}) {
    super();
    if (!(Number.isInteger(numExperts) && numExperts >= 2))
      throw new RangeError(`Topology: numExperts must be an integer >= 2 (got ${numExperts})`);
    const sTemp = options.sTemp ?? 1;
    if (!(Number.isFinite(sTemp) && sTemp > 0)) throw new RangeError(`Topology: sTemp must be a finite number > 0 (got ${sTemp})`);
    const dtype = options.dtype ?? 'f32';
    this.sRaw = new Parameter(zeros([numExperts, numExperts], { dtype }));
    this.numExperts = numExperts;
    this.sTemp = sTemp;
    const m = dtype === 'f64' ? new Float64Array(numExperts * numExperts) : new Float32Array(numExperts * numExperts);
    for (let i = 0; i < numExperts; i++) m[i * numExperts + i] = -Infinity;
    this.diagMask = arrayLike(this.sRaw, m, [numExperts, numExperts]);
  }

  /** S [N, N] (differentiable in S_raw). */
  forward(): Tensor {
    const sym = mul(add(this.sRaw, transpose(this.sRaw)), 0.5);
    const masked = add(sym, this.diagMask);
    return softmax(this.sTemp === 1 ? masked : div(masked, this.sTemp), -1);
  }
}
