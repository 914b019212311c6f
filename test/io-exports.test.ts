// `moekit/io`: the package's io subpath points at the built src/io/index.ts, which carries the
// safetensors reader / writer, header-only and sharded reads.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as io from '../src/io/index.js';

test('package.json exports ./io -> dist/io/index.js, and it exports the safetensors API', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    exports: Record<string, { import: string; types: string }>;
  };
  assert.deepEqual(pkg.exports['./io'], { types: './dist/io/index.d.ts', import: './dist/io/index.js' });
  for (const name of [
    'readSafetensors',
    'readSafetensorsHeader',
    'readSafetensorsHeaderSync',
    'writeSafetensors',
    'serializeSafetensors',
    'readCheckpointIndex',
    'readTensorRows',
    'writeShardedSafetensors',
    'decodeTensor',
  ]) {
    assert.equal(typeof (io as Record<string, unknown>)[name], 'function', name);
  }
});
