// Everything after the router GEMM of a softmax top-k token-choice router as the backend's
// router pass kernel (MoeKernels.routerForward): scores, top-k ids and weights (renormalised,
// scaled), logsumexp, slot counts, per-expert score sums and the mean score entropy.
// topkWeights is ONE autograd node on the logits; scores is a softmax node on the logits (free
// when nothing differentiates through it). The saved state (RouterOutput.pass) also serves the
// aux losses (router-aux-loss.ts), the metrics and the layer node. src/moe/router.ts's
// composition stays the spec; test/moe-router-pass.test.ts holds the two together.
import type { MoeKernels } from '../../backend/moe.js';
import { Tensor, makeOutput } from '../../tensor/tensor.js';
import { cast } from '../../ops/cast.js';
import type { RouterConfig } from '../config.js';
import type { RouterOutput } from '../contracts.js';

/** routeLogits by the kernel (the execution plan checked that it covers cfg). logits [T, E]. */
export function routerPass(k: MoeKernels, logits: Tensor, cfg: RouterConfig): RouterOutput {
  const [T, E] = logits.shape as [number, number];
  const shape = { numTokens: T, numExperts: E, topK: cfg.topK, renorm: cfg.renormalize === 'sum', scale: cfg.scalingFactor };
  const f = k.routerForward(logits.storage, shape);
  const b = logits.backend;
  const pass = {
    ...shape,
    kernels: k,
    logits,
    scores: f.scores,
    ids: f.ids,
    lse: f.lse,
    counts: f.counts,
    scoreSums: f.scoreSums,
    entropy: T > 0 ? f.entropySum / T : 0,
    zLoss: f.lseSquaredSum / Math.max(T, 1),
  };
  const topkWeights = makeOutput(b, f.weights, [T, cfg.topK], {
    name: 'routerPass',
    inputs: [logits],
    backward: (g) => [new Tensor(k.routerBackward({ ...pass, lbCoef: null, zCoef: 0 }, cast(g, logits.dtype).storage), logits.shape, b)],
  });
  const scores = makeOutput(b, f.scores, [T, E], {
    name: 'softmax',
    inputs: [logits],
    backward: (g) => [new Tensor(b.softmaxBackward(f.scores, g.storage, T, E, false), logits.shape, b)],
  });
  return { logits, scores, topkIds: new Tensor(f.ids, [T, cfg.topK], b), topkWeights, counts: new Tensor(f.counts, [E], b), pass };
}
