// Everything after the router GEMM of a softmax top-k token-choice router as one native pass
// (native/moe/router.c): scores, top-k ids and weights (renormalised, scaled), logsumexp, slot
// counts, per-expert score sums and the mean score entropy. topkWeights is ONE autograd node
// on the logits; scores is a softmax node on the logits (free when nothing differentiates
// through it). The saved state also serves the fused aux loss (router-aux-loss.ts) and the
// layer's metrics. src/moe/router.ts's composition stays the spec and the fallback;
// test/moe-fused-router.test.ts holds the two together.
import type { RouterConfig } from '../config.js';
import type { RouterOutput } from '../contracts.js';
import { floatArrayLike, isFloatArray } from '../../backend/types.js';
import { Tensor, makeOutput } from '../../tensor/tensor.js';
import { cast } from '../../ops/cast.js';
import { type FloatArray, fusedMoeEnabled } from './native-moe.js';
import { type RouterNativeKernels, routerKernels } from './native-router.js';

export interface FusedRouterState {
  readonly kernels: RouterNativeKernels;
  readonly logits: Tensor;
  readonly numTokens: number;
  readonly numExperts: number;
  readonly topK: number;
  /** The weights' 'sum' renormalisation and scaling factor. */
  readonly renorm: boolean;
  readonly scale: number;
  readonly scores: FloatArray;
  readonly ids: Int32Array;
  readonly lse: FloatArray;
  readonly counts: Int32Array;
  /** [E] Σ_t scores[t, e]. */
  readonly scoreSums: Float64Array;
  /** Mean over tokens of the entropy of the scores (metrics.ts meanRowEntropy). */
  readonly entropy: number;
  /** Mean over tokens of logsumexp(logits)², the unweighted z-loss. */
  readonly zLoss: number;
}

const states = new WeakMap<RouterOutput, FusedRouterState>();

/** The fused forward's saved state, when r came from fusedRouteLogits. */
export function fusedRouterState(r: RouterOutput): FusedRouterState | null {
  return states.get(r) ?? null;
}

/** The kernels when the fused router covers this configuration on t's backend and dtype (t: the logits, or the router's input), else null. */
export function fusedRouterKernels(t: Tensor, cfg: RouterConfig, selectionBias: Tensor | null): RouterNativeKernels | null {
  if (!fusedMoeEnabled() || t.backend.name !== 'native' || !isFloatArray(t.storage)) return null;
  if (cfg.kind !== 'token-choice' || cfg.scoreFunc !== 'softmax' || cfg.selectOn !== 'scores') return null;
  if (selectionBias || cfg.groupLimit || cfg.sparseMixer || cfg.sanitizeLogits || cfg.uniformAssignment || (cfg.renormalize !== 'none' && cfg.renormalize !== 'sum')) return null;
  return routerKernels();
}

/** routeLogits on the fused path, or null when the configuration / backend / dtype is not covered. */
export function fusedRouteLogits(logits: Tensor, cfg: RouterConfig, selectionBias: Tensor | null): RouterOutput | null {
  const kernels = fusedRouterKernels(logits, cfg, selectionBias);
  if (!kernels) return null;
  const x = logits.storage as FloatArray;

  const [T, E] = logits.shape as [number, number];
  const K = cfg.topK;
  const renorm = cfg.renormalize === 'sum';
  const scale = cfg.scalingFactor;
  const like = (n: number): FloatArray => floatArrayLike(x, n);
  const scores = like(T * E);
  const ids = new Int32Array(T * K);
  const weights = like(T * K);
  const lse = like(T);
  const counts = new Int32Array(E);
  const sums = new Float64Array(E + 2);
  kernels.routerForward(x, T, E, K, renorm, scale, scores, ids, weights, lse, counts, sums);

  const b = logits.backend;
  const topkWeights = makeOutput(b, weights, [T, K], {
    name: 'fusedRouter',
    inputs: [logits],
    backward: (g) => {
      const dlogits = like(T * E);
      kernels.routerBackward(scores, lse, ids, cast(g, logits.dtype).storage as FloatArray, T, E, K, renorm, scale, null, 0, dlogits);
      return [new Tensor(dlogits, logits.shape, b)];
    },
  });
  const scoresT = makeOutput(b, scores, [T, E], {
    name: 'softmax',
    inputs: [logits],
    backward: (g) => [new Tensor(b.softmaxBackward(scores, g.storage, T, E, false), logits.shape, b)],
  });
  const r: RouterOutput = {
    logits,
    scores: scoresT,
    topkIds: new Tensor(ids, [T, K], b),
    topkWeights,
    counts: new Tensor(counts, [E], b),
  };
  states.set(r, {
    kernels,
    logits,
    numTokens: T,
    numExperts: E,
    topK: K,
    renorm,
    scale,
    scores,
    ids,
    lse,
    counts,
    scoreSums: sums.subarray(0, E),
    entropy: T > 0 ? sums[E]! / T : 0,
    zLoss: sums[E + 1]! / Math.max(T, 1),
  });
  return r;
}
