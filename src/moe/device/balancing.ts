// Load balancing on the 'device' path, with nothing read on the host: the LB loss with a padding
// mask, per sequence ('instance') or with global-batch frequencies, the masked z-loss, the
// global-batch accumulator and the aux-loss-free bias step, as engine ops on device tensors.
// Each equals its host twin (../losses.ts loadBalancingLoss / zLoss / LoadBalanceAccumulator,
// ../balancing.ts biasUpdateDelta); the slot counts come from an indexAdd over the top-k ids.
import { Tensor } from '../../tensor/tensor.js';
import { abs, add, div, maximum, minimum, mul, sign, square, sub } from '../../ops/elementwise.js';
import { indexAdd } from '../../ops/indexing.js';
import { logsumexp, mean, sum } from '../../ops/reduce.js';
import { reshape } from '../../ops/shape.js';
import type { LbConvention, SelectionBiasConfig } from '../config.js';
import { fullLike } from '../tensors.js';

/** [T] f32: 1 where mask is non-zero (a real token), else 0; all ones without a mask. */
function realTokens(like: Tensor, T: number, mask: Tensor | null): Tensor {
  if (!mask) return fullLike(like, [T], 1, 'f32');
  if (mask.size !== T) throw new RangeError(`mask must have T = ${T} elements (got ${mask.size})`);
  return sign(abs(reshape(mask, [T]).to('f32')));
}

/**
 * [B, E] f32 slots per (sequence, expert) of the real tokens: topkIds [T, K] i32, sequences of
 * T / B tokens, real [T] 0/1.
 */
function slotCounts(topkIds: Tensor, real: Tensor, B: number, E: number): Tensor {
  const [T, K] = topkIds.shape as [number, number];
  const S = T / B;
  // slot (t, k) adds real_t at b(t)·E + id
  const base = Int32Array.from({ length: T * K }, (_, i) => Math.floor(Math.floor(i / K) / S) * E);
  const at = add(reshape(topkIds, [T * K]), new Tensor(topkIds.backend.fromArray(base), [T * K], topkIds.backend));
  const weight = reshape(mul(reshape(real, [T, 1]), fullLike(real, [T, K], 1)), [T * K]);
  return reshape(indexAdd(fullLike(real, [B * E], 0), 0, at, weight), [B, E]);
}

/** Global-batch LB's running counts on the device (LoadBalanceAccumulator's twin): reset when the optimiser steps. */
export class DeviceLoadBalanceAccumulator {
  /** [E] f32 slots of the real tokens since the last reset, or null (none yet). */
  private counts: Tensor | null = null;
  /** Scalar f32: real tokens since the last reset. */
  private tokens: Tensor | null = null;

  add(counts: Tensor, tokens: Tensor): void {
    this.counts = this.counts ? add(this.counts, counts) : counts;
    this.tokens = this.tokens ? add(this.tokens, tokens) : tokens;
  }

  /** [E] f_e = accumulated slots of e / accumulated tokens (0 before any token). */
  frequencies(): Tensor {
    if (!this.counts || !this.tokens) throw new Error('DeviceLoadBalanceAccumulator: frequencies before any add()');
    return div(this.counts, maximum(this.tokens, 1));
  }

  reset(): void {
    this.counts = this.tokens = null;
  }
}

export interface DeviceLoadBalancingOptions {
  convention: LbConvention;
  /** Sequences in the batch for 'instance' granularity; 1 for 'local-batch' and 'global-batch'. */
  batchSize: number;
  /** [T] non-zero for real tokens: padding counts neither in f nor in P. */
  mask: Tensor | null;
  /** Global-batch: this micro-batch's counts go in first, then f_e comes from it. */
  accumulator: DeviceLoadBalanceAccumulator | null;
  normalizeScores: boolean;
}

/**
 * loadBalancingLoss on device tensors: Σ_b Σ_e coef[b,e] · Σ_{t in b} mask_t·p[t,e] with
 * coef = c·f[b,e] / (tokens_b · live), f = counts / tokens_b (or the accumulator's), live = the
 * sequences with a real token; c = E (top-k) or E/K (one). scores [T, E], topkIds [T, K] i32.
 */
export function deviceLoadBalancingLoss(scores: Tensor, topkIds: Tensor, opts: DeviceLoadBalancingOptions): Tensor {
  const [T, E] = scores.shape as [number, number];
  const K = topkIds.shape[1]!;
  const B = opts.batchSize;
  if (!Number.isInteger(B) || B < 1 || T % B !== 0)
    throw new RangeError(`loadBalancingLoss: batchSize = ${B} must be a positive divisor of T = ${T} for 'instance' granularity`);
  if (opts.accumulator && B !== 1) throw new RangeError("loadBalancingLoss: global-batch frequencies need batchSize 1 (not 'instance')");
  const real = realTokens(scores, T, opts.mask);
  const counts = slotCounts(topkIds, real, B, E); // [B, E]
  const tokens = reshape(sum(reshape(real, [B, T / B]), 1), [B, 1]);
  let f: Tensor;
  if (opts.accumulator) {
    opts.accumulator.add(reshape(counts, [E]), sum(real));
    f = reshape(opts.accumulator.frequencies(), [1, E]);
  } else f = div(counts, maximum(tokens, 1));
  const present = minimum(tokens, 1); // 1 for a sequence with a real token, else 0
  const live = maximum(sum(present), 1);
  const c = (opts.convention === 'one' ? 1 / K : 1) * E;
  const coef = div(mul(mul(f, present), c), mul(maximum(tokens, 1), live));
  let p = opts.normalizeScores ? div(scores, sum(scores, -1, true)) : scores;
  if (opts.mask) p = mul(p, reshape(opts.mask.to(p.dtype), [T, 1]));
  return sum(mul(sum(reshape(p, [B, T / B, E]), 1), coef.to(p.dtype)));
}

/** zLoss on device tensors: mean over real tokens of logsumexp(logits)². */
export function deviceZLoss(logits: Tensor, mask: Tensor | null): Tensor {
  const T = logits.shape[0]!;
  const z = square(logsumexp(logits, -1));
  if (!mask) return div(sum(z), Math.max(T, 1));
  return div(sum(mul(z, reshape(mask, [T]).to(z.dtype))), maximum(sum(realTokens(logits, T, mask)), 1).to(z.dtype));
}

/** biasUpdateDelta on a device [E] counts tensor: γ·sign(mean(c) − c), minus its mean for 'sign-centered'. */
export function deviceBiasUpdateDelta(counts: Tensor, gamma: number, rule: SelectionBiasConfig['rule']): Tensor {
  const d = mul(sign(sub(mean(counts), counts)), gamma);
  return rule === 'sign-centered' ? sub(d, mean(d)) : d;
}
