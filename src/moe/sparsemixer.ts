// Phi-MoE's sparsemixer routing (transformers' modeling_phimoe.sparsemixer, top-2), forward and
// gradient. Per token, for round r = 1, 2 (round 2 runs on the scores with round 1's expert at -inf):
//   m = max of the round's scores; keep s_j with (m − s_j) / max(|s_j|, m) <= 2·eps, others -inf;
//   p = softmax over the kept; expert = argmax (eval) or a Gumbel sample of the kept (training);
//   weight = p[expert], times λ in training: λ = 1 when the expert is p's argmax or with
//   probability 1/4, else 1/3 (Heun's third-order method).
// Gradient (its MultiplierProcessor): d weight / d logits = weight_o · (onehot(expert) − p), λ ignored;
// masked experts get none. The LB loss reads scores = softmax(logits), as HF's does.
import type { Tensor } from '../tensor/tensor.js';
import { makeOutput } from '../tensor/tensor.js';
import { type Generator, defaultGenerator } from '../tensor/random.js';
import { softmax } from '../ops/softmax.js';
import { floatArrayLike } from '../backend/types.js';
import type { RouterConfig } from './config.js';
import type { RouterOutput } from './contracts.js';
import { arrayLike } from './tensors.js';

export interface SparseMixerOptions {
  training?: boolean;
  generator?: Generator;
}

/** One round over row s (length E); `excluded` is already -inf. Writes p, returns [expert, weight_o, λ]. */
function round(
  s: ArrayLike<number>,
  excluded: number,
  eps: number,
  p: Float64Array,
  training: boolean,
  g: Generator,
): [number, number, number] {
  const E = p.length;
  let m = -Infinity;
  let arg = -1;
  for (let j = 0; j < E; j++) if (j !== excluded && s[j]! > m) [m, arg] = [s[j]!, j];
  let z = 0;
  for (let j = 0; j < E; j++) {
    // the threshold compares against the original scores (the excluded one is -inf regardless)
    const masked = j === excluded || (m - s[j]!) / Math.max(Math.abs(s[j]!), m) > 2 * eps;
    p[j] = masked ? 0 : Math.exp(s[j]! - m);
    z += p[j]!;
  }
  for (let j = 0; j < E; j++) p[j]! /= z;
  let expert = arg;
  if (training) {
    // Gumbel-max over the kept: argmax(s_j − log(Exp(1)))
    let best = -Infinity;
    for (let j = 0; j < E; j++) {
      if (p[j] === 0) continue;
      const v = s[j]! - Math.log(-Math.log(1 - g.uniform()));
      if (v > best) [best, expert] = [v, j];
    }
  }
  let pArg = 0;
  for (let j = 1; j < E; j++) if (p[j]! > p[pArg]!) pArg = j;
  const lambda = !training || expert === pArg || g.uniform() > 0.75 ? 1 : 0.3333;
  return [expert, p[expert]!, lambda];
}

export function routeSparseMixer(logits: Tensor, cfg: RouterConfig, opts: SparseMixerOptions = {}): RouterOutput {
  if (!cfg.sparseMixer) throw new Error('routeSparseMixer: router.sparseMixer is null');
  const [T, E] = logits.shape as [number, number];
  const eps = cfg.sparseMixer.jitterEps;
  const training = opts.training ?? false;
  const g = opts.generator ?? defaultGenerator;
  const x = logits.dataSync();
  const ids = new Int32Array(T * 2);
  const w = floatArrayLike(logits.storage as Float32Array | Float64Array, T * 2);
  const wo = new Float64Array(T * 2);
  const probs = new Float64Array(T * 2 * E);
  for (let t = 0; t < T; t++) {
    const row = x.subarray(t * E, (t + 1) * E);
    let excluded = -1;
    for (let k = 0; k < 2; k++) {
      const p = probs.subarray((t * 2 + k) * E, (t * 2 + k + 1) * E);
      const [e, weight, lambda] = round(row, excluded, eps, p, training, g);
      ids[t * 2 + k] = e;
      wo[t * 2 + k] = weight;
      w[t * 2 + k] = weight * lambda;
      excluded = e;
    }
  }
  const b = logits.backend;
  const topkWeights = makeOutput(b, w, [T, 2], {
    name: 'sparseMixer',
    inputs: [logits],
    backward: (grad) => {
      const gd = grad.dataSync();
      const d = floatArrayLike(logits.storage as Float32Array | Float64Array, T * E);
      for (let t = 0; t < T; t++) {
        for (let k = 0; k < 2; k++) {
          const s = t * 2 + k;
          const gk = gd[s]! * wo[s]!;
          for (let j = 0; j < E; j++) d[t * E + j] += -probs[s * E + j]! * gk;
          d[t * E + ids[s]!] += gk;
        }
      }
      return [arrayLike(logits, d, [T, E])];
    },
  });
  const counts = new Int32Array(E);
  for (const e of ids) counts[e]!++;
  return {
    logits,
    scores: softmax(logits, -1),
    topkIds: arrayLike(logits, ids, [T, 2]),
    topkWeights,
    counts: arrayLike(logits, counts, [E]),
  };
}
