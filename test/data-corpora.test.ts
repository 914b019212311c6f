import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CORPUS_SOURCES, loadDomainCorpus, packageDir, splitTrainVal, validationCount } from '../src/data/corpora.js';

test('corpus packages resolve to their pinned versions', () => {
  for (const src of Object.values(CORPUS_SOURCES)) {
    const pj = JSON.parse(readFileSync(join(packageDir(src.packageName), 'package.json'), 'utf8')) as { name: string; version: string };
    assert.equal(pj.name, src.packageName);
    assert.equal(pj.version, src.version);
  }
  assert.throws(() => packageDir('moekit-no-such-package'), /not installed/);
});

test('code corpus: effect sources, one document per file, sorted, UI bundles excluded', () => {
  const c = loadDomainCorpus('code');
  assert.equal(c.domain, 'code');
  assert.equal(c.documents.length, 570);
  assert.equal(c.names.length, c.documents.length);
  assert.ok(c.names.every((n) => n.endsWith('.ts') && !n.includes('\\')));
  assert.deepEqual(
    [...c.names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
    c.names,
  );
  assert.ok(!c.names.includes('http-api/internal/httpApiScalar.ts'));
  assert.ok(!c.names.includes('http-api/internal/httpApiSwagger.ts'));
  assert.ok(c.names.includes('http-api/internal/html.ts'));
  const chars = c.documents.reduce((s, d) => s + d.length, 0);
  assert.equal(chars, 16_402_921);
  assert.equal(loadDomainCorpus('code'), c); // memoised
});

test('prose corpus: State of the Union addresses in (year, name) order', () => {
  const c = loadDomainCorpus('prose');
  assert.equal(c.documents.length, 233);
  assert.equal(c.names[0], '1790 George Washington');
  assert.equal(c.names.at(-1), '2021 Joseph R Biden');
  const years = c.names.map((n) => Number(n.slice(0, 4)));
  assert.ok(years.every((y, i) => i === 0 || y >= years[i - 1]!));
  assert.ok(c.documents.every((d) => d.length > 1000));
  assert.equal(
    c.documents.reduce((s, d) => s + d.length, 0),
    10_759_831,
  );
});

test('unknown domain is rejected', () => {
  assert.throws(() => loadDomainCorpus('math' as never), /domain must be 'code' or 'prose'/);
});

test('validationCount: round-half-up of 10%, at least 1, leaves >= 1 for training', () => {
  assert.equal(validationCount(570), 57);
  assert.equal(validationCount(233), 23);
  assert.equal(validationCount(2), 1);
  assert.equal(validationCount(5), 1); // 0.5 -> 1
  assert.equal(validationCount(14), 1); // 1.4 -> 1
  assert.equal(validationCount(15), 2); // 1.5 -> 2
  assert.equal(validationCount(25), 3); // 2.5 -> 3
  assert.equal(validationCount(10, 0.95), 9);
  assert.throws(() => validationCount(1), /at least 2 documents/);
  assert.throws(() => validationCount(10, 0), /valFraction/);
  assert.throws(() => validationCount(10, 1), /valFraction/);
});

test('splitTrainVal: first documents go to validation, the rest to training', () => {
  const docs = Array.from({ length: 25 }, (_, i) => `doc${i}`);
  const { train, val } = splitTrainVal(docs);
  assert.deepEqual(val, ['doc0', 'doc1', 'doc2']);
  assert.equal(train.length, 22);
  assert.deepEqual([...val, ...train], docs);

  for (const [domain, nVal, nTrain] of [
    ['code', 57, 513],
    ['prose', 23, 210],
  ] as const) {
    const s = splitTrainVal(loadDomainCorpus(domain).documents);
    assert.equal(s.val.length, nVal);
    assert.equal(s.train.length, nTrain);
  }
});
