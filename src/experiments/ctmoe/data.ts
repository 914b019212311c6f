// The two domains (code = effect's TypeScript sources, prose = State of the Union addresses),
// first 10% of each domain's documents held out for validation (src/data). Training text =
// code then prose, concatenated (the seed's train_text); windows of seqLen+1 tokens shuffled
// by a seeded generator. Mixed validation = half code, half prose: every mixed batch takes its
// first half of rows from the code windows and the second half from the prose windows, in
// order, so any prefix of the mixed batches (the seed evaluates the first 150) is half each.
import { TokenWindows, makeBatch, type Batch } from '../../data/batches.js';
import type { Domain } from '../../data/corpora.js';
import { loadDomainTokens } from '../../data/token-cache.js';
import { BpeTokenizer } from '../../data/tokenizer.js';

export interface CtMoeData {
  vocabSize: number;
  train: Int32Array;
  val: Record<Domain, Int32Array>;
}

export function loadCtMoeData(vocabSize: number): CtMoeData {
  const tok = BpeTokenizer.gpt2(vocabSize);
  const code = loadDomainTokens('code', 'train', tok);
  const prose = loadDomainTokens('prose', 'train', tok);
  const train = new Int32Array(code.length + prose.length);
  train.set(code, 0);
  train.set(prose, code.length);
  return { vocabSize, train, val: { code: loadDomainTokens('code', 'val', tok), prose: loadDomainTokens('prose', 'val', tok) } };
}

/** The first `maxBatches` batches of one domain's validation windows, in order (full batches only). */
export function* domainBatches(tokens: Int32Array, seqLen: number, batchSize: number, maxBatches: number): Generator<Batch> {
  const w = new TokenWindows(tokens, seqLen);
  const n = Math.min(Math.floor(w.length / batchSize), maxBatches);
  for (let k = 0; k < n; k++)
    yield makeBatch(
      w,
      Array.from({ length: batchSize }, (_, i) => k * batchSize + i),
    );
}

/** Mixed batches: rows [0, B/2) from code windows, [B/2, B) from prose windows (B >= 2). */
export function* mixedBatches(val: Record<Domain, Int32Array>, seqLen: number, batchSize: number, maxBatches: number): Generator<Batch> {
  const half = Math.ceil(batchSize / 2);
  const rest = batchSize - half;
  const wc = new TokenWindows(val.code, seqLen);
  const wp = new TokenWindows(val.prose, seqLen);
  const n = Math.min(Math.floor(wc.length / half), rest > 0 ? Math.floor(wp.length / rest) : Infinity, maxBatches);
  for (let k = 0; k < n; k++) {
    const a = makeBatch(
      wc,
      Array.from({ length: half }, (_, i) => k * half + i),
    );
    const b = makeBatch(
      wp,
      Array.from({ length: rest }, (_, i) => k * rest + i),
    );
    const input = new Int32Array(batchSize * seqLen);
    const target = new Int32Array(batchSize * seqLen);
    input.set(a.input, 0);
    input.set(b.input, a.input.length);
    target.set(a.target, 0);
    target.set(b.target, a.target.length);
    yield { input, target, batch: batchSize, seqLen };
  }
}
