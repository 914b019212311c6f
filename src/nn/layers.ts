// Basic layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout, GELU.
// Each takes its dtype (f32 by default; f64 for exact tests) and an optional Generator for init.
import type { FloatDType } from '../backend/types.js';
import { autocastLow } from '../ops/autocast-cast.js';
import { zeros } from '../ops/creation.js';
import { dropout } from '../ops/dropout.js';
import { gelu } from '../ops/elementwise.js';
import { embedding } from '../ops/indexing.js';
import { layerNorm, rmsNorm } from '../ops/norm.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { shapeToString } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { kaimingUniform_, normal_, ones_, uniform_ } from './init.js';
import { Module, Parameter } from './module.js';

export interface ParamOptions {
  dtype?: FloatDType;
  /** Generator for the default init (the default generator if omitted). */
  generator?: Generator;
}

function requirePositiveInt(op: string, name: string, v: number): void {
  if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`${op}: ${name} must be an integer >= 1 (got ${v})`);
}

function param(shape: number[], dtype: FloatDType = 'f32'): Parameter {
  return new Parameter(zeros(shape, { dtype }));
}

export interface LinearOptions extends ParamOptions {
  bias?: boolean;
}

/** y = x Wᵀ + b with W [out, in] (PyTorch layout). Init as PyTorch: kaiming_uniform(a=√5), bias U(±1/√in). */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LinearOptions = {},
  ) {
    super();
    requirePositiveInt('Linear', 'inFeatures', inFeatures);
    requirePositiveInt('Linear', 'outFeatures', outFeatures);
    const gen = options.generator ?? defaultGenerator;
    this.weight = kaimingUniform_(param([outFeatures, inFeatures], options.dtype), Math.sqrt(5), gen);
    const bound = 1 / Math.sqrt(inFeatures);
    this.bias = (options.bias ?? true) ? uniform_(param([outFeatures], options.dtype), -bound, bound, gen) : null;
  }

  forward(x: Tensor): Tensor {
    if (x.shape[x.ndim - 1] !== this.inFeatures) {
      throw new RangeError(
        `Linear(${this.inFeatures}, ${this.outFeatures}): input's last axis must be ${this.inFeatures} (got shape ${shapeToString(x.shape)})`,
      );
    }
    const y = x.matmul(this.weight, { transB: true });
    return this.bias ? y.add(autocastLow(this.bias)) : y; // under autocast the bias joins the GEMM's dtype
  }
}

/** Lookup table weight [num, dim]; init N(0, 1) as PyTorch. */
export class Embedding extends Module {
  readonly weight: Parameter;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    options: ParamOptions = {},
  ) {
    super();
    requirePositiveInt('Embedding', 'numEmbeddings', numEmbeddings);
    requirePositiveInt('Embedding', 'embeddingDim', embeddingDim);
    this.weight = normal_(param([numEmbeddings, embeddingDim], options.dtype), 0, 1, options.generator ?? defaultGenerator);
  }

  /** i32 ids of any shape -> [...ids.shape, dim]. */
  forward(ids: Tensor): Tensor {
    if (ids.dtype !== 'i32') throw new TypeError(`Embedding: ids must have dtype i32 (got ${ids.dtype})`);
    return embedding(this.weight, ids);
  }
}

export interface LayerNormOptions {
  eps?: number;
  elementwiseAffine?: boolean;
  /** Learn a bias (only with elementwiseAffine; default true). */
  bias?: boolean;
  dtype?: FloatDType;
}

/** LayerNorm over the last axis; weight 1, bias 0. */
export class LayerNorm extends Module {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly eps: number;

  constructor(
    readonly dim: number,
    options: LayerNormOptions = {},
  ) {
    super();
    requirePositiveInt('LayerNorm', 'dim', dim);
    this.eps = options.eps ?? 1e-5;
    const affine = options.elementwiseAffine ?? true;
    this.weight = affine ? ones_(param([dim], options.dtype)) : null;
    this.bias = affine && (options.bias ?? true) ? param([dim], options.dtype) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export interface RMSNormOptions {
  eps?: number;
  elementwiseAffine?: boolean;
  dtype?: FloatDType;
}

/** x / sqrt(mean(x²) + eps) * weight over the last axis; weight 1. */
export class RMSNorm extends Module {
  readonly weight: Parameter | null;
  readonly eps: number;

  constructor(
    readonly dim: number,
    options: RMSNormOptions = {},
  ) {
    super();
    requirePositiveInt('RMSNorm', 'dim', dim);
    this.eps = options.eps ?? 1e-6;
    this.weight = (options.elementwiseAffine ?? true) ? ones_(param([dim], options.dtype)) : null;
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** Inverted dropout while training (identity in eval or at p = 0); draws from the default generator. */
export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1) (got ${p})`);
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}

/** GELU activation (exact erf form by default, as nn.GELU). */
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }

  forward(x: Tensor): Tensor {
    return gelu(x, this.approximate);
  }
}
