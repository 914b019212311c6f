// The training log the dashboard reads (log.jsonl, src/experiments/ctmoe/dashboard-log.ts),
// checked against what the trainer computes on its own: the per-step loads add up to the
// usage behind each log point's routing entropy, the losses are the result's, S is the final
// S, the sample's routing is a fresh forward of the checkpointed model, and after an
// interrupted run and its resume the folded log equals the uninterrupted run's.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LOG_JSONL, type LogLine, type LogPoint, emptyVariantLog, foldLog } from '../src/dashboard/log-format.js';
import { CtMoeGPT, VARIANTS, finalS, readCheckpoint, runAblation, type CtMoeVariantResult } from '../src/experiments/ctmoe/index.js';
import { fromArray } from '../src/ops/creation.js';
import { routingEntropy } from '../src/moe/topology/diagnostics.js';
import { RoutingRecorder } from '../src/moe/routing/recorder.js';
import { noGrad } from '../src/tensor/autograd.js';
import { MICRO, synthData } from './helpers/ctmoe-micro.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'moekit-dashlog-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const readLines = (dir: string): LogLine[] =>
  readFileSync(join(dir, LOG_JSONL), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogLine);

test('log.jsonl agrees with the trainer: loads, losses, routing entropy, S and the sample routing of the final model', () => {
  const out = tmp();
  const data = synthData();
  const res = runAblation({ preset: MICRO, outDir: out, variants: ['CT-MoE-Full', 'StandardMoE'], data });
  const { batchSize: B, seqLen: T, topK: K, nLayer: L, numExperts: N } = MICRO;
  for (const key of res.order) {
    const r = res.variants[key]!.result as CtMoeVariantResult;
    const log = foldLog(emptyVariantLog(), readLines(join(out, key)));
    assert.equal(log.start?.steps, 8);
    assert.equal(log.start?.tokens.length, 2 * T, 'the sample: seqLen code tokens, seqLen prose tokens');
    assert.deepEqual(
      log.steps.map((s) => s.loss),
      r.trainLoss,
    );
    assert.deepEqual(
      log.steps.map((s) => s.ce),
      r.trainCe,
    );
    for (const s of log.steps)
      for (const row of s.load)
        assert.equal(
          row.reduce((a, v) => a + v, 0),
          B * T * K,
          `step ${s.step}: every slot counted once`,
        );
    assert.deepEqual(
      log.points.map((p) => p.entry),
      r.logs,
    );
    // the usage between two log points is what the trainer's routing entropy saw
    let prev = 0;
    for (const p of log.points) {
      for (let l = 0; l < L; l++) {
        const usage = new Array<number>(N).fill(0);
        for (const s of log.steps) if (s.step > prev && s.step <= p.step) s.load[l]!.forEach((c, e) => (usage[e]! += c));
        assert.equal(routingEntropy(usage), p.entry.routingEntropyPerLayer[l], `${key} layer ${l} at step ${p.step}`);
      }
      prev = p.step;
    }
    const last = log.points[log.points.length - 1]!;
    assert.deepEqual(last.s, r.finalS);
    // the final model, loaded from its checkpoint into a fresh model, routes the sample the same way
    const model = new CtMoeGPT(MICRO, VARIANTS.find((v) => v.key === key)!.flags);
    const ckpt = readCheckpoint<{ trainLoss: number[] }>(join(out, key), {
      fingerprint: JSON.stringify({ cfg: r.config, flags: r.flags }),
      progressSteps: (p) => p.trainLoss.length,
    });
    model.loadStateDict(ckpt!.model);
    assert.deepEqual(finalS(model), last.s);
    model.eval();
    const sample = [data.val.code.slice(0, T), data.val.prose.slice(0, T)];
    // the routing as the core's RoutingRecorder sees it (records by layer, each layer's forwards in order)
    const recorder = new RoutingRecorder(model).attach();
    noGrad(() => sample.forEach((row) => model.gpt.hidden(fromArray(row, [1, T]))));
    recorder.detach();
    const records = recorder.records();
    model.moeLayers.forEach((_, l) => {
      sample.forEach((_, i) => {
        const rec = records[l * sample.length + i]!;
        assert.deepEqual(last.routing.ids[l]!.slice(i * T, (i + 1) * T).flat(), Array.from(rec.ids), `${key} layer ${l} row ${i}: ids`);
        assert.deepEqual(
          last.routing.weights[l]!.slice(i * T, (i + 1) * T).flat(),
          Array.from(rec.weights),
          `${key} layer ${l} row ${i}: weights`,
        );
      });
    });
  }
});

test('after an interrupted run and its resume, the folded log equals the uninterrupted run', () => {
  const data = synthData();
  const whole = tmp();
  runAblation({ preset: MICRO, outDir: whole, variants: ['CT-MoE-Full'], data });
  const split = tmp();
  runAblation({ preset: MICRO, outDir: split, variants: ['CT-MoE-Full'], data, stopAfterStep: 6 }); // checkpoint at 4, steps 5-6 redone
  runAblation({ preset: MICRO, outDir: split, variants: ['CT-MoE-Full'], data });
  const a = foldLog(emptyVariantLog(), readLines(join(whole, 'CT-MoE-Full')));
  const lines = readLines(join(split, 'CT-MoE-Full'));
  assert.deepEqual(
    lines.filter((l) => l.kind === 'start').map((l) => l.step),
    [0, 4],
  );
  assert.equal(lines.filter((l) => l.kind === 'step').length, 10, 'steps 5 and 6 written twice');
  const b = foldLog(emptyVariantLog(), lines);
  assert.deepEqual(b.steps, a.steps);
  const strip = (p: LogPoint) => ({ ...p, entry: { ...p.entry, elapsedSec: 0 } });
  assert.deepEqual(b.points.map(strip), a.points.map(strip));
});
