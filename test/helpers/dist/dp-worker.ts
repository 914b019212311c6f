// Data-parallel CT-MoE training under mpirun (argv: a scratch directory shared by the ranks).
// All ranks: a DP run to the end (A); a DP run stopped at step 12 (its checkpoint is at 10)
// and resumed (B). Rank 0 alone: the same training in one process (C), and a single-process
// resume of B's checkpoint, which must be refused (another world size). Rank 0 checks that
// A's final parameters and logged losses equal C's (fp32 tolerance: same global batch, averaged
// gradients) and that B ends exactly where A does; with dropout (per-rank masks), a run resumed
// from its checkpoint (E) ends exactly where an uninterrupted one (D) does.
import { join } from 'node:path';
import { Generator } from '../../../src/tensor/random.js';
import { experimentConfig, VARIANTS, type CtMoeData } from '../../../src/experiments/ctmoe/index.js';
import { runVariant } from '../../../src/experiments/ctmoe/train.js';
import { readCheckpoint } from '../../../src/experiments/ctmoe/checkpoint.js';
import { worldCommunicator } from '../../../src/dist/communicator.js';
import { DataParallel } from '../../../src/dist/data-parallel.js';

const dir = process.argv[2]!;
const comm = worldCommunicator();
const dp = new DataParallel(comm, 4096); // small buckets: several all-reduces per step
const cfg = experimentConfig('tiny', {
  vocabSize: 256, seqLen: 8, dModel: 16, nHead: 2, nLayer: 2, numExperts: 4, topK: 3,
  dropout: 0, lbWeight: 0, batchSize: 8, lr: 3e-3, steps: 30, warmup: 3, logEvery: 10,
  evalBatches: 1, freqBatches: 1, checkpointEvery: 10,
});
const g = new Generator(7);
const tokens = (n: number, lo: number) => Int32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? lo : lo + g.int(100)));
const data: CtMoeData = { vocabSize: 256, train: tokens(2000, 0), val: { code: tokens(200, 0), prose: tokens(200, 120) } };
const variant = VARIANTS[0]!;

const A = runVariant(cfg, variant, data, { dir: join(dir, 'A'), dataParallel: dp })!;
if (runVariant(cfg, variant, data, { dir: join(dir, 'B'), dataParallel: dp, stopAfterStep: 12 }) !== null) throw new Error('B was not interrupted');
if (comm.rank === 0) {
  let refused = '';
  try {
    runVariant(cfg, variant, data, { dir: join(dir, 'B') });
  } catch (e) {
    refused = (e as Error).message;
  }
  if (!/was written for another config or variant: worldSize \(checkpoint 2, now unset\)/.test(refused)) throw new Error(`a single-process resume of a DP checkpoint was not refused (${refused})`);
  console.log('PASS world-size mismatch refused');
}
runVariant(cfg, variant, data, { dir: join(dir, 'B'), dataParallel: dp });
// with dropout each rank draws its own masks; a resumed run (E) still ends exactly where an uninterrupted one (D) does
const dropCfg = { ...cfg, dropout: 0.1, steps: 14, checkpointEvery: 5 };
runVariant(dropCfg, variant, data, { dir: join(dir, 'D'), dataParallel: dp });
runVariant(dropCfg, variant, data, { dir: join(dir, 'E'), dataParallel: dp, stopAfterStep: 7 });
runVariant(dropCfg, variant, data, { dir: join(dir, 'E'), dataParallel: dp });

if (comm.rank === 0) {
  const C = runVariant(cfg, variant, data, { dir: join(dir, 'C') })!;
  // each run's checkpoint fingerprint as train.ts makes it (the data-parallel ones with their world size)
  const fingerprint = (c: typeof cfg, worldSize: number) =>
    JSON.stringify({ cfg: { ...c, ...variant.overrides }, flags: variant.flags, ...(worldSize > 1 ? { worldSize } : {}) });
  const params = (d: string, c: typeof cfg, worldSize: number) =>
    readCheckpoint<{ trainLoss: number[] }>(join(dir, d), { fingerprint: fingerprint(c, worldSize), progressSteps: (p) => p.trainLoss.length })!.model;
  const [pa, pb, pc, pd, pe] = [params('A', cfg, comm.size), params('B', cfg, comm.size), params('C', cfg, 1), params('D', dropCfg, comm.size), params('E', dropCfg, comm.size)];
  for (const [k, t] of Object.entries(pd)) {
    const d = t.dataSync();
    const e = pe[k]!.dataSync();
    for (let i = 0; i < d.length; i++) if (d[i] !== e[i]) throw new Error(`dropout run: resumed parameter ${k}[${i}] = ${e[i]}, uninterrupted ${d[i]}`);
  }
  console.log('PASS dp resume with per-rank dropout reproduces the uninterrupted run');
  let worst = 0;
  for (const [k, t] of Object.entries(pc)) {
    const a = pa[k]!.dataSync();
    const b = pb[k]!.dataSync();
    const c = t.dataSync();
    for (let i = 0; i < c.length; i++) {
      worst = Math.max(worst, Math.abs(a[i]! - c[i]!));
      if (!(Math.abs(a[i]! - c[i]!) <= 2e-4 * Math.max(1, Math.abs(c[i]!)))) throw new Error(`DP parameter ${k}[${i}] = ${a[i]} but one process gives ${c[i]}`);
      if (a[i] !== b[i]) throw new Error(`resumed DP parameter ${k}[${i}] = ${b[i]} but the uninterrupted DP run gives ${a[i]}`);
    }
  }
  for (let s = 0; s < C.trainLoss.length; s++) {
    if (!(Math.abs(A.trainLoss[s]! - C.trainLoss[s]!) <= 1e-4 * C.trainLoss[s]!)) throw new Error(`step ${s + 1}: DP loss ${A.trainLoss[s]} vs one process ${C.trainLoss[s]}`);
  }
  console.log(`PASS dp parameters equal one process after ${cfg.steps} steps (max |diff| ${worst.toExponential(2)})`);
  console.log('PASS dp resume reproduces the uninterrupted run');
}
console.log(`DONE rank ${comm.rank}`);
