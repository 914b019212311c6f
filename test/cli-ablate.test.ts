// `moekit ablate` as a child process: bad options fail with the option, the value and what is
// allowed; a very small run (6 steps, a micro model, 2 variants) writes results.json, the figures
// and report.html, and a rerun skips the finished variants.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { parseSet, parseVariants } from '../src/cli/ablate.js';
import { runMoekit } from './helpers/cli.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const moekit = (args: string[]) => runMoekit(args, { timeout: 50_000 });

test('bad options are rejected naming the option, the value and what is allowed', () => {
  const cases: [string[], RegExp][] = [
    [['--preset', 'huge'], /option '--preset <name>' argument 'huge' is invalid\. Allowed choices are paper, small, tiny/],
    [
      ['--variants', 'full,bogus'],
      /--variants: unknown variant 'bogus'; allowed: CT-MoE-Full, StandardMoE, CT-MoE-NoCollab, CT-MoE-NoRouting/,
    ],
    [['--steps', '0'], /--steps must be a decimal integer in \[1, 1000000000\] \(got '0'\)/],
    [['--set', 'dModle=3'], /--set: unknown config field 'dModle'; allowed: vocabSize, seqLen, dModel/],
    [['--set', 'topK=99'], /topK = 99 is invalid: expected an integer in \[1, 8\]/],
    [['--seeds', '0'], /--seeds must be a decimal integer in \[1, 100\] \(got '0'\)/],
    [['--seed-list', '3,3'], /--seed-list: seed 3 is named twice/],
    [['--seeds', '2', '--seed-list', '1,2'], /--seeds and --seed-list exclude each other/],
  ];
  for (const [args, re] of cases) {
    const r = moekit(['ablate', ...args, '--out', join(tmpdir(), 'moekit-never-written')]);
    assert.equal(r.code, 1, r.why);
    assert.match(r.stderr, re, args.join(' '));
  }
  assert.ok(!existsSync(join(tmpdir(), 'moekit-never-written')));
});

test('parseVariants and parseSet', () => {
  assert.deepEqual(parseVariants('full, NoRouting,standardmoe'), ['CT-MoE-Full', 'CT-MoE-NoRouting', 'StandardMoE']);
  assert.throws(() => parseVariants('full,full'), InvalidArgumentError);
  assert.throws(() => parseVariants(','), /at least one variant/);
  assert.deepEqual(parseSet('betas=[0.9,0.95]', parseSet('expertCompute=dense')), { expertCompute: 'dense', betas: [0.9, 0.95] });
  assert.deepEqual(parseSet('steps=null'), { steps: null });
  assert.throws(() => parseSet('dModel'), /--set expects key=value/);
});

test('a 6-step run of 2 variants writes results.json, figures and report.html; a rerun skips them', () => {
  const out = mkdtempSync(join(tmpdir(), 'moekit-ablate-'));
  dirs.push(out);
  const micro = [
    'vocabSize=256',
    'seqLen=16',
    'dModel=16',
    'nHead=2',
    'numExperts=4',
    'batchSize=4',
    'evalBatches=2',
    'freqBatches=2',
    'logEvery=3',
    'warmup=2',
    'checkpointEvery=3',
  ];
  const args = [
    'ablate',
    '--preset',
    'tiny',
    '--out',
    out,
    '--variants',
    'full,standard',
    '--steps',
    '6',
    ...micro.flatMap((s) => ['--set', s]),
  ];
  const r = moekit(args);
  assert.equal(r.code, 0, r.why);
  assert.match(r.stdout, /CT-MoE-Full step 6\/6/);
  assert.match(r.stdout, /Model\s+Params \(M\)\s+Code PPL/);
  assert.ok(r.stdout.includes(`report:   ${join(out, 'report.html')}`));
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.deepEqual(results.order, ['CT-MoE-Full', 'StandardMoE']);
  assert.equal(results.config.steps, 6);
  assert.equal(results.config.dModel, 16);
  for (const k of results.order) assert.equal(results.variants[k].status, 'done');
  const figs = readdirSync(join(out, 'figures'));
  assert.equal(figs.filter((f) => f.endsWith('.png')).length, 11); // fig4 only for Full
  assert.equal(figs.filter((f) => f.endsWith('.svg')).length, 11);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.ok(html.includes('<tr data-variant="CT-MoE-Full">') && html.includes('<tr data-variant="StandardMoE">'));
  assert.ok(html.includes('&quot;dModel&quot;:16'), 'the overrides are in the report');

  const again = moekit(args);
  assert.equal(again.code, 0, again.why);
  assert.match(again.stdout, /CT-MoE-Full: finished in an earlier run, skipped/);
  assert.match(again.stdout, /StandardMoE: finished in an earlier run, skipped/);

  // a second seed on top: the first seed's runs are kept, the report gets intervals
  const seeds = moekit([...args, '--seeds', '2']);
  assert.equal(seeds.code, 0, seeds.why);
  assert.match(seeds.stdout, /2 seeds \(42, 43\): 4 runs/);
  assert.match(seeds.stdout, /CT-MoE-Full seed 42: finished in an earlier run, skipped/);
  assert.match(seeds.stdout, /CT-MoE-Full seed 43 step 6\/6/);
  assert.match(seeds.stdout, /\d ± \d/);
  const two = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.deepEqual(two.seeds, [42, 43]);
  assert.ok(existsSync(join(out, 'StandardMoE', 'seed-43', 'result.json')));
  assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /Paired differences between variants<\/h3>\n<table/);
});
