// Token-choice routing: logits -> scores -> (biased, group-limited) top-k -> weights.
// One composable function covers Mixtral, Qwen, OLMoE, DeepSeek-V2/V3, GPT-OSS, Granite, Llama-4.
import { noGrad } from '../tensor/autograd.js';
import { type Generator, defaultGenerator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { add, div, mul, pow, sigmoid, abs, where } from '../ops/elementwise.js';
import { gather, scatterAdd } from '../ops/indexing.js';
import { withAutocast } from '../amp/autocast.js';
import { toF32IfHalf } from '../ops/autocast-cast.js';
import { matmul } from '../ops/linalg.js';
import { max, sum } from '../ops/reduce.js';
import { broadcastTo } from '../ops/broadcast.js';
import { reshape } from '../ops/shape.js';
import { softmax } from '../ops/softmax.js';
import { topk } from '../ops/sort.js';
import { shapeToString } from '../tensor/shape.js';
import type { GroupLimitConfig, RouterConfig } from './config.js';
import type { RouterOutput } from './contracts.js';
import { arrayLike, fullLike } from './tensors.js';
import { routeExpertChoice } from './expert-choice.js';
import type { MoeKernels } from '../backend/moe.js';
import { deviceKernels, routerKernels } from './execution/plan.js';
import { routerPass } from './kernel-path/router-pass.js';
import { routeSparseMixer } from './sparsemixer.js';
import { sanitizeLogits } from './logit-guard.js';

export interface RouteOptions {
  /** Jitter applies only in training (default false). */
  training?: boolean;
  /** Random source for the jitter (default: the global generator). */
  generator?: Generator;
  /** [E] aux-loss-free balancing bias, added to the scores for SELECTION only. */
  selectionBias?: Tensor | null;
  /** [E] added to the logits after the router GEMM (and router bias), before everything else; differentiable (CT-MoE routing bias). */
  logitBias?: Tensor | null;
  /** The router pass kernel an MoELayer's execution plan chose (null: the composition); unset: decided from cfg and the logits' backend. */
  routerKernels?: MoeKernels | null;
}

/** The router GEMM (logits = x·Wᵀ [+ b]) followed by routeLogits. x [T, H], weight [E, H], bias [E]. */
export function route(x: Tensor, weight: Tensor, bias: Tensor | null, cfg: RouterConfig, opts: RouteOptions = {}): RouterOutput {
  if (x.ndim !== 2 || weight.ndim !== 2 || weight.shape[1] !== x.shape[1] || weight.shape[0] !== cfg.numExperts) {
    throw new RangeError(
      `route: x ${shapeToString(x.shape)} and weight ${shapeToString(weight.shape)} must be [T, H] and [E=${cfg.numExperts}, H]`,
    );
  }
  let input = x;
  if (opts.training && cfg.jitterEps > 0) {
    const eps = cfg.jitterEps;
    const g = opts.generator ?? defaultGenerator;
    const noise = x.dtype === 'f64' ? new Float64Array(x.size) : new Float32Array(x.size);
    for (let i = 0; i < noise.length; i++) noise[i] = 1 - eps + 2 * eps * g.uniform();
    input = mul(x, arrayLike(x, noise, x.shape));
  }
  // the router GEMM and routing run in f32 whatever the model's dtype or autocast (as the seeds route in fp32)
  let logits = withAutocast(null, () => matmul(toF32IfHalf(input), toF32IfHalf(weight), { transB: true }));
  if (cfg.routerBias) {
    if (!bias) throw new Error('route: router.routerBias is true but no bias tensor was given');
    logits = add(logits, toF32IfHalf(bias));
  }
  if (opts.logitBias) logits = add(logits, opts.logitBias);
  return routeLogits(logits, cfg, opts);
}

/**
 * Everything after the router GEMM. logits [T, E]. For router.kind 'expert-choice' this is
 * routeExpertChoice (the output then lives on a [T, E] slot grid with -1 for empty slots).
 * Softmax routers without selection bias / group limit run as the backend's router pass kernel
 * where the execution plan (execution/plan.ts) says so (kernel-path/router-pass.ts); the
 * composition below is the spec for that path.
 */
export function routeLogits(logits: Tensor, cfg: RouterConfig, opts: RouteOptions = {}): RouterOutput {
  if (cfg.kind === 'expert-choice') {
    if (opts.selectionBias) throw new Error("routeLogits: a selectionBias tensor has no meaning for router.kind 'expert-choice'");
    return routeExpertChoice(logits, cfg);
  }
  if (cfg.sanitizeLogits) logits = sanitizeLogits(logits);
  if (cfg.sparseMixer) return routeSparseMixer(logits, cfg, opts);
  const E = cfg.numExperts;
  const K = cfg.topK;
  if (logits.ndim !== 2 || logits.shape[1] !== E) {
    throw new RangeError(`routeLogits: logits must be [T, ${E}] (got ${shapeToString(logits.shape)})`);
  }
  const T = logits.shape[0]!;
  if (opts.selectionBias && !cfg.selectionBias) {
    throw new Error(
      'routeLogits: a selectionBias tensor was given but router.selectionBias is null (set it to enable aux-loss-free balancing)',
    );
  }
  const kernels = opts.routerKernels !== undefined ? opts.routerKernels : routerKernels(logits, cfg, opts.selectionBias ?? null);
  if (kernels) return routerPass(kernels, logits, cfg);
  let scores = cfg.scoreFunc === 'softmax' ? softmax(logits, -1) : sigmoid(logits);
  if (cfg.scoreOffset !== 0) scores = add(scores, cfg.scoreOffset);

  let groupScores: Tensor | undefined;
  const topkIds = noGrad(() => {
    if (cfg.uniformAssignment) {
      const ids = new Int32Array(T * K);
      for (let i = 0; i < ids.length; i++) ids[i] = i % E;
      return arrayLike(logits, ids, [T, K]);
    }
    if (cfg.selectOn === 'logits') return topk(logits, K, -1).indices;
    let sel = scores;
    if (opts.selectionBias) sel = add(sel, opts.selectionBias.to(sel.dtype));
    if (cfg.groupLimit) ({ masked: sel, groupScores } = limitGroups(sel, cfg.groupLimit));
    return topk(sel, K, -1).indices;
  });

  // weights come from the unbiased scores (or the score function over the chosen logits)
  let w: Tensor;
  if (cfg.selectOn === 'logits') {
    const chosen = gather(logits, 1, topkIds);
    w = cfg.scoreFunc === 'softmax' ? softmax(chosen, -1) : sigmoid(chosen);
  } else {
    w = gather(scores, 1, topkIds);
  }
  if (cfg.renormalize === 'sum') w = div(w, add(sum(w, -1, true), 1e-20));
  else if (cfg.renormalize === 'pnorm') w = div(w, pow(sum(pow(abs(w), cfg.renormP), -1, true), 1 / cfg.renormP));
  if (cfg.scalingFactor !== 1) w = mul(w, cfg.scalingFactor);

  return { logits, scores, topkIds, topkWeights: w, counts: expertCounts(topkIds, E), ...(groupScores ? { groupScores } : {}) };
}

/**
 * Keep the topkGroups best groups of experts per token, set the others to 0 or -inf.
 * Group score: sum of the top-2 (fewer if a group is smaller) or the max of the selection scores.
 */
export function maskGroups(sel: Tensor, g: GroupLimitConfig): Tensor {
  return limitGroups(sel, g).masked;
}

/** maskGroups, also handing out the group scores [T, G] it ranked the groups by. */
export function limitGroups(sel: Tensor, g: GroupLimitConfig): { masked: Tensor; groupScores: Tensor } {
  const [T, E] = sel.shape as [number, number];
  const n = E / g.numGroups;
  const grouped = reshape(sel, [T, g.numGroups, n]);
  const groupScores = g.groupScore === 'max' ? max(grouped, -1) : sum(topk(grouped, Math.min(2, n), -1).values, -1);
  const keep = topk(groupScores, g.topkGroups, -1).indices;
  const groupMask = scatterAdd(fullLike(sel, [T, g.numGroups], 0), 1, keep, fullLike(sel, [T, g.topkGroups], 1));
  const mask = reshape(broadcastTo(reshape(groupMask, [T, g.numGroups, 1]), [T, g.numGroups, n]), [T, E]);
  return { masked: where(mask, sel, g.maskValue === 'zero' ? 0 : -Infinity), groupScores };
}

/** Histogram of expert ids: [E] i32 (counted on the device where the backend cannot read synchronously). */
export function expertCounts(ids: Tensor, numExperts: number): Tensor {
  const dev = deviceKernels(ids.backend);
  if (dev) return new Tensor(dev.counts(ids.storage, numExperts), [numExperts], ids.backend);
  const src = ids.dataSync();
  const c = new Int32Array(numExperts);
  for (let i = 0; i < src.length; i++) {
    const e = src[i]!;
    if (e < 0 || e >= numExperts) throw new RangeError(`expertCounts: expert id ${e} is outside [0, ${numExperts})`);
    c[e]!++;
  }
  return arrayLike(ids, c);
}
