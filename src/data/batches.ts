/**
 * Next-token-prediction windows and batch loaders.
 *
 * Window i covers tokens [i*L, i*L + L] (L + 1 tokens): input = tokens[i*L .. i*L+L),
 * target = tokens[i*L+1 .. i*L+L]. Inputs never overlap (consecutive windows share only the boundary
 * token, which is the last target of one window and the first input of the next), so every token is
 * predicted at most once and count = floor((n - 1) / L). (The CT-MoE seed cuts windows of L tokens and
 * predicts L-1 targets inside each; here every window yields L predictions.)
 */

export class TokenWindows {
  readonly length: number;

  constructor(
    readonly tokens: Int32Array,
    readonly seqLen: number,
  ) {
    if (!Number.isInteger(seqLen) || seqLen < 1) {
      throw new RangeError(`moekit data: seqLen must be a positive integer, got ${seqLen}`);
    }
    this.length = tokens.length > 0 ? Math.floor((tokens.length - 1) / seqLen) : 0;
  }

  /** Copy window `i` into input/target at element offset `offset` (both of length >= offset + seqLen). */
  fill(i: number, input: Int32Array, target: Int32Array, offset = 0): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new RangeError(`moekit data: window index must be in [0, ${this.length}), got ${i}`);
    }
    const start = i * this.seqLen;
    input.set(this.tokens.subarray(start, start + this.seqLen), offset);
    target.set(this.tokens.subarray(start + 1, start + 1 + this.seqLen), offset);
  }
}

export interface Batch {
  /** Row-major (batch, seqLen) token ids. */
  readonly input: Int32Array;
  /** input shifted by one token: target[b, t] is the token after input[b, t]. */
  readonly target: Int32Array;
  readonly batch: number;
  readonly seqLen: number;
}

/** Build one batch from the given window indices. */
export function makeBatch(windows: TokenWindows, indices: ArrayLike<number>): Batch {
  const L = windows.seqLen;
  const input = new Int32Array(indices.length * L);
  const target = new Int32Array(indices.length * L);
  for (let b = 0; b < indices.length; b++) windows.fill(indices[b]!, input, target, b * L);
  return { input, target, batch: indices.length, seqLen: L };
}

function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`moekit data: batchSize must be a positive integer, got ${batchSize}`);
  }
}

function checkMaxBatches(maxBatches: number | undefined): void {
  if (maxBatches !== undefined && (!Number.isInteger(maxBatches) || maxBatches < 1)) {
    throw new RangeError(`moekit data: maxBatches must be a positive integer, got ${maxBatches}`);
  }
}

/** Serialisable loader position. `order` is the current epoch's window permutation (shuffled loaders). */
export interface LoaderState {
  /** Current epoch, from 0. */
  epoch: number;
  /** Batches already taken from this epoch. */
  index: number;
  order?: number[];
}

export interface BatchLoaderOptions {
  batchSize: number;
  /** Shuffle windows every epoch (default true). Requires `random`. */
  shuffle?: boolean;
  /** Uniform [0, 1) generator, e.g. a seeded PRNG; called windows.length - 1 times at the start of each epoch. */
  random?: () => number;
  /** Cap on batches per epoch. */
  maxBatches?: number;
  /** Drop the final incomplete batch of an epoch (default true, so every batch has batchSize rows). */
  dropLast?: boolean;
}

/**
 * Training loader: endless batches over epochs, deterministic given `random`, resumable.
 *
 * The epoch's permutation is drawn lazily when its first batch is taken. To resume exactly, save
 * `state()` together with the state of your random generator, then `restore()` both.
 */
export class BatchLoader {
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  private readonly shuffle: boolean;
  private readonly random: (() => number) | undefined;
  private epochNo = 0;
  private index = 0;
  private order: number[] | undefined;

  constructor(
    readonly windows: TokenWindows,
    opts: BatchLoaderOptions,
  ) {
    checkBatchSize(opts.batchSize);
    checkMaxBatches(opts.maxBatches);
    this.batchSize = opts.batchSize;
    this.shuffle = opts.shuffle ?? true;
    this.random = opts.random;
    if (this.shuffle && !this.random) {
      throw new Error('moekit data: BatchLoader with shuffle needs a seeded `random` function');
    }
    const full = (opts.dropLast ?? true) ? Math.floor(windows.length / this.batchSize) : Math.ceil(windows.length / this.batchSize);
    this.batchesPerEpoch = Math.min(full, opts.maxBatches ?? Infinity);
  }

  get epoch(): number {
    return this.epochNo;
  }

  /** Batches already taken from the current epoch. */
  get position(): number {
    return this.index;
  }

  private drawOrder(): number[] {
    const order = Array.from({ length: this.windows.length }, (_, i) => i);
    if (!this.shuffle) return order;
    // Fisher-Yates.
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(this.random!() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order;
  }

  private checkNonEmpty(): void {
    if (this.batchesPerEpoch === 0) {
      throw new Error(
        `moekit data: no full batch: ${this.windows.length} windows of ${this.windows.seqLen} tokens, batchSize ${this.batchSize}`,
      );
    }
  }

  private startNextEpochIfDone(): void {
    if (this.index >= this.batchesPerEpoch) {
      this.epochNo++;
      this.index = 0;
      this.order = undefined;
    }
  }

  /** The next batch; moves on to a new epoch when the current one is exhausted. */
  next(): Batch {
    this.checkNonEmpty();
    this.startNextEpochIfDone();
    this.order ??= this.drawOrder();
    const start = this.index * this.batchSize;
    const end = Math.min(start + this.batchSize, this.windows.length);
    this.index++;
    return makeBatch(this.windows, this.order.slice(start, end));
  }

  /** The remaining batches of the current epoch (or all of the next one, if the current one is done). */
  *epochBatches(): Generator<Batch> {
    this.checkNonEmpty();
    this.startNextEpochIfDone();
    while (this.index < this.batchesPerEpoch) yield this.next();
  }

  state(): LoaderState {
    const s: LoaderState = { epoch: this.epochNo, index: this.index };
    if (this.shuffle && this.order) s.order = this.order.slice();
    return s;
  }

  restore(state: LoaderState): void {
    const { epoch, index, order } = state;
    if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError(`moekit data: state.epoch must be an integer >= 0, got ${epoch}`);
    if (!Number.isInteger(index) || index < 0 || index > this.batchesPerEpoch) {
      throw new RangeError(`moekit data: state.index must be an integer in [0, ${this.batchesPerEpoch}], got ${index}`);
    }
    if (order !== undefined) {
      if (!this.shuffle) throw new Error('moekit data: state.order given to a loader without shuffle');
      const seen = new Uint8Array(this.windows.length);
      const ok = order.length === this.windows.length && order.every((w) => Number.isInteger(w) && w >= 0 && w < seen.length && !seen[w]++);
      if (!ok) throw new Error(`moekit data: state.order is not a permutation of the ${this.windows.length} windows`);
    } else if (this.shuffle && index > 0 && index < this.batchesPerEpoch) {
      throw new Error('moekit data: state.order is required to resume a shuffled loader mid-epoch');
    }
    this.epochNo = epoch;
    this.index = index;
    this.order = order?.slice(); // undefined: drawn when the next batch is taken
  }
}

export interface EvalBatchOptions {
  batchSize: number;
  /** Only the first maxBatches batches (the CT-MoE seed evaluates 150). */
  maxBatches?: number;
  /** Drop the final incomplete batch (default false: every window is evaluated). */
  dropLast?: boolean;
}

/** Evaluation batches: windows in order, no shuffle; each call starts from the beginning. */
export function* evalBatches(windows: TokenWindows, opts: EvalBatchOptions): Generator<Batch> {
  checkBatchSize(opts.batchSize);
  checkMaxBatches(opts.maxBatches);
  const B = opts.batchSize;
  const count = opts.dropLast ? Math.floor(windows.length / B) : Math.ceil(windows.length / B);
  const n = Math.min(count, opts.maxBatches ?? Infinity);
  for (let k = 0; k < n; k++) {
    const idx: number[] = [];
    for (let w = k * B; w < Math.min((k + 1) * B, windows.length); w++) idx.push(w);
    yield makeBatch(windows, idx);
  }
}
