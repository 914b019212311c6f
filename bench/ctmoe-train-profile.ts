// Where a CT-MoE training step's time goes (the model and step of `bench ctmoe-train`): time in
// each native call (every function of the addon, wrapped) against the whole step; the rest is
// JavaScript (autograd bookkeeping, reference-backend fallbacks, index building, GC), which runs
// alone while the pool's workers wait. On a loaded machine the absolute times are noisy; the
// shares are what to read.
// node --import tsx bench/ctmoe-train-profile.ts [tiny|small] [steps]
import { loadNativeAddon } from '../src/backend/native/addon.js';
import { BatchLoader, TokenWindows } from '../src/data/batches.js';
import {
  CtMoeGPT,
  type PresetName,
  batchTensors,
  experimentConfig,
  loadCtMoeData,
  resolveVariant,
} from '../src/experiments/ctmoe/index.js';
import { manualSeed, useThroughputGc } from '../src/index.js';
import { AdamW } from '../src/optim/adamw.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { Generator } from '../src/tensor/random.js';

const preset = (process.argv[2] ?? 'tiny') as PresetName;
const steps = Number(process.argv[3] ?? 10);
useThroughputGc();
const addon = loadNativeAddon().addon as unknown as Record<string, (...a: unknown[]) => unknown> | null;
if (!addon) throw new Error('the native addon did not load: nothing to profile');
const acc = new Map<string, { ms: number; calls: number }>();
let recording = false;
for (const fn of Object.keys(addon).filter((n) => typeof addon[n] === 'function')) {
  const orig = addon[fn]!.bind(addon);
  addon[fn] = (...a: unknown[]) => {
    if (!recording) return orig(...a);
    const t0 = performance.now();
    const r = orig(...a);
    const e = acc.get(fn) ?? { ms: 0, calls: 0 };
    e.ms += performance.now() - t0;
    e.calls++;
    acc.set(fn, e);
    return r;
  };
}

const variant = resolveVariant('CT-MoE-Full');
const cfg = experimentConfig(preset, variant.overrides);
const data = loadCtMoeData(cfg.vocabSize);
manualSeed(cfg.seed);
const model = new CtMoeGPT(cfg, variant.flags);
const optimizer = new AdamW(
  [
    { params: model.otherParameters(), lr: cfg.lr, weightDecay: cfg.weightDecay },
    { params: model.topologyParameters(), lr: cfg.lr * cfg.sLrScale, weightDecay: 0 },
  ],
  { lr: cfg.lr, betas: cfg.betas, eps: 1e-8 },
);
const rng = new Generator(cfg.seed + 1);
const loader = new BatchLoader(new TokenWindows(data.train, cfg.seqLen), { batchSize: cfg.batchSize, random: () => rng.uniform() });
const params = model.parameters();
model.train();
const phases = { forward: 0, backward: 0, 'clip + AdamW': 0 };
const step = () => {
  const { input, target } = batchTensors(loader.next());
  model.zeroGrad();
  const t0 = performance.now();
  const { total } = model.loss(input, target);
  const t1 = performance.now();
  total.backward();
  const t2 = performance.now();
  clipGradNorm(params, cfg.gradClip);
  optimizer.step();
  total.item();
  const t3 = performance.now();
  if (recording) {
    phases.forward += t1 - t0;
    phases.backward += t2 - t1;
    phases['clip + AdamW'] += t3 - t2;
  }
};
for (let i = 0; i < 3; i++) step();
recording = true;
const t0 = performance.now();
for (let i = 0; i < steps; i++) step();
const total = performance.now() - t0;
recording = false;
const native = [...acc.values()].reduce((s, e) => s + e.ms, 0);
console.log(
  `CT-MoE (Full), preset ${preset}: ${steps} steps, ${(total / steps).toFixed(1)} ms/step; native calls ${((100 * native) / total).toFixed(1)}%, JavaScript ${((100 * (total - native)) / total).toFixed(1)}%`,
);
console.log(
  `phases: ${Object.entries(phases)
    .map(([k, v]) => `${k} ${((100 * v) / total).toFixed(1)}%`)
    .join(', ')}`,
);
const rows = [...acc.entries()].sort((a, b) => b[1].ms - a[1].ms);
for (const [fn, e] of rows.slice(0, 25))
  console.log(
    `${fn.padEnd(28)} ${(e.ms / steps).toFixed(2).padStart(8)} ms/step ${((100 * e.ms) / total).toFixed(1).padStart(5)}%  ${(e.calls / steps).toFixed(0).padStart(5)} calls/step`,
  );
