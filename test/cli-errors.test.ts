// The CLI's failures (issue 27): one line and a hint, never the help text or a stack trace
// (--debug adds the stack); strict numbers; --out checked without hanging; sizes checked
// against memory before anything is allocated; a broken results.json named.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { parseSet } from '../src/cli/ablate.js';
import { parseFloatStrict, parseIntStrict } from '../src/cli/args.js';
import { experimentConfig } from '../src/experiments/ctmoe/config.js';
import { checkTrainingMemory, estimateTrainingMemory } from '../src/experiments/ctmoe/memory.js';
import { runMoekit as moekit } from './helpers/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'moekit-cli-errors-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Exit 1, the first stderr line matches, at most a hint after it, no help text, no stack. */
function failsInOneLine(args: string[], re: RegExp): void {
  const r = moekit(args);
  assert.equal(r.code, 1, r.why);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines[0]!, re, args.join(' '));
  assert.ok(lines.length <= 2, `${args.join(' ')}: ${lines.length} lines:\n${r.stderr}`);
  assert.ok(!r.stderr.includes('Usage:') && !r.stderr.includes('    at '), r.stderr);
}

test('unknown command, non-decimal numbers, empty or impossible --out, huge sizes: one line each', () => {
  const out = join(tmp, 'never');
  failsInOneLine(['nosuchcmd'], /^error: unknown command 'nosuchcmd'; commands: info, demo, ablate/);
  failsInOneLine(['ablate', '--steps', '1e20', '--out', out], /--steps must be a decimal integer in \[1, 1000000000\] \(got '1e20'\)/);
  failsInOneLine(['ablate', '--steps', '0x10', '--out', out], /--steps must be a decimal integer in \[1, 1000000000\] \(got '0x10'\)/);
  failsInOneLine(['ablate', '--set', 'lr=0x10', '--out', out], /--set lr must be a finite decimal number \(got '0x10'\)/);
  failsInOneLine(['ablate', '--set', 'steps=1e20', '--out', out], /--set steps must be a decimal integer/);
  failsInOneLine(['ablate', '--out', ''], /^error: --out must name a directory \(got an empty string\)/);
  failsInOneLine(['ablate', '--on-nonfinite', 'ignore', '--out', out], /argument 'ignore' is invalid\. Allowed choices are stop, skip/);
  const t0 = performance.now();
  failsInOneLine(['ablate', '--out', '/proc/x/y', '--steps', '2'], /^error: cannot create \/proc\/x\/y: /);
  assert.ok(performance.now() - t0 < 30_000, 'no hang');
  const big = moekit(['ablate', '--set', 'batchSize=100000', '--out', out]);
  assert.equal(big.code, 1);
  assert.match(big.stderr, /^error: this config needs about [\d.]+ GiB to train .* but [\d.]+ GiB is available \([\d.]+ GiB total\)/);
});

test('--figures-only on a broken results.json names the file; --debug adds the stack', () => {
  const dir = join(tmp, 'broken');
  rmSync(dir, { recursive: true, force: true });
  spawnSync('mkdir', [dir]);
  writeFileSync(join(dir, 'results.json'), '{"format":"moekit-ctmoe-ablation","order":[1,2');
  failsInOneLine(
    ['ablate', '--figures-only', '--out', dir],
    new RegExp(`^error: ${join(dir, 'results.json').replace(/[/.]/g, '\\$&')}: is not valid JSON`),
  );
  const r = moekit(['ablate', '--figures-only', '--out', dir, '--debug']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /JsonFileError: .*results\.json: is not valid JSON[\s\S]* {4}at /);
});

test('strict number parsers: decimal only, in range, naming the flag', () => {
  assert.equal(parseIntStrict('--n', '42', 1, 100), 42);
  assert.equal(parseIntStrict('--n', '+7', 1, 100), 7);
  for (const bad of ['0x10', '1e2', '4.0', '', ' 4', '4 ', 'Infinity', '101', '0', '١٢']) {
    assert.throws(
      () => parseIntStrict('--n', bad, 1, 100),
      (e: Error) => e instanceof InvalidArgumentError && e.message.includes('--n') && e.message.includes('[1, 100]'),
    );
  }
  assert.equal(parseFloatStrict('--lr', '2e-4'), 2e-4);
  assert.equal(parseFloatStrict('--lr', '-.5'), -0.5);
  for (const bad of ['0x10', '1e400', 'NaN', 'Infinity', '', '1,5', '.', 'e5'])
    assert.throws(() => parseFloatStrict('--lr', bad), /--lr must be a finite decimal number/);
  assert.deepEqual(parseSet('betas=0.9,0.95'), { betas: [0.9, 0.95] });
  assert.deepEqual(parseSet('betas=[0.9,0.95]'), { betas: [0.9, 0.95] });
  assert.deepEqual(parseSet('dModel=64'), { dModel: 64 });
  assert.throws(() => parseSet('dModel=64.5'), /--set dModel must be a decimal integer/);
  assert.throws(() => parseSet('seed=true'), /--set seed must be a decimal integer/);
});

test('memory estimate: the tiny preset fits, 100000 x 64 tokens does not, and the message gives both numbers', () => {
  const tiny = experimentConfig('tiny');
  assert.ok(estimateTrainingMemory(tiny).bytes < 2 ** 30);
  checkTrainingMemory(tiny, 4 * 2 ** 30, 8 * 2 ** 30);
  // activations grow linearly in batchSize: 4 bytes x tokens x per-token floats
  const a = estimateTrainingMemory({ ...tiny, batchSize: 10 }).activationBytes;
  assert.equal(estimateTrainingMemory({ ...tiny, batchSize: 20 }).activationBytes, 2 * a);
  assert.throws(
    () => checkTrainingMemory({ ...tiny, batchSize: 100_000 }, 16 * 2 ** 30, 32 * 2 ** 30),
    /needs about \d+\.\d GiB .* but 16\.0 GiB is available \(32\.0 GiB total\)/,
  );
  assert.throws(() => checkTrainingMemory({ ...tiny, seqLen: 100_000 }, 16 * 2 ** 30, 32 * 2 ** 30), /seqLen 100000/);
});
