// The CT-MoE ablation experiment on a micro config with synthetic tokens: resume after an
// interrupted run reproduces the uninterrupted run exactly, finished variants are skipped,
// the optimiser groups, the loss composition, the model shape and results.json.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fromArray, manualSeed, noGrad } from '../src/index.js';
import { Generator } from '../src/tensor/random.js';
import {
  CtMoeGPT,
  TINY_PRESET,
  PAPER_PRESET,
  VARIANTS,
  experimentConfig,
  mixedBatches,
  runAblation,
  type CtMoeAblationResults,
  type CtMoeData,
  type CtMoeExperimentConfig,
  type CtMoeProgress,
} from '../src/experiments/ctmoe/index.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'ctmoe-test-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const MICRO: CtMoeExperimentConfig = experimentConfig('tiny', {
  vocabSize: 256,
  seqLen: 8,
  dModel: 16,
  nHead: 2,
  nLayer: 2,
  numExperts: 4,
  topK: 3,
  dropout: 0.1,
  batchSize: 4,
  lr: 3e-3,
  steps: 12,
  warmup: 3,
  logEvery: 4,
  evalBatches: 2,
  freqBatches: 2,
  checkpointEvery: 5,
});

function synthData(): CtMoeData {
  const g = new Generator(7);
  const tokens = (n: number, lo: number) => Int32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? lo : lo + g.int(100)));
  return { vocabSize: 256, train: tokens(2000, 0), val: { code: tokens(200, 0), prose: tokens(200, 120) } };
}

test('resume after an interrupted run reproduces the uninterrupted run exactly; finished variants are skipped', () => {
  const data = synthData();
  const variants = ['CT-MoE-Full', 'StandardMoE'] as const;
  const full = runAblation({ preset: MICRO, outDir: tmp(), variants, data });

  const dir = tmp();
  const events: CtMoeProgress[] = [];
  // killed at step 7 of the first variant: its last checkpoint is step 5
  const first = runAblation({ preset: MICRO, outDir: dir, variants, data, stopAfterStep: 7, onProgress: (p) => events.push(p) });
  assert.equal(first.variants['CT-MoE-Full']!.status, 'pending');
  assert.ok(events.some((e) => e.phase === 'interrupted'));
  assert.ok(existsSync(join(dir, 'CT-MoE-Full', 'ckpt-00000005.manifest.json')));
  assert.deepEqual(
    readdirSync(join(dir, 'CT-MoE-Full')).filter((f) => f.endsWith('.safetensors')),
    ['ckpt-00000005.safetensors'],
  );

  const resumed: CtMoeProgress[] = [];
  const second = runAblation({ preset: MICRO, outDir: dir, variants, data, onProgress: (p) => resumed.push(p) });
  assert.deepEqual(
    resumed.find((e) => e.phase === 'resume'),
    { variant: 'CT-MoE-Full', phase: 'resume', step: 5, steps: 12, seed: 42 },
  );
  for (const key of variants) {
    const a = full.variants[key]!.result!;
    const b = second.variants[key]!.result!;
    assert.equal(b.trainLoss.length, 12);
    assert.deepEqual(b.trainLoss, a.trainLoss, `${key}: per-step losses`);
    assert.deepEqual(b.trainCe, a.trainCe);
    assert.deepEqual(
      b.logs.map((l) => [l.step, l.loss, l.valPpl, l.routingEntropy, l.sEntropy, l.sMax, l.lr]),
      a.logs.map((l) => [l.step, l.loss, l.valPpl, l.routingEntropy, l.sEntropy, l.sMax, l.lr]),
    );
    assert.deepEqual(b.domainPpl, a.domainPpl);
    assert.deepEqual(b.routingFreq, a.routingFreq);
    assert.deepEqual(b.finalS, a.finalS);
  }
  assert.equal(second.variants['CT-MoE-Full']!.result!.timing.resumedFromStep, 5);

  // a third run finds both finished and skips them
  const third: CtMoeProgress[] = [];
  const again = runAblation({ preset: MICRO, outDir: dir, variants, data, onProgress: (p) => third.push(p) });
  assert.deepEqual(
    third.map((e) => e.phase),
    ['skip', 'skip'],
  );
  assert.deepEqual(again.variants['StandardMoE']!.result!.trainLoss, full.variants['StandardMoE']!.result!.trainLoss);
  // a changed config refuses to reuse the finished run
  assert.throws(() => runAblation({ preset: MICRO, overrides: { lr: 1e-3 }, outDir: dir, variants, data }), /another config/);
});

test('results.json: every variant, figures data, references', () => {
  const data = synthData();
  const dir = tmp();
  const custom = {
    key: 'Full-k2',
    label: 'Full, k=2',
    flags: { useTopology: true, useGraphRouting: true, useGraphCollab: true },
    color: '#000000',
    overrides: { topK: 2 },
  };
  runAblation({
    preset: { ...MICRO, steps: 4, logEvery: 2 },
    outDir: dir,
    variants: [...VARIANTS.map((v) => v.key as 'CT-MoE-Full'), custom],
    data,
  });
  const r = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as CtMoeAblationResults;
  assert.deepEqual(r.order, ['CT-MoE-Full', 'StandardMoE', 'CT-MoE-NoCollab', 'CT-MoE-NoRouting', 'Full-k2']);
  assert.equal(r.reference.sEntropyUniform, Math.log(3));
  assert.equal(r.reference.sMaxUniform, 1 / 3);
  for (const key of r.order) {
    const v = r.variants[key]!;
    assert.equal(v.status, 'done');
    const res = v.result!;
    assert.equal(res.logs.length, 2);
    // two groups: S_raw at lr x sLrScale; the schedule is warmup + cosine with the 0.05 floor
    for (const l of res.logs) {
      const mult = l.step < 3 ? l.step / 3 : Math.max(0.05, 0.5 * (1 + Math.cos((Math.PI * (l.step - 3)) / (4 - 3))));
      assert.ok(Math.abs(l.lr - MICRO.lr * mult) < 1e-15, `lr at ${l.step}`);
      assert.ok(Math.abs(l.sLr - MICRO.lr * 100 * mult) < 1e-13);
    }
    assert.equal(res.routingFreq.code.length, 4);
    assert.ok(Math.abs(res.routingFreq.code.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    assert.equal(res.specialisation.length, 4);
    for (const [e, s] of res.specialisation.entries()) {
      const c = res.routingFreq.code[e]!;
      const p = res.routingFreq.prose[e]!;
      assert.ok(Math.abs(s - (c - p) / (c + p + 1e-9)) < 1e-15);
    }
    for (const d of ['code', 'prose', 'mixed'] as const) assert.ok(Number.isFinite(res.domainPpl[d]) && res.domainPpl[d] > 1);
    if (key === 'StandardMoE') {
      assert.equal(res.finalS, null);
      assert.equal(res.eigenspectrum, null);
      assert.equal(res.logs[0]!.sEntropy, null);
      assert.equal(res.nTopologyParams, 0);
    } else {
      assert.equal(res.finalS!.length, 2);
      assert.equal(res.eigenspectrum!.eigenvalues.length, 4);
      assert.equal(res.nTopologyParams, 2 * 16);
      assert.equal(res.nParams, r.variants['StandardMoE']!.result!.nParams + 32);
    }
  }
  assert.equal(r.variants['Full-k2']!.result!.config.topK, 2);
});

test('model: MoE in every block, tied head, no attention biases; loss = CE + sum(lb_weight * lb) / n_layers; two optimiser groups', () => {
  manualSeed(3);
  const model = new CtMoeGPT(MICRO, VARIANTS[0]!.flags);
  const names = model.namedParameters().map(([n]) => n);
  assert.ok(names.includes('gpt.blocks.0.ffn.topology.sRaw') && names.includes('gpt.blocks.1.ffn.experts.upProj'));
  assert.ok(!names.some((n) => /attn\.(qkv|proj)\.bias/.test(n)));
  assert.ok(names.includes('gpt.blocks.0.ln1.bias'));
  assert.equal(model.gpt.lmHead, null);
  assert.equal(model.topologyParameters().length, 2);
  assert.equal(model.otherParameters().length + 2, names.length);
  const data = synthData();
  const b = mixedBatches(data.val, 8, 4, 1).next().value!;
  assert.deepEqual(Array.from(b.input.subarray(0, 8)), Array.from(data.val.code.subarray(0, 8)));
  assert.deepEqual(Array.from(b.input.subarray(16, 24)), Array.from(data.val.prose.subarray(0, 8)));
  // training with grad: each layer's lb_weight / n_layers · lb rides on its output; `total` adds them in value
  const { total, ce, aux } = model.loss(fromArray(b.input, [4, 8]), fromArray(b.target, [4, 8]));
  const lbs = model.moeLayers.map((l) => l.lastMetrics!.lbLoss!);
  const expected = ce.item() + lbs.reduce((a, v) => a + MICRO.lbWeight * v, 0) / 2;
  assert.ok(Math.abs(total.item() - expected) < 1e-5, `${total.item()} vs ${expected}`);
  assert.ok(Math.abs(aux! - (total.item() - ce.item())) < 1e-5 && aux! > 0);
  model.eval();
  assert.equal(noGrad(() => model.loss(fromArray(b.input, [4, 8]), fromArray(b.target, [4, 8]))).aux, null, 'eval: no aux losses');
});

test('presets and validation', () => {
  assert.equal(PAPER_PRESET.topK, 2);
  assert.equal(PAPER_PRESET.sLrScale, 100);
  assert.equal(TINY_PRESET.topK, 3);
  assert.throws(() => experimentConfig('tiny', { topK: 9 }), /ctMoeExperiment\.topK = 9 .*in \[1, 8\]/);
  assert.throws(() => experimentConfig('tiny', { nHead: 3 }), /ctMoeExperiment\.nHead = 3 .*divisor of dModel/);
  assert.throws(() => experimentConfig('huge' as 'tiny'), /preset = 'huge'/);
  assert.throws(
    () => runAblation({ preset: MICRO, outDir: tmp(), variants: ['Nope' as 'StandardMoE'], data: synthData() }),
    /variant = 'Nope'/,
  );
});
