// Expert-choice routing (Zhou et al. 2022, "Mixture-of-Experts with Expert Choice Routing").
//
// scores S = softmax(logits) over the experts of each token (as the paper: S = Softmax(X·W_g),
// [T, E]); each expert e takes the c tokens with the largest S[:, e] (ties: lowest token index),
//   c = min(T, max(1, round(capacityFactor · T · topK / E)))
// so a token gets 0..E experts. Its combine weights are the scores of the experts that chose it
// (times router.scalingFactor); a token nobody chose gets zeros from the MoE block (the
// residual and any shared expert still apply). With scoreFunc 'sigmoid', S = sigmoid(logits).
//
// It speaks the ordinary router -> dispatcher contract on a [T, E] slot grid (slot t·E + e):
//   topkIds[t, e]     = e if expert e chose token t, else -1 (an empty slot)
//   topkWeights[t, e] = S[t, e] if chosen, else 0 (differentiable through S)
//   counts[e]         = c (tokens per expert)
// ExpertChoiceDispatcher skips the empty slots; combine is LocalDispatcher's weighted scatter-add.
import { noGrad } from '../tensor/autograd.js';
import { shapeToString } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { mul, sigmoid } from '../ops/elementwise.js';
import { indexAdd, indexSelect } from '../ops/indexing.js';
import { reshape, transpose } from '../ops/shape.js';
import { softmax } from '../ops/softmax.js';
import { topk } from '../ops/sort.js';
import type { DispatchConfig, RouterConfig } from './config.js';
import type { DispatchMetadata, DispatchResult, Dispatcher, ExpertExecutionMetadata, RouterOutput } from './contracts.js';
import { arrayLike, fullLike } from './tensors.js';

/** Tokens each expert takes: min(T, max(1, round(cf·T·k/E))); 0 when T = 0. */
export function expertChoiceCapacity(numTokens: number, numExperts: number, topK: number, capacityFactor = 1): number {
  if (numTokens === 0) return 0;
  return Math.min(numTokens, Math.max(1, Math.round((capacityFactor * numTokens * topK) / numExperts)));
}

/** RouterOutput on the [T, E] slot grid, plus the expert-side view of the choice. */
export interface ExpertChoiceRouterOutput extends RouterOutput {
  /** Tokens per expert. */
  capacity: number;
  /** [E, c] i32: the tokens expert e chose, in descending order of score. */
  expertTokens: Tensor;
  /** [T] how many experts chose each token (0..E). */
  expertsPerToken: Int32Array;
}

/** Expert-choice routing of router logits [T, E] (cfg.kind must be 'expert-choice'). */
export function routeExpertChoice(logits: Tensor, cfg: RouterConfig): ExpertChoiceRouterOutput {
  const E = cfg.numExperts;
  if (cfg.kind !== 'expert-choice') throw new Error(`routeExpertChoice: router.kind is '${cfg.kind}', expected 'expert-choice'`);
  if (logits.ndim !== 2 || logits.shape[1] !== E) {
    throw new RangeError(`routeExpertChoice: logits must be [T, ${E}] (got ${shapeToString(logits.shape)})`);
  }
  const T = logits.shape[0]!;
  const c = expertChoiceCapacity(T, E, cfg.topK, cfg.capacityFactor);
  const scores = cfg.scoreFunc === 'softmax' ? softmax(logits, -1) : sigmoid(logits);
  const { expertTokens, ids, mask, perToken } = noGrad(() => {
    const chosen = topk(transpose(scores, 0, 1), c, -1).indices; // [E, c]
    const tok = chosen.dataSync();
    const idArr = new Int32Array(T * E).fill(-1);
    const maskArr = scores.dtype === 'f64' ? new Float64Array(T * E) : new Float32Array(T * E);
    const per = new Int32Array(T);
    for (let e = 0; e < E; e++) {
      for (let j = 0; j < c; j++) {
        const t = tok[e * c + j]!;
        idArr[t * E + e] = e;
        maskArr[t * E + e] = 1;
        per[t]!++;
      }
    }
    return { expertTokens: chosen, ids: arrayLike(logits, idArr, [T, E]), mask: arrayLike(scores, maskArr, [T, E]), perToken: per };
  });
  let w = mul(scores, mask);
  if (cfg.scalingFactor !== 1) w = mul(w, cfg.scalingFactor);
  const counts = arrayLike(logits, new Int32Array(E).fill(c));
  return { logits, scores, topkIds: ids, topkWeights: w, counts, capacity: c, expertTokens, expertsPerToken: perToken };
}

/**
 * Dispatch for slot grids with empty slots (id -1), as expert-choice routing produces: the
 * non-empty slots are stably sorted by expert (within an expert: ascending token), gathered,
 * and combined by a weighted scatter-add. No capacity is applied here (the router already did).
 */
export class ExpertChoiceDispatcher implements Dispatcher {
  constructor(
    readonly numExperts: number,
    readonly cfg: Pick<DispatchConfig, 'weightsOn'> = { weightsOn: 'output' },
  ) {}

  dispatch(x: Tensor, routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>): DispatchResult {
    const { topkIds, topkWeights } = routing;
    if (x.ndim !== 2 || topkIds.ndim !== 2 || topkIds.shape[0] !== x.shape[0] || topkWeights.shape.join() !== topkIds.shape.join()) {
      throw new RangeError(
        `ExpertChoiceDispatcher: x ${shapeToString(x.shape)}, topkIds ${shapeToString(topkIds.shape)}, topkWeights ${shapeToString(topkWeights.shape)} must be [T, H], [T, W], [T, W]`,
      );
    }
    const [T, W] = topkIds.shape as [number, number];
    const E = this.numExperts;
    const ids = topkIds.dataSync();
    const rowsPerExpert = new Int32Array(E);
    for (let s = 0; s < ids.length; s++) {
      const e = ids[s]!;
      if (e === -1) continue;
      if (!(e >= 0 && e < E))
        throw new RangeError(`ExpertChoiceDispatcher: expert id ${e} at slot ${s} is outside [0, ${E}) and not -1 (empty)`);
      rowsPerExpert[e]!++;
    }
    const segOffsets = new Int32Array(E + 1);
    for (let e = 0; e < E; e++) segOffsets[e + 1] = segOffsets[e]! + rowsPerExpert[e]!;
    const S = segOffsets[E]!;
    const slots = new Int32Array(S);
    const tok = new Int32Array(S);
    const exp = new Int32Array(S);
    const fill = segOffsets.slice(0, E);
    for (let s = 0; s < ids.length; s++) {
      const e = ids[s]!;
      if (e === -1) continue;
      const r = fill[e]!++;
      slots[r] = s;
      tok[r] = Math.floor(s / W);
      exp[r] = e;
    }
    const sortedSlots = arrayLike(x, slots);
    const rowTokens = arrayLike(x, tok);
    const rowExperts = arrayLike(x, exp);
    const rowWeights = indexSelect(reshape(topkWeights, [T * W]), 0, sortedSlots);
    let rows = indexSelect(x, 0, rowTokens);
    if (this.cfg.weightsOn === 'input') rows = mul(rows, reshape(rowWeights.to(rows.dtype), [S, 1]));
    const meta: DispatchMetadata = {
      numTokens: T,
      topK: W,
      numExperts: E,
      sortedSlots,
      rowTokens,
      rowExperts,
      rowWeights,
      droppedSlots: new Int32Array(0),
      capacity: null,
      weightsOn: this.cfg.weightsOn,
    };
    const exec: ExpertExecutionMetadata = { numExperts: E, numRows: S, segOffsets, rowsPerExpert, rowExperts };
    return { rows, meta, exec };
  }

  combine(rowOutputs: Tensor, meta: DispatchMetadata): Tensor {
    const S = meta.rowTokens.size;
    if (rowOutputs.ndim !== 2 || rowOutputs.shape[0] !== S) {
      throw new RangeError(`ExpertChoiceDispatcher.combine: rowOutputs must be [S=${S}, H] (got ${shapeToString(rowOutputs.shape)})`);
    }
    const H = rowOutputs.shape[1]!;
    const contrib = meta.weightsOn === 'output' ? mul(rowOutputs, reshape(meta.rowWeights.to(rowOutputs.dtype), [S, 1])) : rowOutputs;
    return indexAdd(fullLike(rowOutputs, [meta.numTokens, H], 0), 0, meta.rowTokens, contrib);
  }
}
