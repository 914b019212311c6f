// Causal multi-head self-attention (nanoGPT's CausalSelfAttention).
import type { FloatDType } from '../backend/types.js';
import { scaledDotProductAttention } from '../ops/attention.js';
import { dropout } from '../ops/dropout.js';
import { where } from '../ops/elementwise.js';
import { shapeToString } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { Dropout, Linear } from './layers.js';
import { Module } from './module.js';

export interface CausalSelfAttentionConfig {
  dModel: number;
  nHead: number;
  /** Dropout on the attention weights and after the output projection (default 0). */
  dropout?: number;
  /** Biases in the qkv and output projections (default true). */
  bias?: boolean;
  dtype?: FloatDType;
  /**
   * 'auto' (default): the fused kernel unless attention dropout is active (training, p > 0),
   * which needs the attention weights and so takes the composed path. 'fused' / 'composed'
   * force one path (tests; 'fused' ignores attention dropout).
   */
  impl?: 'auto' | 'fused' | 'composed';
}

export class CausalSelfAttention extends Module {
  /** Packed q, k, v projection: D -> 3D. */
  readonly qkv: Linear;
  /** Output projection: D -> D. */
  readonly proj: Linear;
  readonly residDropout: Dropout;
  readonly dModel: number;
  readonly nHead: number;
  readonly headDim: number;
  readonly attnDropout: number;
  impl: 'auto' | 'fused' | 'composed';
  // [T, T] i32 lower-triangular masks by T (a Map, so the discovery walk ignores it)
  private readonly masks = new Map<number, Tensor>();

  constructor(config: CausalSelfAttentionConfig) {
    super();
    const { dModel, nHead, dropout: p = 0, bias = true } = config;
    for (const [k, v] of [
      ['dModel', dModel],
      ['nHead', nHead],
    ] as const) {
      if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`CausalSelfAttention: ${k} must be an integer >= 1 (got ${v})`);
    }
    if (dModel % nHead !== 0) {
      throw new RangeError(`CausalSelfAttention: dModel (${dModel}) must be divisible by nHead (${nHead})`);
    }
    if (!(p >= 0 && p < 1)) throw new RangeError(`CausalSelfAttention: dropout must be in [0, 1) (got ${p})`);
    this.qkv = new Linear(dModel, 3 * dModel, { bias, dtype: config.dtype });
    this.proj = new Linear(dModel, dModel, { bias, dtype: config.dtype });
    this.residDropout = new Dropout(p);
    this.dModel = dModel;
    this.nHead = nHead;
    this.headDim = dModel / nHead;
    this.attnDropout = p;
    this.impl = config.impl ?? 'auto';
  }

  /** x [B, T, D] -> [B, T, D]. */
  forward(x: Tensor): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.dModel) {
      throw new RangeError(`CausalSelfAttention: input must be [B, T, ${this.dModel}] (got ${shapeToString(x.shape)})`);
    }
    const [B, T] = x.shape as [number, number, number];
    const D = this.dModel;
    const H = this.nHead;
    const Dh = this.headDim;
    // [B, T, 3D] -> three [B, T, D] -> [B, H, T, Dh]
    const heads = (t: Tensor) => t.reshape([B, T, H, Dh]).permute([0, 2, 1, 3]);
    const [q, k, v] = this.qkv.forward(x).split(D, 2).map(heads) as [Tensor, Tensor, Tensor];
    const dropoutActive = this.training && this.attnDropout > 0;
    const composed = this.impl === 'composed' || (this.impl === 'auto' && dropoutActive);
    const y = composed ? this.attendComposed(q, k, v) : scaledDotProductAttention(q, k, v, { causal: true });
    const merged = y.permute([0, 2, 1, 3]).reshape([B, T, D]);
    return this.residDropout.forward(this.proj.forward(merged));
  }

  /** softmax(q kᵀ / √Dh with future positions at -inf), attention dropout, @ v. */
  private attendComposed(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const T = q.shape[2]!;
    const scores = q.matmul(k, { transB: true }).mul(1 / Math.sqrt(this.headDim));
    const masked = where(this.causalMask(T, q), scores, -Infinity);
    const att = dropout(masked.softmax(-1), this.attnDropout, this.training);
    return att.matmul(v);
  }

  private causalMask(T: number, like: Tensor): Tensor {
    let m = this.masks.get(T);
    if (!m || m.backend !== like.backend) {
      const a = new Int32Array(T * T);
      for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) a[i * T + j] = 1;
      m = new Tensor(like.backend.fromArray(a), [T, T], like.backend);
      this.masks.set(T, m);
    }
    return m;
  }
}
