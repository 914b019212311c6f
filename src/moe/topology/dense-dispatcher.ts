// CT-MoE's 'dense' expert compute (the seed's way; the ablation's `expertCompute: 'dense'`):
// every expert runs on every token, and the combine keeps each token's k selected outputs,
// y_t = Σ_k w_tk · out_{id_tk}(x_t). Same outputs and gradients as the sparse LocalDispatcher
// (up to summation order) at E/k times the expert FLOPs: a reference, and the seed's timing.
// Rows are the E·T (expert, token) pairs, expert-major; a pair the token did not select
// combines with weight 0 (so its expert gets no gradient from it).
import type { Tensor } from '../../tensor/tensor.js';
import { shapeToString } from '../../tensor/shape.js';
import { indexAdd, indexSelect } from '../../ops/indexing.js';
import { reshape } from '../../ops/shape.js';
import type { DispatchConfig } from '../config.js';
import type { DispatchMetadata, DispatchResult, RouterOutput } from '../contracts.js';
import { LocalDispatcher } from '../dispatch.js';
import { arrayLike, fullLike } from '../tensors.js';

/** LocalDispatcher's combine (weighted scatter-add by row token) over dense rows; dropless, weights on the output. */
export class DenseDispatcher extends LocalDispatcher {
  constructor(numExperts: number, cfg: DispatchConfig = { capacityFactor: null, capacityMultiple: 8, weightsOn: 'output' }) {
    if (cfg.capacityFactor !== null)
      throw new RangeError(`DenseDispatcher: dispatch.capacityFactor = ${cfg.capacityFactor}: dense expert compute is dropless (null)`);
    if (cfg.weightsOn !== 'output')
      throw new RangeError(`DenseDispatcher: dispatch.weightsOn = '${cfg.weightsOn}': dense expert compute needs 'output'`);
    super(numExperts, cfg);
  }

  override dispatch(x: Tensor, routing: Pick<RouterOutput, 'topkIds' | 'topkWeights'>): DispatchResult {
    const { topkIds, topkWeights } = routing;
    if (x.ndim !== 2 || topkIds.ndim !== 2 || topkIds.shape[0] !== x.shape[0] || topkWeights.shape.join() !== topkIds.shape.join()) {
      throw new RangeError(
        `DenseDispatcher: x ${shapeToString(x.shape)}, topkIds ${shapeToString(topkIds.shape)}, topkWeights ${shapeToString(topkWeights.shape)} must be [T, H], [T, K], [T, K]`,
      );
    }
    const [T, K] = topkIds.shape as [number, number];
    const E = this.numExperts;
    const ids = topkIds.dataSync();
    const tok = new Int32Array(E * T);
    const exp = new Int32Array(E * T);
    for (let e = 0; e < E; e++) {
      for (let t = 0; t < T; t++) {
        tok[e * T + t] = t;
        exp[e * T + t] = e;
      }
    }
    const rowSlot = new Int32Array(E * T).fill(-1);
    const slotRow = new Int32Array(T * K);
    for (let s = 0; s < T * K; s++) {
      const e = ids[s]!;
      if (!(e >= 0 && e < E)) throw new RangeError(`DenseDispatcher: expert id ${e} at slot ${s} is outside [0, ${E})`);
      slotRow[s] = e * T + Math.floor(s / K);
      rowSlot[slotRow[s]!] = s;
    }
    const rowTokens = arrayLike(x, tok);
    const rowExperts = arrayLike(x, exp);
    const rowWeights = indexAdd(fullLike(topkWeights, [E * T], 0), 0, arrayLike(x, slotRow), reshape(topkWeights, [T * K]));
    const meta: DispatchMetadata = {
      numTokens: T,
      topK: K,
      numExperts: E,
      // the slot each row serves, -1 where the token did not select that expert
      sortedSlots: arrayLike(x, rowSlot),
      rowTokens,
      rowExperts,
      rowWeights,
      droppedSlots: new Int32Array(0),
      capacity: null,
      weightsOn: 'output',
    };
    const segOffsets = Int32Array.from({ length: E + 1 }, (_, e) => e * T);
    const exec = { numExperts: E, numRows: E * T, segOffsets, rowsPerExpert: new Int32Array(E).fill(T), rowExperts };
    return { rows: indexSelect(x, 0, rowTokens), meta, exec };
  }
}
