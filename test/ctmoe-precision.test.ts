// `--precision`: a micro CT-MoE trained in bf16 and in f16-AMP for 40 steps ends near the f32
// run (tolerances below), and results.json records the precision.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type CtMoeAblationResults, runAblation } from '../src/experiments/ctmoe/index.js';
import type { Precision } from '../src/experiments/ctmoe/precision.js';
import { MICRO, synthData } from './helpers/ctmoe-micro.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const data = synthData();
const STEPS = 40;

function run(precision: Precision): CtMoeAblationResults {
  const dir = mkdtempSync(join(tmpdir(), 'ctmoe-precision-'));
  dirs.push(dir);
  runAblation({
    preset: { ...MICRO, steps: STEPS, logEvery: 20, checkpointEvery: 20, ...(precision === 'fp32' ? {} : { precision }) },
    outDir: dir,
    variants: ['CT-MoE-Full'],
    data,
  });
  return JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as CtMoeAblationResults;
}

const tail = (r: CtMoeAblationResults) => {
  const l = r.variants['CT-MoE-Full']!.result!.trainLoss;
  return l.slice(-10).reduce((s, v) => s + v, 0) / 10;
};

test('bf16 and f16-amp end within tolerance of fp32 (loss over the last 10 steps, mixed validation PPL)', () => {
  const f32 = run('fp32');
  assert.equal(f32.precision, 'fp32');
  const first = f32.variants['CT-MoE-Full']!.result!.trainLoss[0]!;
  assert.ok(tail(f32) < first - 0.3, `fp32 learns: ${first} -> ${tail(f32)}`);
  for (const p of ['bf16', 'f16-amp'] as const) {
    const r = run(p);
    assert.equal(r.precision, p);
    assert.equal(r.config.precision, p);
    // it really ran in low precision: the losses are not f32's bit for bit
    assert.notDeepEqual(r.variants['CT-MoE-Full']!.result!.trainLoss, f32.variants['CT-MoE-Full']!.result!.trainLoss);
    const dl = Math.abs(tail(r) - tail(f32));
    const ppl = r.variants['CT-MoE-Full']!.result!.domainPpl.mixed;
    const ppl32 = f32.variants['CT-MoE-Full']!.result!.domainPpl.mixed;
    console.log(`${p}: loss ${tail(r).toFixed(4)} vs fp32 ${tail(f32).toFixed(4)}; mixed PPL ${ppl.toFixed(3)} vs ${ppl32.toFixed(3)}`);
    assert.ok(dl < 0.05, `${p}: final loss ${tail(r)} vs fp32 ${tail(f32)} (tolerance 0.05 nats)`);
    assert.ok(Math.abs(ppl / ppl32 - 1) < 0.03, `${p}: mixed PPL ${ppl} vs fp32 ${ppl32} (tolerance 3%)`);
  }
});

test('bf16 and f16-amp resume exactly from a checkpoint (f32 master weights and the GradScaler state saved)', () => {
  for (const precision of ['bf16', 'f16-amp'] as const) {
    const preset = { ...MICRO, steps: 8, logEvery: 4, checkpointEvery: 4, precision };
    const whole = mkdtempSync(join(tmpdir(), 'ctmoe-precision-'));
    const split = mkdtempSync(join(tmpdir(), 'ctmoe-precision-'));
    dirs.push(whole, split);
    runAblation({ preset, outDir: whole, variants: ['CT-MoE-Full'], data });
    runAblation({ preset, outDir: split, variants: ['CT-MoE-Full'], data, stopAfterStep: 6 }); // checkpoint at 4, steps 5-6 redone
    runAblation({ preset, outDir: split, variants: ['CT-MoE-Full'], data });
    const read = (d: string) =>
      (JSON.parse(readFileSync(join(d, 'results.json'), 'utf8')) as CtMoeAblationResults).variants['CT-MoE-Full']!.result!;
    assert.deepEqual(read(split).trainLoss, read(whole).trainLoss, `${precision}: resumed losses`);
    assert.deepEqual(read(split).domainPpl, read(whole).domainPpl, `${precision}: resumed PPL`);
  }
});
