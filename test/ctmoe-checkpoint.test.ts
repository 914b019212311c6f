// Checkpoints that verify themselves (issue 27): the last two are kept with a manifest each;
// a damaged newest one makes resume fall back to the one before with a warning and still end
// bit-identical; one that contradicts itself or another config refuses to resume, saying why;
// a NaN written into a checkpoint stops training naming the parameter.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import { runAblation, type CtMoeProgress } from '../src/experiments/ctmoe/index.js';
import { CheckpointMismatchError, checkpointSteps, readCheckpoint, writeCheckpoint } from '../src/experiments/ctmoe/checkpoint.js';
import { ONE_LAYER_MICRO, randomTokens, tempDirs } from './helpers/ctmoe-one-layer.js';

const tmp = tempDirs('ctmoe-ckpt-');

const MICRO = ONE_LAYER_MICRO;
const KEY = 'CT-MoE-Full';

const data = randomTokens();
const reference = runAblation({ preset: MICRO, outDir: tmp(), variants: [KEY], data }).variants[KEY]!.result!;

/** A run killed after step 7: checkpoints at 2, 4, 6, the last two kept. */
function interrupted(): string {
  const out = tmp();
  runAblation({ preset: MICRO, outDir: out, variants: [KEY], data, stopAfterStep: 7 });
  return out;
}

function resume(out: string, preset = MICRO) {
  const events: CtMoeProgress[] = [];
  const r = runAblation({ preset, outDir: out, variants: [KEY], data, onProgress: (p) => events.push(p) });
  return { result: r.variants[KEY]!.result!, events };
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

test('the last two checkpoints are kept, each with a manifest of its files', () => {
  const dir = join(interrupted(), KEY);
  assert.deepEqual(checkpointSteps(dir), [6, 4]);
  assert.deepEqual(
    readdirSync(dir)
      .filter((f) => f.startsWith('ckpt-'))
      .sort(),
    [
      'ckpt-00000004.json',
      'ckpt-00000004.manifest.json',
      'ckpt-00000004.safetensors',
      'ckpt-00000006.json',
      'ckpt-00000006.manifest.json',
      'ckpt-00000006.safetensors',
    ],
  );
  const manifest = JSON.parse(readFileSync(join(dir, 'ckpt-00000006.manifest.json'), 'utf8'));
  assert.equal(manifest.step, 6);
  assert.equal(manifest.files['ckpt-00000006.safetensors'].sha256, sha256(readFileSync(join(dir, 'ckpt-00000006.safetensors'))));
  assert.ok(manifest.tensors.includes('model.gpt.wte.weight') && manifest.tensors.some((t: string) => t.startsWith('optim.')));
});

test('16 flipped bytes in the newest weights: resume warns, falls back to step 4, and ends bit-identical', () => {
  const out = interrupted();
  const file = join(out, KEY, 'ckpt-00000006.safetensors');
  const bytes = readFileSync(file);
  for (let i = 0; i < 16; i++) bytes[bytes.length - 100 + i] ^= 0xff;
  writeFileSync(file, bytes);
  const { result, events } = resume(out);
  const warning = events.find((e) => e.phase === 'warning');
  assert.match(
    warning && 'message' in warning ? warning.message : '',
    /checkpoint ckpt-00000006 in .* is damaged \(ckpt-00000006\.safetensors does not match its SHA-256 in the manifest\); falling back to step 4/,
  );
  assert.deepEqual(
    events.find((e) => e.phase === 'resume'),
    { variant: KEY, phase: 'resume', step: 4, steps: 8, seed: MICRO.seed },
  );
  assert.deepEqual(result.trainLoss, reference.trainLoss);
  assert.deepEqual(result.domainPpl, reference.domainPpl);
});

test('a truncated manifest or meta is named in the warning; nothing verifying at all is an error naming each', () => {
  const out = interrupted();
  const dir = join(out, KEY);
  writeFileSync(join(dir, 'ckpt-00000006.manifest.json'), readFileSync(join(dir, 'ckpt-00000006.manifest.json'), 'utf8').slice(0, 50));
  const { events } = resume(out);
  const w = events.find((e) => e.phase === 'warning');
  assert.match(w && 'message' in w ? w.message : '', /ckpt-00000006\.manifest\.json: is not valid JSON/);

  const out2 = interrupted();
  const dir2 = join(out2, KEY);
  for (const s of ['4', '6']) writeFileSync(join(dir2, `ckpt-0000000${s}.json`), '{"step": 1');
  assert.throws(
    () => resume(out2),
    /no checkpoint in .* verifies \(step 6: ckpt-00000006\.json is \d+ bytes, the manifest says \d+; step 4: ckpt-00000004\.json/,
  );
});

test('checkpoint.json edited from step 6 to 8 with its manifest updated: refuses, naming the steps that disagree', () => {
  const out = interrupted();
  const dir = join(out, KEY);
  const metaFile = join(dir, 'ckpt-00000006.json');
  const text = readFileSync(metaFile, 'utf8').replace('"step": 6', '"step": 8');
  writeFileSync(metaFile, text);
  const manifestFile = join(dir, 'ckpt-00000006.manifest.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  manifest.files['ckpt-00000006.json'] = { bytes: Buffer.byteLength(text), sha256: sha256(text) };
  writeFileSync(manifestFile, JSON.stringify(manifest));
  assert.throws(
    () => resume(out),
    (e: Error) =>
      e instanceof CheckpointMismatchError &&
      /contradicts itself: its file name says step 6, ckpt-00000006\.json "step" says step 8, ckpt-00000006\.safetensors metadata "step" says step 6, the logged losses says step 6/.test(
        e.message,
      ),
  );
});

test('another config refuses to resume and names the fields that differ', () => {
  const out = interrupted();
  assert.throws(
    () => resume(out, { ...MICRO, lr: 1e-3 }),
    (e: Error) => e instanceof CheckpointMismatchError && /another config or variant: lr \(checkpoint 0\.002, now 0\.001\)/.test(e.message),
  );
});

test('a NaN written into a checkpoint (valid manifest) stops the resumed training naming the parameter', () => {
  const out = interrupted();
  const dir = join(out, KEY);
  const fingerprint = JSON.parse(readFileSync(join(dir, 'ckpt-00000006.json'), 'utf8')).fingerprint as string;
  const ckpt = readCheckpoint<{ trainLoss: number[] }>(dir, { fingerprint, progressSteps: (p) => p.trainLoss.length })!;
  const name = Object.keys(ckpt.model).find((k) => k.includes('router') || k.includes('gate')) ?? Object.keys(ckpt.model)[0]!;
  (ckpt.model[name]!.dataSync() as Float32Array)[3] = NaN;
  writeCheckpoint(dir, ckpt.meta, ckpt.model, ckpt.optimizer);
  assert.throws(
    () => resume(out),
    new RegExp(`${KEY}: step 7: loss NaN.*first non-finite: parameter '${name.replace(/[.]/g, '\\.')}'\\[3\\] = NaN`),
  );
});
