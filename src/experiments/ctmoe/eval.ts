// End-of-training evaluation: domain PPL, routing frequencies per domain, specialisation per
// expert, final S per layer and the seed's eigenspectrum of the last layer's S.
import type { Batch } from '../../data/batches.js';
import type { Domain } from '../../data/corpora.js';
import { batchTensors } from '../batch-tensors.js';
import { noGrad } from '../../tensor/autograd.js';
import { eigenspectrum, sMaxOffDiagonal, sRowEntropy } from '../../moe/topology/diagnostics.js';
import type { CtMoeGPT } from './model.js';
import { type Reads, read, runReadsSync } from '../../tensor/reads.js';
import type { Tensor } from '../../tensor/tensor.js';

export { batchTensors };

/** exp(mean over batches of the batch CE), in eval mode (dropout off), no grad. Restores the mode. */
export function evalPpl(model: CtMoeGPT, batches: Iterable<Batch>): number {
  return runReadsSync(evalPplReads(model, batches));
}

/** evalPpl, reading each batch's loss through `read`. */
export function* evalPplReads(model: CtMoeGPT, batches: Iterable<Batch>): Reads<number> {
  const was = model.training;
  model.eval();
  let total = 0;
  let n = 0;
  try {
    for (const b of batches) {
      const { input, target } = batchTensors(b);
      const loss = noGrad(() => model.gpt.loss(input, target));
      total += (yield* read(loss))[0]![0]!;
      n++;
    }
  } finally {
    model.train(was);
  }
  if (n === 0) throw new Error('evalPpl: no evaluation batches (validation set smaller than one batch?)');
  return Math.exp(total / n);
}

/**
 * The seed's routing frequency on one domain: in TRAIN mode (dropout on, usage counting on),
 * no grad, the usage counters summed over all layers and normalised. Resets the counters.
 */
export function routingFrequency(model: CtMoeGPT, batches: Iterable<Batch>): number[] {
  return runReadsSync(routingFrequencyReads(model, batches));
}

/** routingFrequency, reading the layers' usage counts (webgpu) through `read`. */
export function* routingFrequencyReads(model: CtMoeGPT, batches: Iterable<Batch>): Reads<number[]> {
  const was = model.training;
  model.train();
  const layers = model.moeLayers;
  for (const l of layers) {
    l.takePendingUsage(); // dropped with the counts
    l.usage.fill(0);
  }
  try {
    noGrad(() => {
      for (const b of batches) model.gpt.hidden(batchTensors(b).input);
    });
  } finally {
    model.train(was);
  }
  for (const l of layers) yield* l.settleUsage();
  const N = layers[0]!.cfg.router.numExperts;
  const total = new Float64Array(N);
  for (const l of layers) for (let e = 0; e < N; e++) total[e]! += l.usage[e]!;
  for (const l of layers) l.usage.fill(0);
  const sum = total.reduce((a, v) => a + v, 0);
  return [...total].map((v) => (sum > 0 ? v / sum : 0));
}

/** s_e = (f_code,e - f_prose,e) / (f_code,e + f_prose,e + 1e-9): +1 code-only, -1 prose-only. */
export function specialisation(freq: Record<Domain, readonly number[]>): number[] {
  return freq.code.map((c, e) => (c - freq.prose[e]!) / (c + freq.prose[e]! + 1e-9));
}

/** S of every layer as row-major nested arrays (null without topology). */
export function finalS(model: CtMoeGPT): number[][][] | null {
  return runReadsSync(finalSReads(model));
}

/** Every layer's S (null without topology), read in one wait. */
function* layerS(model: CtMoeGPT): Reads<{ s: ArrayLike<number>; N: number }[] | null> {
  const layers = model.moeLayers;
  if (!layers[0]!.topology) return null;
  const values = yield* read(...layers.map((l): Tensor => noGrad(() => l.topology!.forward())));
  return layers.map((l, i) => ({ s: values[i]!, N: l.cfg.router.numExperts }));
}

/** finalS, reading S through `read`. */
export function* finalSReads(model: CtMoeGPT): Reads<number[][][] | null> {
  const all = yield* layerS(model);
  if (!all) return null;
  return all.map(({ s, N }) => Array.from({ length: N }, (_, i) => Array.from({ length: N }, (_, j) => s[i * N + j]!)));
}

/** Per-layer S entropy and S max (nulls without topology). */
export function sDiagnostics(model: CtMoeGPT): { sEntropy: number[]; sMax: number[] } | null {
  return runReadsSync(sDiagnosticsReads(model));
}

/** sDiagnostics, reading S through `read`. */
export function* sDiagnosticsReads(model: CtMoeGPT): Reads<{ sEntropy: number[]; sMax: number[] } | null> {
  const all = yield* layerS(model);
  return all && { sEntropy: all.map(({ s, N }) => sRowEntropy(s, N)), sMax: all.map(({ s, N }) => sMaxOffDiagonal(s, N)) };
}

/** eigvalsh(last layer's S) (lower-triangle semantics, see eigvalshLower), descending, |λ| normalised. */
export function* lastLayerEigenspectrumReads(model: CtMoeGPT) {
  const layers = model.moeLayers;
  const last = layers[layers.length - 1]!;
  if (!last.topology) return null;
  const N = last.cfg.router.numExperts;
  const [s] = yield* read(noGrad(() => last.topology!.forward()));
  return {
    ...eigenspectrum(s!, N),
    semantics: 'torch.linalg.eigvalsh: lower triangle of S mirrored (S is not symmetric)',
  };
}
