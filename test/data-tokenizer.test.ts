import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { loadDomainCorpus, type Domain } from '../src/data/corpora.js';
import { BpeTokenizer, gpt2TruncatedRanks } from '../src/data/tokenizer.js';
import {
  defaultCacheDir,
  domainTokenKey,
  encodeDocuments,
  loadDomainTokens,
  readTokenCache,
  tokenCachePath,
  writeTokenCache,
} from '../src/data/token-cache.js';

/** ~`target` chars of whole lines taken from documents spread over the corpus (deterministic). */
function sample(domain: Domain, target = 1_000_000): string {
  const docs = loadDomainCorpus(domain).documents;
  const perDoc = Math.ceil(target / 40);
  const stride = Math.max(1, Math.floor(docs.length / 40));
  const parts: string[] = [];
  let total = 0;
  for (let i = 0; total < target; i = (i + stride) % docs.length) {
    const doc = docs[i]!;
    const cut = doc.length <= perDoc ? doc.length : doc.lastIndexOf('\n', perDoc) + 1 || doc.lastIndexOf(' ', perDoc);
    parts.push(doc.slice(0, cut));
    total += cut;
  }
  return parts.join('\n');
}

const SAMPLES = { code: sample('code'), prose: sample('prose') };
const tok8k = BpeTokenizer.gpt2();

const sameIds = (a: ArrayLike<number>, b: ArrayLike<number>): boolean => {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};

const TRICKY = [
  '',
  'a',
  '   leading and trailing   ',
  "it's they're we'll I'd   \n\n\t  x",
  'emoji 🤖🧪 and CJK 混合专家模型, accents éàü, ℝ∑∫',
  'literal <|endoftext|> is plain text',
  'numbers 1234567890 3.14159e-10 0xDEADBEEF',
  '\r\n\r\nwindows\r\nlines',
];

test('vocabSize defaults to 8192 and is validated', () => {
  assert.equal(tok8k.vocabSize, 8192);
  for (const bad of [255, 50258, 1000.5, Number.NaN, -1]) {
    assert.throws(
      () => BpeTokenizer.gpt2(bad),
      (e: Error) => e instanceof RangeError && /vocabSize/.test(e.message) && /\[256, 50257\]/.test(e.message),
    );
  }
  assert.equal(BpeTokenizer.gpt2(256).vocabSize, 256);
});

test('decode(encode(x)) === x and ids < vocabSize on ~1 MB per domain', () => {
  for (const domain of ['code', 'prose'] as const) {
    const text = SAMPLES[domain];
    assert.ok(text.length >= 1_000_000);
    for (const tok of [tok8k, BpeTokenizer.gpt2(256)]) {
      const ids = tok.encode(text);
      assert.equal(tok.decode(ids), text, `${domain} roundtrip at vocab ${tok.vocabSize}`);
      let max = 0;
      for (const id of ids) max = Math.max(max, id);
      assert.ok(max < tok.vocabSize, `${domain}: max id ${max} >= ${tok.vocabSize}`);
    }
  }
  for (const s of TRICKY) assert.equal(tok8k.decode(tok8k.encode(s)), s);
});

test('equals js-tiktoken with the same truncated ranks (vocab 8192)', () => {
  const ref = new Tiktoken(gpt2TruncatedRanks(8192));
  for (const text of [SAMPLES.code.slice(0, 300_000), SAMPLES.prose.slice(0, 300_000), ...TRICKY]) {
    assert.ok(sameIds(tok8k.encode(text), ref.encode(text, [], [])));
  }
});

test("vocab 50257 equals js-tiktoken's own gpt2 encoder", () => {
  const full = BpeTokenizer.gpt2(50257);
  const ref = new Tiktoken(gpt2Ranks);
  for (const text of [SAMPLES.code.slice(0, 300_000), SAMPLES.prose.slice(0, 300_000), ...TRICKY]) {
    assert.ok(sameIds(full.encode(text), ref.encode(text, [], [])));
  }
  assert.equal(full.decode([50256]), '<|endoftext|>');
});

test('decode rejects ids outside the vocabulary', () => {
  assert.throws(() => tok8k.decode([1, 8192]), /position 1.*\[0, 8192\).*8192/);
  assert.throws(() => tok8k.decode([-1]), RangeError);
  assert.throws(() => tok8k.decode([0.5]), RangeError);
});

test('fingerprint depends on the vocabulary', () => {
  assert.equal(BpeTokenizer.gpt2(8192).fingerprint, tok8k.fingerprint);
  assert.notEqual(BpeTokenizer.gpt2(4096).fingerprint, tok8k.fingerprint);
});

test('chunked encoding equals encoding the joined text', () => {
  const docs = loadDomainCorpus('code').documents.slice(0, 6);
  const whole = tok8k.encode(docs.join('\n'));
  for (const chunkChars of [1_000, 7_777, 500_000]) {
    assert.ok(sameIds(encodeDocuments(tok8k, docs, { chunkChars }), whole), `chunkChars ${chunkChars}`);
  }
  const prose = loadDomainCorpus('prose').documents.slice(0, 3);
  assert.ok(sameIds(encodeDocuments(tok8k, prose, { chunkChars: 5_000 }), tok8k.encode(prose.join('\n'))));
});

test('token cache: atomic raw files, roundtrip, corrupt files rejected', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moekit-cache-'));
  try {
    const key = { corpus: 'test-corpus', version: '1.0.0', vocabSize: 8192, split: 'train', tokenizerHash: 'abc' };
    assert.equal(readTokenCache(key, dir), undefined);
    const ids = Int32Array.from([0, 1, 8191, 42, 300]);
    const path = writeTokenCache(key, ids, join(dir, 'nested'));
    assert.ok(path.endsWith('.u16'));
    assert.deepEqual(readTokenCache(key, join(dir, 'nested')), ids);
    assert.deepEqual(readdirSync(join(dir, 'nested')), [path.slice(path.lastIndexOf('/') + 1)]); // no temp files left

    const wideKey = { ...key, vocabSize: 70_000 };
    const wide = Int32Array.from([69_999, 0, 65_536]);
    assert.ok(writeTokenCache(wideKey, wide, dir).endsWith('.i32'));
    assert.deepEqual(readTokenCache(wideKey, dir), wide);

    writeFileSync(tokenCachePath(key, dir), Buffer.from([1, 2, 3]));
    assert.throws(() => readTokenCache(key, dir), /not a multiple of 2/);
    writeFileSync(tokenCachePath(key, dir), Buffer.from([0xff, 0xff]));
    assert.throws(() => readTokenCache(key, dir), /outside \[0, 8192\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadDomainTokens encodes once, then reads the cache', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moekit-cache-'));
  try {
    const first = loadDomainTokens('prose', 'val', tok8k, { cacheDir: dir });
    assert.ok(existsSync(tokenCachePath(domainTokenKey('prose', 'val', tok8k), dir)));
    const second = loadDomainTokens('prose', 'val', tok8k, { cacheDir: dir });
    assert.deepEqual(second, first);
    assert.ok(first.length > 50_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MOEKIT_CACHE_DIR overrides the default cache directory', () => {
  const saved = process.env['MOEKIT_CACHE_DIR'];
  try {
    process.env['MOEKIT_CACHE_DIR'] = '/tmp/somewhere';
    assert.equal(defaultCacheDir(), '/tmp/somewhere');
    delete process.env['MOEKIT_CACHE_DIR'];
    assert.match(defaultCacheDir(), /\.cache[/\\]moekit$/);
  } finally {
    if (saved === undefined) delete process.env['MOEKIT_CACHE_DIR'];
    else process.env['MOEKIT_CACHE_DIR'] = saved;
  }
});
