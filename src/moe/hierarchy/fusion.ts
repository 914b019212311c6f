// Fusion of the level outputs into one hidden state. Any Module with this forward plugs in
// (HierarchicalMoE's `fusion` option); fusion dropout is applied by the model afterwards.
import type { FloatDType } from '../../backend/types.js';
import { fromArray, zeros } from '../../ops/creation.js';
import { add, mul } from '../../ops/elementwise.js';
import { softmax } from '../../ops/softmax.js';
import { Module, Parameter } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';

export interface FusionInput {
  /** Hidden state of each enabled level, in level order, all the same shape. */
  hiddens: readonly Tensor[];
  /** Names of those levels. */
  levelNames: readonly string[];
  /** Config positions of those levels (disabled levels count), to index per-level parameters. */
  levelIndices: readonly number[];
}

export interface FusionResult {
  hidden: Tensor;
  /** [L] weights of the levels, when the fusion has such a notion. */
  weights: Tensor | null;
}

/** A pluggable fusion: a Module (so its parameters train with the model) with this forward. */
export interface HierarchyFusion extends Module {
  forward(input: FusionInput): FusionResult;
}

/** Σ_l w_l · h_l for a [L] weight tensor (w_l broadcasts over the hidden). */
export function weightedSum(hiddens: readonly Tensor[], weights: Tensor): Tensor {
  let out: Tensor | null = null;
  hiddens.forEach((h, l) => {
    const term = mul(h, weights.slice(0, l, l + 1));
    out = out ? add(out, term) : term;
  });
  if (!out) throw new RangeError('fusion: no level outputs to fuse');
  return out;
}

/**
 * celmoe-vp's default: one learned logit per configured level (init 0, so uniform at start);
 * fused = Σ_l softmax(logits[enabled])_l · h_l. Disabled levels' logits are left out of the softmax.
 */
export class LearnedFusion extends Module {
  readonly logits: Parameter;

  constructor(
    readonly numLevels: number,
    options: { dtype?: FloatDType } = {},
  ) {
    super();
    if (!(Number.isInteger(numLevels) && numLevels >= 1))
      throw new RangeError(`LearnedFusion: numLevels must be an integer >= 1 (got ${numLevels})`);
    this.logits = new Parameter(zeros([numLevels], { dtype: options.dtype ?? 'f32' }));
  }

  forward(input: FusionInput): FusionResult {
    const bad = input.levelIndices.find((i) => !(Number.isInteger(i) && i >= 0 && i < this.numLevels));
    if (bad !== undefined) throw new RangeError(`LearnedFusion: level index ${bad} is outside [0, ${this.numLevels})`);
    const picked =
      input.levelIndices.length === this.numLevels && input.levelIndices.every((v, i) => v === i)
        ? this.logits
        : this.logits.indexSelect(0, fromArray(Int32Array.from(input.levelIndices), [input.levelIndices.length]));
    const weights = softmax(picked, 0);
    return { hidden: weightedSum(input.hiddens, weights.to(input.hiddens[0]!.dtype)), weights };
  }
}

/** Used when useLearnedFusion is false: the plain mean of the enabled levels (LearnedFusion frozen at init). */
export class MeanFusion extends Module {
  forward(input: FusionInput): FusionResult {
    const L = input.hiddens.length;
    if (L === 0) throw new RangeError('MeanFusion: no level outputs to fuse');
    const dtype = input.hiddens[0]!.dtype === 'f64' ? 'f64' : 'f32';
    const weights = zeros([L], { dtype }).add(1 / L);
    return { hidden: weightedSum(input.hiddens, weights), weights };
  }
}
