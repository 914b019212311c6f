/**
 * GPT-2 byte-level BPE (ranks shipped in `js-tiktoken/ranks/gpt2`) truncated to its first N ranks.
 *
 * Why truncation is valid: GPT-2 ranks 0..255 are the 256 single bytes and every rank >= 256 is the
 * concatenation of two tokens of lower rank, so the first N ranks form a closed BPE vocabulary.
 *
 * Encoding follows tiktoken exactly (so `gpt2(50257)` reproduces js-tiktoken's gpt2 output):
 *   1. split the text with the GPT-2 pre-tokenisation regex,
 *   2. if a piece's UTF-8 bytes are one token, emit it,
 *   3. else repeatedly merge the adjacent pair whose concatenation has the lowest rank (leftmost on ties).
 * The merge loop runs over a (left id, right id) -> merged id table and results are cached per piece,
 * which makes it several times faster than js-tiktoken's generic implementation.
 *
 * No special tokens: `<|endoftext|>` is encoded as ordinary text. Id 50256 (only present when
 * vocabSize = 50257) is GPT-2's reserved end-of-text slot; encode never produces it and decode renders
 * it as the literal `<|endoftext|>`.
 */
import { createHash } from 'node:crypto';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import type { TiktokenBPE } from 'js-tiktoken/lite';

export const GPT2_MAX_VOCAB = 50257;
export const MIN_VOCAB = 256;
export const DEFAULT_VOCAB = 8192;
const GPT2_EOT_ID = 50256;
const EOT_TEXT = '<|endoftext|>';

/** Bump when the encoding algorithm changes: it is part of the token-cache key. */
export const TOKENIZER_IMPL_VERSION = 'moekit-bpe-1';

/** Base64 tokens of the gpt2 ranks, in rank order (the file is one line `! 0 tok0 tok1 ...`). */
function gpt2TokenList(): string[] {
  const lines = gpt2Ranks.bpe_ranks.split('\n').filter(Boolean);
  const out: string[] = [];
  for (const line of lines) {
    const [, offsetStr, ...tokens] = line.split(' ');
    const offset = Number.parseInt(offsetStr ?? '', 10);
    if (offset !== out.length) throw new Error(`moekit tokenizer: unexpected gpt2 rank layout (offset ${offsetStr})`);
    out.push(...tokens);
  }
  return out;
}

export function validateVocabSize(vocabSize: number): void {
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_VOCAB || vocabSize > GPT2_MAX_VOCAB) {
    throw new RangeError(`moekit tokenizer: vocabSize must be an integer in [${MIN_VOCAB}, ${GPT2_MAX_VOCAB}], got ${vocabSize}`);
  }
}

/**
 * A js-tiktoken ranks object holding only the first `vocabSize` GPT-2 ranks (and no special tokens
 * unless vocabSize = 50257). `new Tiktoken(gpt2TruncatedRanks(n))` is an independent reference encoder.
 */
export function gpt2TruncatedRanks(vocabSize: number = DEFAULT_VOCAB): TiktokenBPE {
  validateVocabSize(vocabSize);
  const tokens = gpt2TokenList().slice(0, Math.min(vocabSize, GPT2_EOT_ID));
  return {
    pat_str: gpt2Ranks.pat_str,
    special_tokens: vocabSize > GPT2_EOT_ID ? { [EOT_TEXT]: GPT2_EOT_ID } : {},
    bpe_ranks: `! 0 ${tokens.join(' ')}`,
  };
}

/** Drop the piece cache when it grows past this many entries (bounds memory on odd inputs). */
const PIECE_CACHE_LIMIT = 1 << 18;

export class BpeTokenizer {
  readonly vocabSize: number;
  /** Hash of the algorithm version, regex and rank table: changes whenever encodings could change. */
  readonly fingerprint: string;
  private readonly tokenBytes: Uint8Array[];
  private readonly byteToId = new Int32Array(256);
  /** latin1 string of a token's bytes -> id (used for the whole-piece shortcut). */
  private readonly idOfBytes = new Map<string, number>();
  /** left * vocabSize + right -> merged id. */
  private readonly pairs = new Map<number, number>();
  private readonly pattern: RegExp;
  private readonly pieceCache = new Map<string, number[]>();
  private readonly utf8 = new TextDecoder('utf-8');

  /** GPT-2 BPE truncated to its first `vocabSize` ranks (default 8192, range [256, 50257]). */
  static gpt2(vocabSize: number = DEFAULT_VOCAB): BpeTokenizer {
    return new BpeTokenizer(gpt2TruncatedRanks(vocabSize), vocabSize);
  }

  private constructor(ranks: TiktokenBPE, vocabSize: number) {
    this.vocabSize = vocabSize;
    this.pattern = new RegExp(ranks.pat_str, 'gu');
    this.fingerprint = createHash('sha256')
      .update(`${TOKENIZER_IMPL_VERSION}\0${ranks.pat_str}\0${ranks.bpe_ranks}`)
      .digest('hex')
      .slice(0, 16);
    const b64 = ranks.bpe_ranks.split(' ').slice(2);
    this.tokenBytes = b64.map((t) => new Uint8Array(Buffer.from(t, 'base64')));
    this.tokenBytes.forEach((bytes, id) => this.idOfBytes.set(Buffer.from(bytes).toString('latin1'), id));
    if (vocabSize > GPT2_EOT_ID) this.tokenBytes[GPT2_EOT_ID] = new TextEncoder().encode(EOT_TEXT);
    for (let id = 0; id < 256; id++) {
      const bytes = this.tokenBytes[id]!;
      if (bytes.length !== 1) throw new Error(`moekit tokenizer: gpt2 rank ${id} is not a single byte`);
      this.byteToId[bytes[0]!] = id;
    }
    // Every split of a token into two tokens is a pair tiktoken could merge into it.
    for (const [key, id] of this.idOfBytes) {
      for (let k = 1; k < key.length; k++) {
        const left = this.idOfBytes.get(key.slice(0, k));
        const right = this.idOfBytes.get(key.slice(k));
        if (left !== undefined && right !== undefined) this.pairs.set(left * vocabSize + right, id);
      }
    }
  }

  encode(text: string): Int32Array {
    const out: number[] = [];
    this.pattern.lastIndex = 0;
    for (let m = this.pattern.exec(text); m !== null; m = this.pattern.exec(text)) {
      const piece = m[0];
      let ids = this.pieceCache.get(piece);
      if (ids === undefined) {
        ids = this.encodePiece(piece);
        if (this.pieceCache.size >= PIECE_CACHE_LIMIT) this.pieceCache.clear();
        this.pieceCache.set(piece, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    }
    return Int32Array.from(out);
  }

  private encodePiece(piece: string): number[] {
    const bytes = Buffer.from(piece, 'utf8');
    const whole = this.idOfBytes.get(bytes.toString('latin1'));
    if (whole !== undefined) return [whole];
    const parts: number[] = Array.from(bytes, (b) => this.byteToId[b]!);
    const n = this.vocabSize;
    // mergeRank[i] = id of parts[i] ++ parts[i+1], or Infinity if that is not a token.
    const mergeRank = (i: number): number => this.pairs.get(parts[i]! * n + parts[i + 1]!) ?? Infinity;
    const ranks: number[] = [];
    for (let i = 0; i + 1 < parts.length; i++) ranks.push(mergeRank(i));
    for (;;) {
      let best = Infinity;
      let at = -1;
      for (let i = 0; i < ranks.length; i++) {
        if (ranks[i]! < best) {
          best = ranks[i]!;
          at = i;
        }
      }
      if (at < 0) break;
      parts[at] = best;
      parts.splice(at + 1, 1);
      ranks.splice(at, 1);
      if (at < ranks.length) ranks[at] = mergeRank(at);
      if (at > 0) ranks[at - 1] = mergeRank(at - 1);
    }
    return parts;
  }

  decode(ids: ArrayLike<number>): string {
    const chunks: Uint8Array[] = [];
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const bytes = Number.isInteger(id) ? this.tokenBytes[id] : undefined;
      if (bytes === undefined) {
        throw new RangeError(`moekit tokenizer: token id at position ${i} must be an integer in [0, ${this.vocabSize}), got ${id}`);
      }
      chunks.push(bytes);
      length += bytes.length;
    }
    const buf = new Uint8Array(length);
    let off = 0;
    for (const c of chunks) {
      buf.set(c, off);
      off += c.length;
    }
    return this.utf8.decode(buf);
  }
}
