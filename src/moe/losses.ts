// Router auxiliary losses: load balancing (both conventions, three granularities) and z-loss.
import type { Tensor } from '../tensor/tensor.js';
import { shapeToString } from '../tensor/shape.js';
import { div, mul, square } from '../ops/elementwise.js';
import { logsumexp, sum } from '../ops/reduce.js';
import { reshape } from '../ops/shape.js';
import type { LbConvention, LossConfig } from './config.js';
import { arrayLike } from './tensors.js';

export interface LoadBalancingOptions {
  /** 'top-k': E·Σ f_e·P_e (= K at balance, HF); 'one': the same / K (= 1 at balance, OLMo-core). */
  convention: LbConvention;
  /** 'instance': the loss per sequence of the batch, averaged (needs batchSize). Default 'local-batch'. */
  granularity?: 'local-batch' | 'instance';
  /** Sequences in the batch (T = batchSize · seqLen); only for 'instance'. */
  batchSize?: number;
  /** [T] 1 for real tokens, 0 for padding: padding counts neither in f nor in P. */
  mask?: Tensor | null;
  /** Global-batch: f_e given from counts accumulated over micro-batches (slots per token, Σ f = K). */
  frequencies?: Float64Array | null;
  /** Divide scores by their per-token sum first (OLMo-core does so for sigmoid routers). */
  normalizeScores?: boolean;
}

/**
 * Load-balancing loss  c · E · Σ_e f_e · P_e  with f_e = (slots routed to e) / tokens and
 * P_e = mean score of e over tokens; c = 1 ('top-k') or 1/K ('one'). Differentiable in scores.
 * scores [T, E], topkIds [T, K] i32.
 */
export function loadBalancingLoss(scores: Tensor, topkIds: Tensor, opts: LoadBalancingOptions): Tensor {
  if (scores.ndim !== 2 || topkIds.ndim !== 2 || topkIds.shape[0] !== scores.shape[0]) {
    throw new RangeError(
      `loadBalancingLoss: scores ${shapeToString(scores.shape)} and topkIds ${shapeToString(topkIds.shape)} must be [T, E] and [T, K]`,
    );
  }
  const [T, E] = scores.shape as [number, number];
  const K = topkIds.shape[1]!;
  const instance = (opts.granularity ?? 'local-batch') === 'instance';
  const B = instance ? (opts.batchSize ?? 0) : 1;
  if (!Number.isInteger(B) || B < 1 || T % B !== 0) {
    throw new RangeError(
      `loadBalancingLoss: batchSize = ${opts.batchSize} must be a positive divisor of T = ${T} for 'instance' granularity`,
    );
  }
  if (opts.frequencies && (instance || opts.frequencies.length !== E)) {
    throw new RangeError(
      `loadBalancingLoss: frequencies need 'local-batch' granularity and length E = ${E} (got ${opts.frequencies.length})`,
    );
  }
  const S = T / B;
  const m = maskArray(opts.mask ?? null, T);
  const ids = topkIds.dataSync();

  // per-instance real-token counts and slot counts (constants: no gradient flows through f)
  const tokens = new Float64Array(B);
  const counts = new Float64Array(B * E);
  for (let t = 0; t < T; t++) {
    if (m[t] === 0) continue;
    const b = Math.floor(t / S);
    tokens[b]!++;
    for (let k = 0; k < K; k++) counts[b * E + ids[t * K + k]!]!++;
  }
  const live = tokens.reduce((p, n) => p + (n > 0 ? 1 : 0), 0);
  const c = (opts.convention === 'one' ? 1 / K : 1) * E;
  // L = Σ_b Σ_e coef[b,e] · Σ_{t in b} mask_t·scores[t,e],  coef = c·f[b,e] / (tokens_b · live)
  const coef = new Float64Array(B * E);
  for (let b = 0; b < B; b++) {
    if (tokens[b] === 0) continue;
    for (let e = 0; e < E; e++) {
      const f = opts.frequencies ? opts.frequencies[e]! : counts[b * E + e]! / tokens[b]!;
      coef[b * E + e] = (c * f) / (tokens[b]! * live);
    }
  }
  let p = opts.normalizeScores ? div(scores, sum(scores, -1, true)) : scores;
  if (opts.mask) p = mul(p, reshape(opts.mask.to(p.dtype), [T, 1]));
  const perInstance = sum(reshape(p, [B, S, E]), 1); // [B, E]
  return sum(mul(perInstance, constant(coef, [B, E], scores)));
}

/** ST-MoE router z-loss: mean over (real) tokens of logsumexp(logits)². logits [T, E]. */
export function zLoss(logits: Tensor, mask: Tensor | null = null): Tensor {
  const T = logits.shape[0]!;
  const z = square(logsumexp(logits, -1));
  if (!mask) return div(sum(z), Math.max(T, 1));
  const m = maskArray(mask, T);
  const n = m.reduce((p, v) => p + v, 0);
  return div(sum(mul(z, mask.to(z.dtype))), Math.max(n, 1));
}

/** The weights a layer applies to its losses (divided by the number of MoE layers when asked). */
export function auxLossWeights(cfg: LossConfig, numLayers = 1): { lb: number; z: number } {
  const d = cfg.scaleByNumLayers ? numLayers : 1;
  return { lb: cfg.lbWeight / d, z: cfg.zLossWeight / d };
}

/**
 * Global-batch LB (Qwen, Megatron 'global_aux_loss'): slot counts accumulate over the
 * micro-batches of a step; each micro-batch's loss uses the running f_e with its own P_e.
 * Call `reset()` when the optimiser steps.
 */
export class LoadBalanceAccumulator {
  readonly counts: Float64Array;
  tokens = 0;

  constructor(readonly numExperts: number) {
    this.counts = new Float64Array(numExperts);
  }

  /** Add one micro-batch: topkIds [T, K] and an optional [T] padding mask. */
  add(topkIds: Tensor, mask: Tensor | null = null): void {
    const [T, K] = topkIds.shape as [number, number];
    const m = maskArray(mask, T);
    const ids = topkIds.dataSync();
    for (let t = 0; t < T; t++) {
      if (m[t] === 0) continue;
      this.tokens++;
      for (let k = 0; k < K; k++) this.counts[ids[t * K + k]!]!++;
    }
  }

  /** Add one unmasked micro-batch given as its [E] slot counts and its token count. */
  addCounts(counts: ArrayLike<number>, tokens: number): void {
    for (let e = 0; e < this.numExperts; e++) this.counts[e]! += counts[e]!;
    this.tokens += tokens;
  }

  /** f_e = accumulated slots of e / accumulated tokens. */
  frequencies(): Float64Array {
    return this.counts.map((c) => (this.tokens > 0 ? c / this.tokens : 0));
  }

  reset(): void {
    this.counts.fill(0);
    this.tokens = 0;
  }
}

function maskArray(mask: Tensor | null, T: number): Float64Array {
  if (!mask) return new Float64Array(T).fill(1);
  if (mask.size !== T) throw new RangeError(`mask must have T = ${T} elements (got shape ${shapeToString(mask.shape)})`);
  return Float64Array.from(mask.dataSync(), (v) => (v !== 0 ? 1 : 0));
}

function constant(values: Float64Array, shape: number[], like: Tensor): Tensor {
  return arrayLike(like, like.dtype === 'f64' ? values : Float32Array.from(values), shape);
}
