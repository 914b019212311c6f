/**
 * Tokenised corpora, cached on disk.
 *
 * Encoding (CT-MoE seed: "encode in 500k-char chunks"): the documents of a split are joined with
 * DOC_SEPARATOR ('\n') and the text is encoded in chunks of at most `chunkChars` characters. Rather than
 * only document boundaries, a chunk may end at any whitespace character that is followed by a
 * non-whitespace one (the last such point before the limit). GPT-2's pre-tokenisation regex starts a
 * piece there whether or not the text is cut (the whitespace run before it ends a piece, and the
 * piece after it starts with that whitespace), so the result is exactly `tokenizer.encode(docs.join('\n'))`
 * for any chunk size: no word is ever cut. Only a window whose second half holds no whitespace at all
 * is cut at the limit itself.
 *
 * Cache files: raw little-endian Uint16 (vocab <= 65536) or Int32 token ids, no header, one file per
 * (corpus, package version, vocab size, split, tokenizer fingerprint), written atomically
 * (temp file in the same directory + rename). Directory: $MOEKIT_CACHE_DIR or ~/.cache/moekit.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readEnv } from '../env.js';
import { CORPUS_SOURCES, loadDomainCorpus, splitTrainVal, type Domain } from './corpora.js';
import type { BpeTokenizer } from './tokenizer.js';

export const DOC_SEPARATOR = '\n';
export const DEFAULT_CHUNK_CHARS = 500_000;

export function defaultCacheDir(): string {
  return (readEnv('MOEKIT_CACHE_DIR') as string | undefined) ?? join(homedir(), '.cache', 'moekit');
}

const isWhitespace = (ch: string | undefined): boolean => ch !== undefined && /\s/u.test(ch);

/** End of the chunk starting at `start` (see the module comment for why these cut points are neutral). */
function chunkEnd(text: string, start: number, chunkChars: number): number {
  const limit = start + chunkChars;
  if (limit >= text.length) return text.length;
  for (let p = limit; p > start + chunkChars / 2; p--) {
    if (p + 1 < text.length && isWhitespace(text[p]) && !isWhitespace(text[p + 1])) return p;
  }
  // No whitespace: hard cut, but never between the halves of a surrogate pair.
  const c = text.charCodeAt(limit);
  return c >= 0xdc00 && c <= 0xdfff ? limit + 1 : limit;
}

export interface EncodeOptions {
  chunkChars?: number;
  /** Called after each chunk with (characters done, total characters). */
  onProgress?: (done: number, total: number) => void;
}

/** Encode documents joined by DOC_SEPARATOR, chunk by chunk. */
export function encodeDocuments(tokenizer: BpeTokenizer, docs: readonly string[], opts: EncodeOptions = {}): Int32Array {
  const chunkChars = opts.chunkChars ?? DEFAULT_CHUNK_CHARS;
  if (!Number.isInteger(chunkChars) || chunkChars < 2) {
    throw new RangeError(`moekit data: chunkChars must be an integer >= 2, got ${chunkChars}`);
  }
  const text = docs.join(DOC_SEPARATOR);
  const parts: Int32Array[] = [];
  let total = 0;
  for (let start = 0; start < text.length; ) {
    const end = chunkEnd(text, start, chunkChars);
    const ids = tokenizer.encode(text.slice(start, end));
    parts.push(ids);
    total += ids.length;
    start = end;
    opts.onProgress?.(end, text.length);
  }
  const out = new Int32Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export interface TokenCacheKey {
  /** Corpus name, e.g. 'code-effect'. */
  corpus: string;
  /** Version of the package the corpus comes from. */
  version: string;
  vocabSize: number;
  /** e.g. 'train' or 'val' (include anything else that changes the text, e.g. the val fraction). */
  split: string;
  /** BpeTokenizer.fingerprint. */
  tokenizerHash: string;
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]+/g, '_');

export function tokenCachePath(key: TokenCacheKey, dir: string = defaultCacheDir()): string {
  const ext = key.vocabSize <= 65536 ? 'u16' : 'i32';
  const name = [key.corpus, key.version, `v${key.vocabSize}`, key.split, key.tokenizerHash].map(safe).join('-');
  return join(dir, `${name}.${ext}`);
}

/** Read cached tokens, or undefined when absent. Throws on a corrupt file (wrong size or id range). */
export function readTokenCache(key: TokenCacheKey, dir: string = defaultCacheDir()): Int32Array | undefined {
  const path = tokenCachePath(key, dir);
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const wide = key.vocabSize > 65536;
  const width = wide ? 4 : 2;
  if (buf.length % width !== 0) {
    throw new Error(`moekit data: token cache ${path} has ${buf.length} bytes, not a multiple of ${width}; delete it`);
  }
  const n = buf.length / width;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const id = wide ? buf.readInt32LE(i * 4) : buf.readUInt16LE(i * 2);
    if (id < 0 || id >= key.vocabSize) {
      throw new Error(`moekit data: token cache ${path} holds id ${id} outside [0, ${key.vocabSize}); delete it`);
    }
    out[i] = id;
  }
  return out;
}

/** Write tokens atomically; returns the file path. */
export function writeTokenCache(key: TokenCacheKey, tokens: Int32Array, dir: string = defaultCacheDir()): string {
  const path = tokenCachePath(key, dir);
  const wide = key.vocabSize > 65536;
  const buf = Buffer.allocUnsafe(tokens.length * (wide ? 4 : 2));
  for (let i = 0; i < tokens.length; i++) {
    if (wide) buf.writeInt32LE(tokens[i]!, i * 4);
    else buf.writeUInt16LE(tokens[i]!, i * 2);
  }
  mkdirSync(dir, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    writeFileSync(tmp, buf);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return path;
}

export type Split = 'train' | 'val';

export interface DomainTokenOptions extends EncodeOptions {
  valFraction?: number;
  /** Cache directory; default defaultCacheDir(). */
  cacheDir?: string;
  /** Set false to neither read nor write the cache. */
  useCache?: boolean;
}

/** Cache key of one domain split (the val fraction is part of the split name unless it is 0.1). */
export function domainTokenKey(domain: Domain, split: Split, tokenizer: BpeTokenizer, valFraction = 0.1): TokenCacheKey {
  const src = CORPUS_SOURCES[domain];
  return {
    corpus: `${domain}-${src.packageName}`,
    version: src.version,
    vocabSize: tokenizer.vocabSize,
    split: valFraction === 0.1 ? split : `${split}@${valFraction}`,
    tokenizerHash: tokenizer.fingerprint,
  };
}

/** Token ids of one split of a domain, from the cache or encoded (and then cached). */
export function loadDomainTokens(domain: Domain, split: Split, tokenizer: BpeTokenizer, opts: DomainTokenOptions = {}): Int32Array {
  if (split !== 'train' && split !== 'val') {
    throw new Error(`moekit data: split must be 'train' or 'val', got ${JSON.stringify(split)}`);
  }
  const valFraction = opts.valFraction ?? 0.1;
  const key = domainTokenKey(domain, split, tokenizer, valFraction);
  const dir = opts.cacheDir ?? defaultCacheDir();
  const useCache = opts.useCache ?? true;
  if (useCache) {
    const hit = readTokenCache(key, dir);
    if (hit) return hit;
  }
  const docs = splitTrainVal(loadDomainCorpus(domain).documents, valFraction)[split];
  const tokens = encodeDocuments(tokenizer, docs, opts);
  if (useCache) writeTokenCache(key, tokens, dir);
  return tokens;
}
