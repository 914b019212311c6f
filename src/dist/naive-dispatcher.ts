// Diffulex's NaiveA2ADispatcher: token slots to the ranks that own their experts with
// all-to-all collectives, and back. Expert e lives on rank floor(e / numLocalExperts) as its
// local expert e mod numLocalExperts.
//   dispatch: validate; expand each token into its K slots; destination rank per slot; stable
//     sort by destination; exchange the counts; then the rows, the (local expert, token index)
//     metadata and the weights with variable splits (four all-to-alls).
//   combine: send the slot outputs and their token indices back (two all-to-alls), validate the
//     indices, index-add into zeros in fp32 (f64 stays f64) and cast back. No routing weight is
//     applied here: the expert-parallel block weights the slots before combine.
// A rank with nothing to send (activeDispatch false, or 0 tokens) still joins every collective,
// receives and computes other ranks' slots, and its own combine output is zeros.
import { shapeToString } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { indexAdd, indexSelect } from '../ops/indexing.js';
import { cast } from '../ops/cast.js';
import { reshape } from '../ops/shape.js';
import { arrayLike, fullLike } from '../moe/tensors.js';
import type { Communicator } from './communicator.js';
import { type DispatcherOutput, DispatcherStage, type ForwardPhase, type TokenDispatchMetadata, type TokenDispatcher } from './contracts.js';
import { allToAllV } from './differentiable.js';

interface AfterDispatchA {
  hidden: Tensor;
  topkWeights: Tensor;
  active: boolean;
  numTokens: number;
  sortedSlots: Int32Array;
  sendSplits: Int32Array;
  recvSplits: Int32Array;
  localExperts: Int32Array;
}

export class NaiveAllToAllDispatcher implements TokenDispatcher {
  private stageNow: DispatcherStage = DispatcherStage.INITIAL;
  private phase: ForwardPhase = 'prefill';
  private afterA: AfterDispatchA | null = null;
  private afterCombineA: { back: Tensor; tokenIndices: Int32Array; metadata: TokenDispatchMetadata } | null = null;

  constructor(
    readonly epGroup: Communicator,
    readonly epSize: number,
    readonly numLocalExperts: number,
    readonly topK: number,
  ) {
    if (epSize !== epGroup.size) throw new RangeError(`NaiveAllToAllDispatcher: epSize ${epSize} must equal the EP group's size ${epGroup.size}`);
    if (!(Number.isInteger(numLocalExperts) && numLocalExperts >= 1)) throw new RangeError(`NaiveAllToAllDispatcher: numLocalExperts must be an integer >= 1 (got ${numLocalExperts})`);
    if (!(Number.isInteger(topK) && topK >= 1)) throw new RangeError(`NaiveAllToAllDispatcher: topK must be an integer >= 1 (got ${topK})`);
  }

  get stage(): DispatcherStage {
    return this.stageNow;
  }

  get forwardPhase(): ForwardPhase {
    return this.phase;
  }

  setForwardPhase(phase: ForwardPhase): void {
    if (phase !== 'prefill' && phase !== 'decode' && phase !== 'mixed') throw new RangeError(`setForwardPhase: phase '${String(phase)}' is not one of 'prefill', 'decode', 'mixed'`);
    this.expect('setForwardPhase', DispatcherStage.INITIAL);
    this.phase = phase;
  }

  dispatch(hidden: Tensor, topkIds: Tensor, topkWeights: Tensor, activeDispatch = true): DispatcherOutput {
    this.dispatchA(hidden, topkIds, topkWeights, activeDispatch);
    return this.dispatchB();
  }

  combine(slotOutputs: Tensor, metadata: TokenDispatchMetadata): Tensor {
    this.combineA(slotOutputs, metadata);
    return this.combineB();
  }

  /** Validate, expand, sort by destination and exchange the counts. */
  dispatchA(hidden: Tensor, topkIds: Tensor, topkWeights: Tensor, activeDispatch = true): void {
    this.expect('dispatch', DispatcherStage.INITIAL);
    const K = this.topK;
    if (hidden.ndim !== 2) throw new RangeError(`dispatch: hidden must be [T, H] (got ${shapeToString(hidden.shape)})`);
    const T = hidden.shape[0]!;
    if (topkIds.dtype !== 'i32') throw new TypeError(`dispatch: topkIds must have dtype i32 (got ${topkIds.dtype})`);
    if (topkIds.ndim !== 2 || topkIds.shape[0] !== T || topkIds.shape[1] !== K) {
      throw new RangeError(`dispatch: topkIds must be [T=${T}, K=${K}] (got ${shapeToString(topkIds.shape)})`);
    }
    if (topkWeights.shape.join() !== topkIds.shape.join()) {
      throw new RangeError(`dispatch: topkWeights must have topkIds' shape ${shapeToString(topkIds.shape)} (got ${shapeToString(topkWeights.shape)})`);
    }
    const E = this.epSize * this.numLocalExperts;
    const ids = topkIds.dataSync();
    const n = activeDispatch ? T * K : 0;
    for (let s = 0; s < n; s++) {
      const e = ids[s]!;
      if (!(e >= 0 && e < E)) throw new RangeError(`dispatch: topkIds[${Math.floor(s / K)}, ${s % K}] = ${e} is outside [0, ${E}) (ep ${this.epSize} x ${this.numLocalExperts} local experts)`);
    }
    // stable counting sort of the slots by destination rank
    const sendSplits = new Int32Array(this.epSize);
    for (let s = 0; s < n; s++) sendSplits[Math.floor(ids[s]! / this.numLocalExperts)]!++;
    const next = new Int32Array(this.epSize);
    for (let r = 1; r < this.epSize; r++) next[r] = next[r - 1]! + sendSplits[r - 1]!;
    const sortedSlots = new Int32Array(n);
    const localExperts = new Int32Array(n);
    for (let s = 0; s < n; s++) {
      const at = next[Math.floor(ids[s]! / this.numLocalExperts)]!++;
      sortedSlots[at] = s;
      localExperts[at] = ids[s]! % this.numLocalExperts;
    }
    const recvSplits = this.epGroup.allToAllSync(sendSplits);
    this.afterA = { hidden, topkWeights, active: activeDispatch, numTokens: T, sortedSlots, sendSplits, recvSplits, localExperts };
    this.stageNow = DispatcherStage.AFTER_DISPATCH_A;
  }

  /** The rows, metadata and weights with variable splits. */
  dispatchB(): DispatcherOutput {
    this.expect('dispatchB', DispatcherStage.AFTER_DISPATCH_A);
    const a = this.afterA!;
    this.afterA = null;
    const K = this.topK;
    const S = a.sortedSlots.length;
    const H = a.hidden.shape[1]!;
    const tokens = a.sortedSlots.map((s) => Math.floor(s / K));
    const localTokenIndices = arrayLike(a.hidden, tokens);
    const rows = indexSelect(a.hidden, 0, localTokenIndices);
    const meta = new Int32Array(2 * S);
    for (let i = 0; i < S; i++) {
      meta[2 * i] = a.localExperts[i]!;
      meta[2 * i + 1] = tokens[i]!;
    }
    const weights = indexSelect(reshape(a.topkWeights, [a.topkWeights.size]), 0, arrayLike(a.hidden, a.sortedSlots));

    const recvHiddenStates = allToAllV(this.epGroup, rows, a.sendSplits, a.recvSplits);
    const recvMeta = this.epGroup.allToAllVSync(arrayLike(a.hidden, meta, [S, 2]), a.sendSplits, a.recvSplits);
    const recvWeights = allToAllV(this.epGroup, weights, a.sendSplits, a.recvSplits);
    const R = recvHiddenStates.shape[0]!;
    const m = recvMeta.dataSync();
    const recvLocalExpert = arrayLike(a.hidden, Int32Array.from({ length: R }, (_, i) => m[2 * i]!));
    const recvTokenIndices = arrayLike(a.hidden, Int32Array.from({ length: R }, (_, i) => m[2 * i + 1]!));
    const metadata: TokenDispatchMetadata = {
      numTokens: a.numTokens,
      hiddenSize: H,
      dtype: a.hidden.dtype,
      device: a.hidden.backend.name,
      sendSplits: a.sendSplits,
      recvSplits: a.recvSplits,
      recvHiddenStates,
      recvLocalExpert,
      recvTokenIndices,
      recvWeights,
      totalRecvSlots: R,
      activeDispatch: a.active,
      numLocalTokens: a.active ? a.numTokens : 0,
      localTokenIndices,
    };
    this.stageNow = DispatcherStage.AFTER_DISPATCH_B;
    return { metadata, recvHiddenStates, recvLocalExpertIds: recvLocalExpert, recvWeights };
  }

  /** Send the slot outputs and their token indices back to their senders. */
  combineA(slotOutputs: Tensor, metadata: TokenDispatchMetadata): void {
    this.expect('combine', DispatcherStage.AFTER_DISPATCH_B);
    const R = metadata.totalRecvSlots;
    if (slotOutputs.ndim !== 2 || slotOutputs.shape[0] !== R || slotOutputs.shape[1] !== metadata.hiddenSize) {
      throw new RangeError(`combine: slotOutputs must be [R=${R}, H=${metadata.hiddenSize}] (got ${shapeToString(slotOutputs.shape)})`);
    }
    const back = allToAllV(this.epGroup, slotOutputs, metadata.recvSplits, metadata.sendSplits);
    const tokenIndices = this.epGroup.allToAllVSync(metadata.recvTokenIndices, metadata.recvSplits, metadata.sendSplits).dataSync() as Int32Array;
    this.afterCombineA = { back, tokenIndices, metadata };
    this.stageNow = DispatcherStage.AFTER_COMBINE_A;
  }

  /** Validate the returned token indices and index-add the outputs into [T, H] (fp32 or wider). */
  combineB(): Tensor {
    this.expect('combineB', DispatcherStage.AFTER_COMBINE_A);
    const { back, tokenIndices, metadata } = this.afterCombineA!;
    this.afterCombineA = null;
    this.stageNow = DispatcherStage.INITIAL;
    const T = metadata.numTokens;
    for (let i = 0; i < tokenIndices.length; i++) {
      const t = tokenIndices[i]!;
      if (!(t >= 0 && t < T)) throw new RangeError(`combine: returned token index ${t} at slot ${i} is outside [0, ${T})`);
    }
    const accDType = back.dtype === 'f64' ? 'f64' : 'f32';
    const acc = indexAdd(fullLike(back, [T, metadata.hiddenSize], 0, accDType), 0, arrayLike(back, tokenIndices), cast(back, accDType));
    return cast(acc, metadata.dtype);
  }

  private expect(call: string, stage: DispatcherStage): void {
    if (this.stageNow !== stage) throw new Error(`${call}: the dispatcher is at stage ${this.stageNow}; ${call} needs ${stage}`);
  }
}

