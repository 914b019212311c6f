// How much memory a CT-MoE training run needs, estimated from its config before anything is
// allocated, so that `--set batchSize=100000` fails at once with the numbers instead of
// after growing to 16 GB. An estimate of the dominant terms in float32:
//   parameters, gradients and AdamW's two moments: 4 x params
//   activations kept for the backward, per token: logits (+ log-softmax and its gradient) 3V,
//   and per layer the attention weights (scores, probabilities, dropout) 3 H T, about 16 D of
//   projections, norms and residuals, and the experts' hidden rows (4 D per routed expert),
//   times 1.5 for the temporaries these terms leave out. Calibrated on the tiny preset with
//   synthetic data (peak RSS, 3 steps): batch 16 / 128 / 512 measured 253 / 848 / 2850 MiB,
//   estimated 357 / 969 / 3066 MiB (the slope: 5.2 MiB per batch row measured, 5.5 estimated).
import { freemem, totalmem } from 'node:os';
import type { CtMoeExperimentConfig } from './config.js';

/** What the process itself takes besides the model (Node, the data, the tokenizer). */
const BASE_BYTES = 256 * 2 ** 20;
const UNCOUNTED_FACTOR = 1.5;

export interface MemoryEstimate {
  bytes: number;
  parameters: number;
  activationBytes: number;
}

export function estimateTrainingMemory(cfg: CtMoeExperimentConfig): MemoryEstimate {
  const { vocabSize: V, seqLen: T, dModel: D, nHead: H, nLayer: L, numExperts: N, topK: K, batchSize: B } = cfg;
  const perLayer = 4 * D * D + 2 * N * D * D + N * D + N * N + 4 * D;
  const parameters = V * D + T * D + L * perLayer + 2 * D;
  const routed = cfg.expertCompute === 'dense' ? N : K;
  const perToken = 3 * V + L * (3 * H * T + 16 * D + 4 * D * routed + 4 * N);
  const activationBytes = UNCOUNTED_FACTOR * 4 * B * T * perToken;
  return { bytes: BASE_BYTES + 16 * parameters + activationBytes, parameters, activationBytes };
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 2 : 1)} GiB`;

/**
 * Throws a RangeError when the estimate exceeds the memory available now (MemAvailable on
 * Linux); the message gives both numbers and the sizes that drive the estimate.
 */
export function checkTrainingMemory(cfg: CtMoeExperimentConfig, available = freemem(), total = totalmem()): MemoryEstimate {
  const est = estimateTrainingMemory(cfg);
  if (!(est.bytes <= available)) {
    throw new RangeError(
      `this config needs about ${gib(est.bytes)} to train (batchSize ${cfg.batchSize} x seqLen ${cfg.seqLen} tokens: ` +
        `${gib(est.activationBytes)} of activations; ${(est.parameters / 1e6).toFixed(1)} M parameters), ` +
        `but ${gib(available)} is available (${gib(total)} total); lower batchSize, seqLen, dModel or vocabSize`,
    );
  }
  return est;
}
