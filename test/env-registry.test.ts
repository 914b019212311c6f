// The registry of MOEKIT_* variables (src/env.ts): README's table lists the same names, every
// name the sources use is registered, reads are validated, and the CLI reports a bad value
// of a variable the C side reads (MOEKIT_NUM_THREADS) in one line instead of ignoring it.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { ENV_VARS, EnvError, readEnv } from '../src/env.js';
import { runMoekit } from './helpers/cli.js';
import { withEnv } from './helpers/env.js';

const ROOT = join(import.meta.dirname, '..');
const registered = new Set(ENV_VARS.map((v) => v.name));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : /\.(ts|mjs|js|c|h)$/.test(f) ? [p] : [];
  });
}
const SOURCES = ['src', 'native', 'scripts', 'bench'].flatMap((d) => files(join(ROOT, d)));

test('README.md has one table of exactly the registered variables', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| `(MOEKIT_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]!);
  assert.deepEqual([...rows].sort(), [...registered].sort());
  assert.equal(new Set(rows).size, rows.length, 'no variable listed twice');
});

test('every MOEKIT_* name in src/, native/, scripts/ and bench/ is registered (C include guards aside)', () => {
  const unregistered: string[] = [];
  for (const f of SOURCES) {
    for (const m of readFileSync(f, 'utf8').matchAll(/MOEKIT_[A-Z0-9_]*[A-Z0-9]/g)) {
      if (/_H$/.test(m[0]) || registered.has(m[0])) continue;
      unregistered.push(`${relative(ROOT, f)}: ${m[0]}`);
    }
  }
  assert.deepEqual(unregistered, []);
});

// Lead-owned files that still read process.env themselves (MOEKIT_MOE_PATH with its own check, MOEKIT_MOE_ROW_BLOCKS).
const DIRECT_READERS = new Set(['src/moe/execution/plan.ts']);

test('TypeScript reads MOEKIT_* variables through src/env.ts (except the listed lead-owned files)', () => {
  const direct = SOURCES.filter((f) => f.endsWith('.ts') && /process\.env(\.MOEKIT_|\[['"]MOEKIT_)/.test(readFileSync(f, 'utf8')))
    .map((f) => relative(ROOT, f))
    .filter((f) => !DIRECT_READERS.has(f));
  assert.deepEqual(direct, []);
});

test('readEnv: unset and empty are undefined, valid values parse, invalid ones name variable, value and range', () => {
  withEnv('MOEKIT_NUM_THREADS', '', () => assert.equal(readEnv('MOEKIT_NUM_THREADS'), undefined));
  withEnv('MOEKIT_NUM_THREADS', '12', () => assert.equal(readEnv('MOEKIT_NUM_THREADS'), 12));
  for (const bad of ['abc', '100000', '0', '-3', '0x10', '1e3', ' 4', '4.0']) {
    withEnv('MOEKIT_NUM_THREADS', bad, () =>
      assert.throws(
        () => readEnv('MOEKIT_NUM_THREADS'),
        (e: Error) => e instanceof EnvError && e.message.includes(`MOEKIT_NUM_THREADS='${bad}'`) && e.message.includes('[1, 256]'),
      ),
    );
  }
  withEnv('MOEKIT_MOE_GC', 'off', () =>
    assert.throws(() => readEnv('MOEKIT_MOE_GC'), /MOEKIT_MOE_GC='off' is invalid: expected '0' or '1'/),
  );
  // the ISA names are this architecture's: NEON on arm64, AVX2 / AVX-512 on x86-64
  const [own, foreign] = process.arch === 'arm64' ? ['neon', 'avx2'] : ['avx2', 'neon'];
  withEnv('MOEKIT_ISA', own, () => assert.equal(readEnv('MOEKIT_ISA'), own));
  withEnv('MOEKIT_ISA', foreign, () =>
    assert.throws(() => readEnv('MOEKIT_ISA'), new RegExp(`MOEKIT_ISA='${foreign}' is invalid: expected`)),
  );
  assert.throws(() => readEnv('MOEKIT_NOT_REGISTERED'), /not in the registry/);
});

test('moekit info: a bad MOEKIT_NUM_THREADS or MOEKIT_BACKEND is one line, no stack trace', () => {
  for (const [name, value] of [
    ['MOEKIT_NUM_THREADS', 'abc'],
    ['MOEKIT_NUM_THREADS', '100000'],
    ['MOEKIT_BACKEND', 'nosuch'],
  ] as const) {
    const r = runMoekit(['info'], { timeout: 30_000, env: { ...process.env, [name]: value } });
    assert.equal(r.code, 1, `${name}=${value}: ${r.why}`);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0]!, new RegExp(`^error: ${name}='${value}' is invalid: expected `));
    assert.ok(!r.stderr.includes('    at '), r.stderr);
    assert.ok(lines.length <= 2, r.stderr);
  }
});
