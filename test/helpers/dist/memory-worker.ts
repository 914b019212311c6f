// One rank's peak RSS in a few training steps of the tiny CT-MoE preset on synthetic tokens,
// beside the memory estimate for that rank (experiments/ctmoe/memory.ts). Under mpirun with
// argv `ep|dp <batchSize>`, alone with `single <batchSize>`. Prints
// "RSS <mode> <ranks> <batch> rank <r> <peak MiB> <estimate MiB>" per rank.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Generator } from '../../../src/tensor/random.js';
import { experimentConfig, VARIANTS, type CtMoeData } from '../../../src/experiments/ctmoe/index.js';
import { runVariant } from '../../../src/experiments/ctmoe/train.js';
import { estimateTrainingMemory } from '../../../src/experiments/ctmoe/memory.js';
import { worldCommunicator } from '../../../src/dist/communicator.js';
import { DataParallel } from '../../../src/dist/data-parallel.js';
import { ExpertParallel } from '../../../src/dist/expert-parallel.js';

const mode = process.argv[2] as 'ep' | 'dp' | 'single';
const batchSize = Number(process.argv[3]);
const comm = mode === 'single' ? null : worldCommunicator();
const par = comm ? (mode === 'ep' ? new ExpertParallel(comm) : new DataParallel(comm)) : undefined;
const cfg = experimentConfig('tiny', { batchSize, steps: 3, warmup: 1, logEvery: 3, evalBatches: 1, freqBatches: 1, checkpointEvery: 1000 });
const g = new Generator(1);
const tokens = (n: number) => Int32Array.from({ length: n }, () => g.int(cfg.vocabSize));
const data: CtMoeData = { vocabSize: cfg.vocabSize, train: tokens(200_000), val: { code: tokens(40_000), prose: tokens(40_000) } };
const dir = mkdtempSync(join(tmpdir(), 'moekit-mem-'));
try {
  runVariant(cfg, VARIANTS[0]!, data, { dir, dataParallel: par });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const ranks = comm?.size ?? 1;
const est = estimateTrainingMemory(cfg, mode === 'single' ? undefined : { mode, ranks });
const mib = (b: number) => (b / 2 ** 20).toFixed(0);
console.log(`RSS ${mode} ${ranks} ${batchSize} rank ${comm?.rank ?? 0} ${mib(process.resourceUsage().maxRSS * 1024)} ${mib(est.bytes)}`);
