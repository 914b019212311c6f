// How much memory a CT-MoE training run needs, estimated from its config before anything is
// allocated, so that `--set batchSize=100000` fails at once with the numbers instead of
// after growing to 16 GB. An estimate of the dominant terms in float32, per process:
//   parameters, gradients and AdamW's two moments: 4 x params
//   activations kept for the backward, per token: logits (+ log-softmax and its gradient) 3V,
//   and per layer the attention weights (scores, probabilities, dropout) 3 H T, about 16 D of
//   projections, norms and residuals, and the experts' hidden rows (4 D per routed expert),
//   times 1.5 for the temporaries these terms leave out. Calibrated on the tiny preset with
//   synthetic data (peak RSS, 3 steps): batch 16 / 128 / 512 measured 253 / 848 / 2850 MiB,
//   estimated 357 / 969 / 3066 MiB (the slope: 5.2 MiB per batch row measured, 5.5 estimated).
// Across MPI ranks (`--parallel`) the estimate is one rank's (src/dist):
//   dp: the whole model on every rank, activations of its batchSize / ranks rows, and the
//     gradient all-reduce's flat bucket and its reduced copy (at most 2^22 floats each);
//   ep: the replicated parameters (embeddings, attention, norms, routers, S) and only the
//     rank's E / ranks experts of each layer, with their gradients and AdamW state; every rank
//     runs the whole batch through attention, but its experts' hidden rows are for the slots
//     routed to them (K / ranks per token, balanced routing); and per layer the round-robin
//     EP block's buffers: the all-to-all's rows (sent, received, returned, the experts' output,
//     the communicator's packed copies and the gradients of each: about 10 D per slot of the
//     rank, K / ranks slots per token), the rank's token shard (D / ranks), and the all-reduced
//     output and router logits and scores with their zero-filled inputs (2 D + 4 E per token).
//     Every rank on one machine needs its share: checkTrainingMemory multiplies by the ranks
//     there. Measured on the tiny preset at np 2 (synthetic tokens, 3 steps, peak RSS per rank,
//     test/helpers/dist/memory-worker.ts), batch 64 / 256: ep 453 / 1292 MiB (estimated
//     686 / 1946), dp 320 / 626 MiB (estimated 452 / 976), one process 416 / 1059 MiB (estimated
//     620 / 1668): per batch row ep 4.4 MiB measured, 6.6 estimated; dp 1.6, 2.7; one process
//     3.3, 5.5 (the single-process terms err on the safe side by as much today).
import { freemem, totalmem } from 'node:os';
import type { CtMoeExperimentConfig } from './config.js';

/** What the process itself takes besides the model (Node, the data, the tokenizer). */
const BASE_BYTES = 256 * 2 ** 20;
const UNCOUNTED_FACTOR = 1.5;
/** The data-parallel gradient all-reduce's bucket (src/dist/data-parallel.ts: 1 << 22 elements). */
const DP_BUCKET_ELEMENTS = 2 ** 22;

/** How the run is spread over MPI ranks (absent: one process). */
export interface ParallelLayout {
  mode: 'dp' | 'ep';
  /** Ranks in the run. */
  ranks: number;
  /** Ranks on this machine, which share its memory (default: all of them). */
  ranksOnMachine?: number;
}

export interface MemoryEstimate {
  /** Bytes one process (one rank) needs. */
  bytes: number;
  /** Parameters this process holds (under EP: the replicated ones and its experts). */
  parameters: number;
  activationBytes: number;
  /** Of activationBytes, what crossing ranks adds (EP's all-to-all and all-reduce buffers); 0 in one process. */
  commBytes: number;
}

/** The estimate for one process of a run laid out as `parallel` (one process when absent or over one rank). */
export function estimateTrainingMemory(cfg: CtMoeExperimentConfig, parallel?: ParallelLayout): MemoryEstimate {
  const { vocabSize: V, seqLen: T, dModel: D, nHead: H, nLayer: L, numExperts: N, topK: K, batchSize: B } = cfg;
  const ranks = parallel && parallel.ranks > 1 ? parallel.ranks : 1;
  const ep = parallel?.mode === 'ep' ? ranks : 1;
  const dp = parallel?.mode === 'dp' ? ranks : 1;
  const experts = N / ep;
  const perLayer = 4 * D * D + 2 * experts * D * D + N * D + N * N + 4 * D;
  const parameters = V * D + T * D + L * perLayer + 2 * D;
  // under EP the slots go through the all-to-all dispatcher (sparse) whatever expertCompute says
  const routed = ep > 1 ? K / ep : cfg.expertCompute === 'dense' ? N : K;
  const rows = Math.ceil(B / dp) * T;
  const perToken = 3 * V + L * (3 * H * T + 16 * D + 4 * D * routed + 4 * N);
  const commPerToken = ep > 1 ? L * ((10 * D * K) / ep + D / ep + 2 * D + 4 * N) : 0;
  const activationBytes = UNCOUNTED_FACTOR * 4 * rows * (perToken + commPerToken);
  const commBytes = UNCOUNTED_FACTOR * 4 * rows * commPerToken;
  const bucketBytes = dp > 1 ? 2 * 4 * Math.min(parameters, DP_BUCKET_ELEMENTS) : 0;
  return { bytes: BASE_BYTES + 16 * parameters + activationBytes + bucketBytes, parameters, activationBytes, commBytes };
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 2 : 1)} GiB`;

/**
 * Throws a RangeError when the estimate (times the ranks on this machine under `parallel`)
 * exceeds the memory available now (MemAvailable on Linux); the message gives both numbers and
 * the sizes that drive the estimate.
 */
export function checkTrainingMemory(
  cfg: CtMoeExperimentConfig,
  available = freemem(),
  total = totalmem(),
  parallel?: ParallelLayout,
): MemoryEstimate {
  const est = estimateTrainingMemory(cfg, parallel);
  const here = parallel && parallel.ranks > 1 ? (parallel.ranksOnMachine ?? parallel.ranks) : 1;
  if (!(here * est.bytes <= available)) {
    const who = here > 1 ? `each of the ${here} --parallel ${parallel!.mode} ranks on this machine needs` : 'this config needs';
    throw new RangeError(
      `${who} about ${gib(est.bytes)} to train (batchSize ${cfg.batchSize} x seqLen ${cfg.seqLen} tokens: ` +
        `${gib(est.activationBytes)} of activations; ${(est.parameters / 1e6).toFixed(1)} M parameters), ` +
        `but ${gib(available)} is available (${gib(total)} total); lower batchSize, seqLen, dModel or vocabSize`,
    );
  }
  return est;
}
