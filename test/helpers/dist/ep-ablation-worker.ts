// Expert-parallel CT-MoE training under mpirun (argv: a scratch directory shared by the ranks).
// All ranks: an EP run to the end (A) and one stopped at step 7 (its checkpoint is at 5) and
// resumed (B); then, each rank alone, the same training in one process (C, its own folder).
// Each rank checks that A's final parameters — the replicated ones and this rank's experts —
// and logged losses equal C's (fp32 tolerance: the same global batch, dropout and LB loss over
// all tokens), that the checkpoint holds only this rank's experts, that B ends exactly where A
// does, and rank 0 that a single-process resume of an EP checkpoint is refused (another world
// size) and that A's dashboard log (expert loads, the routing sample) equals C's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOG_JSONL, type LogLine } from '../../../src/dashboard/log-format.js';
import { Generator } from '../../../src/tensor/random.js';
import { experimentConfig, VARIANTS, type CtMoeData } from '../../../src/experiments/ctmoe/index.js';
import { runVariant } from '../../../src/experiments/ctmoe/train.js';
import { readCheckpoint } from '../../../src/experiments/ctmoe/checkpoint.js';
import { worldCommunicator } from '../../../src/dist/communicator.js';
import { ExpertParallel } from '../../../src/dist/expert-parallel.js';

const dir = process.argv[2]!;
const comm = worldCommunicator();
const ep = new ExpertParallel(comm);
const cfg = experimentConfig('tiny', {
  vocabSize: 256, seqLen: 8, dModel: 16, nHead: 2, nLayer: 2, numExperts: 4, topK: 3,
  dropout: 0.1, lbWeight: 0.01, batchSize: 4, lr: 3e-3, steps: 12, warmup: 3, logEvery: 4,
  evalBatches: 1, freqBatches: 1, checkpointEvery: 5,
});
const g = new Generator(7);
const tokens = (n: number, lo: number) => Int32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? lo : lo + g.int(100)));
const data: CtMoeData = { vocabSize: 256, train: tokens(2000, 0), val: { code: tokens(200, 0), prose: tokens(200, 120) } };
const variant = VARIANTS[0]!; // CT-MoE (Full): routing bias and message passing

const A = runVariant(cfg, variant, data, { dir: join(dir, 'A'), dataParallel: ep })!;
if (runVariant(cfg, variant, data, { dir: join(dir, 'B'), dataParallel: ep, stopAfterStep: 7 }) !== null) throw new Error('B was not interrupted');
runVariant(cfg, variant, data, { dir: join(dir, 'B'), dataParallel: ep });
if (comm.rank === 0) {
  let refused = '';
  try {
    runVariant({ ...cfg, steps: 14 }, variant, data, { dir: join(dir, 'B', 'ep-rank-0-of-2') });
  } catch (e) {
    refused = (e as Error).message;
  }
  if (!/was written for another config or variant/.test(refused)) throw new Error(`a single-process resume of an EP checkpoint was not refused (${refused})`);
  console.log('PASS world-size mismatch refused');
}
const C = runVariant(cfg, variant, data, { dir: join(dir, `C${comm.rank}`) })!;

const fingerprint = (worldSize: number) =>
  JSON.stringify({ cfg: { ...cfg, ...variant.overrides }, flags: variant.flags, ...(worldSize > 1 ? { worldSize, parallel: 'ep' } : {}) });
const params = (d: string, worldSize: number) =>
  readCheckpoint<{ trainLoss: number[] }>(d, { fingerprint: fingerprint(worldSize), progressSteps: (p) => p.trainLoss.length })!.model;
const rankDir = `ep-rank-${comm.rank}-of-${comm.size}`;
const [pa, pb, pc] = [params(join(dir, 'A', rankDir), comm.size), params(join(dir, 'B', rankDir), comm.size), params(join(dir, `C${comm.rank}`), 1)];
const El = cfg.numExperts / comm.size;
let worst = 0;
let compared = 0;
if (Object.keys(pa).length !== Object.keys(pc).length) throw new Error(`the EP checkpoint holds ${Object.keys(pa).length} tensors, the single process's ${Object.keys(pc).length}`);
for (const [k, t] of Object.entries(pc)) {
  const c = t.dataSync();
  // under the EP block's name (the layer inside it); an expert bank: this rank's slice of the
  // single process's rows, the only experts the rank holds
  const expert = /^gpt\.blocks\.(\d+)\.ffn\.experts\.(.+)$/.exec(k);
  const name = k.replace(/\.ffn\./, '.ffn.layer.');
  const want = expert ? c.subarray(comm.rank * El * (c.length / cfg.numExperts), (comm.rank + 1) * El * (c.length / cfg.numExperts)) : c;
  if (!pa[name]) throw new Error(`EP checkpoint has no ${name}`);
  const a = pa[name]!.dataSync();
  const b = pb[name]!.dataSync();
  if (a.length !== want.length) throw new Error(`${name}: ${a.length} values, the single process ${want.length} (its slice for this rank)`);
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(a[i]! - want[i]!));
    if (!(Math.abs(a[i]! - want[i]!) <= 2e-4 * Math.max(1, Math.abs(want[i]!)))) throw new Error(`EP parameter ${name}[${i}] = ${a[i]} but one process gives ${want[i]} (rank ${comm.rank})`);
    if (a[i] !== b[i]) throw new Error(`resumed EP parameter ${name}[${i}] = ${b[i]} but the uninterrupted EP run gives ${a[i]}`);
    compared++;
  }
}
for (let s = 0; s < C.trainLoss.length; s++) {
  if (!(Math.abs(A.trainLoss[s]! - C.trainLoss[s]!) <= 1e-4 * C.trainLoss[s]!)) throw new Error(`step ${s + 1}: EP loss ${A.trainLoss[s]} vs one process ${C.trainLoss[s]}`);
}
for (const d of ['code', 'prose', 'mixed'] as const) {
  if (!(Math.abs(A.domainPpl[d] - C.domainPpl[d]) <= 1e-3 * C.domainPpl[d])) throw new Error(`${d} PPL: EP ${A.domainPpl[d]} vs one process ${C.domainPpl[d]}`);
}
if (A.nParams !== C.nParams) throw new Error(`nParams: EP ${A.nParams} vs one process ${C.nParams}`);
if (comm.rank === 0) {
  // the dashboard's log: per step each layer's expert load, per log point the sample's routing
  // (ids exact, weights to fp32 tolerance) as one process logs them
  const lines = (d: string) => readFileSync(join(d, LOG_JSONL), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LogLine);
  const [la, lc] = [lines(join(dir, 'A')), lines(join(dir, 'C0'))];
  if (la.length !== lc.length) throw new Error(`log.jsonl: EP ${la.length} lines, one process ${lc.length}`);
  let routed = 0;
  la.forEach((a, i) => {
    const c = lc[i]!;
    if (a.kind === 'step' && c.kind === 'step' && JSON.stringify(a.load) !== JSON.stringify(c.load)) throw new Error(`log.jsonl step ${a.step}: EP load ${JSON.stringify(a.load)}, one process ${JSON.stringify(c.load)}`);
    if (a.kind === 'log' && c.kind === 'log') {
      if (JSON.stringify(a.routing.ids) !== JSON.stringify(c.routing.ids)) throw new Error(`log.jsonl step ${a.step}: the sample's routing ids differ from one process's`);
      const wa = a.routing.weights.flat(2);
      const wc = c.routing.weights.flat(2);
      if (wa.length !== wc.length || wa.some((w, j) => !(Math.abs(w - wc[j]!) <= 1e-5))) throw new Error(`log.jsonl step ${a.step}: the sample's routing weights differ from one process's`);
      routed += a.routing.ids.flat(1).length;
    }
  });
  if (routed === 0) throw new Error('log.jsonl: no routing sample was logged');
  console.log(`PASS ep dashboard log equals one process (${routed} sample tokens' routing)`);
}
console.log(`PASS ep parameters equal one process after ${cfg.steps} steps rank ${comm.rank} (${compared} values, max |diff| ${worst.toExponential(2)})`);
console.log(`PASS ep resume reproduces the uninterrupted run rank ${comm.rank}`);
console.log(`DONE rank ${comm.rank}`);
