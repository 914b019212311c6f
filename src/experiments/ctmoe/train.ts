// Training and evaluation of one CT-MoE ablation variant, resumable from its checkpoints.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { backendInfo } from '../../backend/registry.js';
import { BatchLoader, TokenWindows } from '../../data/batches.js';
import { writeJsonAtomicSync } from '../../io/atomic.js';
import { ensureDirSync } from '../../io/ensure-dir.js';
import { readJsonFileSync } from '../../io/json-file.js';
import { AdamW } from '../../optim/adamw.js';
import { clipGradNormDeferred } from '../../optim/clip.js';
import { openScope } from '../../tensor/scope.js';
import { LRScheduler, warmupCosine } from '../../optim/schedule.js';
import { Generator, defaultGenerator, manualSeed } from '../../tensor/random.js';
import type { CtMoeExperimentConfig, VariantFlags, VariantSpec } from './config.js';
import { type CtMoeData, domainBatches, mixedBatches } from './data.js';
import {
  batchTensors,
  evalPplReads,
  finalSReads,
  lastLayerEigenspectrumReads,
  routingFrequencyReads,
  sDiagnosticsReads,
  specialisation,
} from './eval.js';
import { type Reads, read, runReadsAsync, runReadsSync } from '../../tensor/reads.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { MoELayer } from '../../moe/layer.js';
import { hostCheckpointState } from '../host-state.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { CtMoeGPT } from './model.js';
import { MAX_CONSECUTIVE_SKIPS, type NonFinitePolicy, NonFiniteError, firstNonFiniteReads, stepIsFinite } from '../nonfinite.js';
import { DataParallel } from '../../dist/data-parallel.js';
import { ExpertParallel } from '../../dist/expert-parallel.js';
import { DashboardLog } from './dashboard-log.js';
import { takeRoutingEntropy } from '../../moe/topology/diagnostics.js';
import { precisionStep } from './precision.js';
import type { GradScalerState } from '../../amp/grad-scaler.js';

export const RESULT_JSON = 'result.json';

/** One logged point (every logEvery steps and at the last step). */
export interface CtMoeLogEntry {
  step: number;
  /** Mean total loss (CE + scaled LB) over the steps since the previous log. */
  loss: number;
  /** Mean CE over the same steps. */
  ce: number;
  /** Mixed-validation perplexity (evalBatches batches). */
  valPpl: number;
  /** Routing entropy of the usage since the previous log: mean over layers, and per layer. */
  routingEntropy: number;
  routingEntropyPerLayer: number[];
  /** S row entropy / S max: mean over layers, and per layer (null: Standard MoE). */
  sEntropy: number | null;
  sEntropyPerLayer: number[] | null;
  sMax: number | null;
  sMaxPerLayer: number[] | null;
  /** lr of the main group, and of S_raw's group, after this step's scheduler step. */
  lr: number;
  sLr: number;
  /** Training seconds so far (across resumes). */
  elapsedSec: number;
}

export interface CtMoeVariantResult {
  key: string;
  label: string;
  color: string;
  flags: VariantFlags;
  config: CtMoeExperimentConfig;
  nParams: number;
  /** S_raw scalars (numLayers x N²). */
  nTopologyParams: number;
  steps: number;
  /** Per step: total loss and CE. */
  trainLoss: number[];
  trainCe: number[];
  logs: CtMoeLogEntry[];
  domainPpl: { code: number; prose: number; mixed: number };
  routingFreq: { code: number[]; prose: number[] };
  specialisation: number[];
  /** Final S per layer [layer][i][j] (null: Standard MoE). */
  finalS: number[][][] | null;
  eigenspectrum: { eigenvalues: number[]; normalizedAbs: number[]; reference: number; semantics: string } | null;
  timing: { trainSec: number; evalSec: number; secPerStep: number; resumedFromStep: number | null };
  backend: string;
  /** Steps dropped for a non-finite loss or gradient norm (--on-nonfinite skip): how many, and the step each would have been. */
  nonFinite?: { policy: NonFinitePolicy; skipped: number; skippedAt: number[] };
}

export type CtMoeProgress =
  | { variant: string; phase: 'skip' }
  | { variant: string; phase: 'start' | 'resume'; step: number; steps: number }
  | { variant: string; phase: 'log'; step: number; steps: number; log: CtMoeLogEntry }
  | { variant: string; phase: 'checkpoint'; step: number; steps: number }
  | { variant: string; phase: 'eval'; steps: number }
  | { variant: string; phase: 'done'; result: CtMoeVariantResult }
  | { variant: string; phase: 'interrupted'; step: number; steps: number }
  | { variant: string; phase: 'warning'; message: string };

export interface RunVariantOptions {
  /** The variant's directory (checkpoints and result.json). */
  dir: string;
  onProgress?: (p: CtMoeProgress) => void;
  /** Stop after this step without a checkpoint, as if the process were killed (tests). */
  stopAfterStep?: number;
  /**
   * A step whose loss or gradient norm is NaN / inf: 'stop' (default) throws a NonFiniteError
   * naming the step, the variant and the first non-finite parameter or gradient, leaving the
   * last checkpoint as it is; 'skip' drops the step (no update; counted in the result) unless a
   * parameter itself is non-finite or MAX_CONSECUTIVE_SKIPS steps in a row were dropped.
   */
  onNonFinite?: NonFinitePolicy;
  /** Checkpoints kept (the newest; default 2): resume falls back to an older one when the newest is damaged. */
  keepCheckpoints?: number;
  /**
   * Parallelism over MPI ranks: data parallel (src/dist/data-parallel.ts: sharded batches,
   * averaged gradients, rank 0 writes) or expert parallel (src/dist/expert-parallel.ts).
   */
  dataParallel?: DataParallel | ExpertParallel;
}

interface Progress {
  trainLoss: number[];
  trainCe: number[];
  logs: CtMoeLogEntry[];
  trainSec: number;
  resumedFromStep: number | null;
  /** f16-amp: the GradScaler's state at the checkpoint. */
  gradScaler?: GradScalerState | null;
  /** Steps dropped by the 'skip' policy (absent in checkpoints written before it existed). */
  skippedAt?: number[];
}

/** Steps of a run: cfg.steps, or epochs x full batches per epoch. */
export function totalSteps(cfg: CtMoeExperimentConfig, data: CtMoeData): number {
  if (cfg.steps !== null) return cfg.steps;
  return cfg.epochs * Math.floor(new TokenWindows(data.train, cfg.seqLen).length / cfg.batchSize);
}

const mean = (a: readonly number[]) => a.reduce((s, v) => s + v, 0) / a.length;

/** Checkpoints are written at multiples of checkpointEvery: the last one before `step`. */
function lastCheckpointNote(step: number, every: number): string {
  const last = Math.floor(step / every) * every;
  return last > 0 ? `the last checkpoint (step ${last}) kept` : 'no checkpoint written yet';
}

/** The first element of each of `scalars` (numbers pass through), read in one wait with the layers' pending usage counts, which are added to their `usage`. */
function* readStep(layers: readonly MoELayer[], ...scalars: (Tensor | number)[]): Reads<number[]> {
  const pending = layers.map((l) => l.takePendingUsage());
  const tensors = scalars.filter((x): x is Tensor => typeof x !== 'number');
  const values = yield* read(...tensors, ...pending.filter((p): p is Tensor => p !== null));
  let next = tensors.length;
  pending.forEach((p, i) => p && layers[i]!.addUsage(values[next++]!));
  next = 0;
  return scalars.map((x) => (typeof x === 'number' ? x : values[next++]![0]!));
}

/** Train (or resume, or skip when finished) one variant, then evaluate it; returns null if stopped early. CPU backends. */
export function runVariant(
  base: CtMoeExperimentConfig,
  variant: VariantSpec,
  data: CtMoeData,
  opts: RunVariantOptions,
): CtMoeVariantResult | null {
  return runReadsSync(variantRun(base, variant, data, opts));
}

/** runVariant on any backend: on a device backend (webgpu) each step waits once, for its loss, CE and gradient norm together. */
export function runVariantAsync(
  base: CtMoeExperimentConfig,
  variant: VariantSpec,
  data: CtMoeData,
  opts: RunVariantOptions,
): Promise<CtMoeVariantResult | null> {
  return runReadsAsync(variantRun(base, variant, data, opts));
}

/** runVariant's work, reading tensor values through `read` (src/tensor/reads.ts). */
export function* variantRun(
  base: CtMoeExperimentConfig,
  variant: VariantSpec,
  data: CtMoeData,
  opts: RunVariantOptions,
): Reads<CtMoeVariantResult | null> {
  const cfg: CtMoeExperimentConfig = { ...base, ...variant.overrides };
  const emit = opts.onProgress ?? (() => {});
  ensureDirSync(opts.dir);
  const resultFile = join(opts.dir, RESULT_JSON);
  const fingerprint = JSON.stringify({ cfg, flags: variant.flags });
  const par = opts.dataParallel && opts.dataParallel.size > 1 ? opts.dataParallel : null;
  const dp = par instanceof DataParallel ? par : null;
  const ep = par instanceof ExpertParallel ? par : null;
  // the gradient all-reduces take f32 / f64 gradients only, the EP block's all-to-all f32 / f64 activations
  if ((dp && cfg.precision === 'bf16') || (ep && (cfg.precision ?? 'fp32') !== 'fp32'))
    throw new RangeError(
      `--precision ${cfg.precision} with --parallel ${ep ? 'ep' : 'dp'} is not supported yet (low-precision tensors are not sent between ranks); use ${ep ? 'fp32' : 'f16-amp or fp32'}`,
    );
  // a data- or expert-parallel checkpoint resumes on the same world size (and kind) only
  const ckptFingerprint = par
    ? JSON.stringify({ cfg, flags: variant.flags, worldSize: par.size, ...(ep ? { parallel: 'ep' } : {}) })
    : fingerprint;
  const ckptDir = ep ? ep.checkpointDir(opts.dir) : opts.dir;
  if (existsSync(resultFile)) {
    const done = readJsonFileSync(resultFile) as CtMoeVariantResult;
    if (JSON.stringify({ cfg: done.config, flags: done.flags }) === fingerprint) {
      emit({ variant: variant.key, phase: 'skip' });
      return done;
    }
    throw new Error(`${resultFile} holds a finished run with another config or variant flags; move it away or use another outDir`);
  }
  if (data.vocabSize !== cfg.vocabSize)
    throw new RangeError(`runVariant: data was tokenised with vocab ${data.vocabSize}, config.vocabSize is ${cfg.vocabSize}`);

  const steps = totalSteps(cfg, data);
  manualSeed(cfg.seed);
  // expert parallel: each rank builds only its experts, and the MoE layers become EP blocks
  const model = new CtMoeGPT(cfg, variant.flags, ep?.expertShard(cfg.numExperts));
  ep?.shardFfns(model.gpt.blocks);
  const nParams = ep ? ep.globalParameterCount(model) : model.numParameters();
  const precision = precisionStep(cfg.precision ?? 'fp32', model); // before the optimiser: bf16 casts the parameters
  const layers = model.moeLayers;
  const optimizer = new AdamW(
    [
      { params: model.otherParameters(), lr: cfg.lr, weightDecay: cfg.weightDecay },
      { params: model.topologyParameters(), lr: cfg.lr * cfg.sLrScale, weightDecay: 0 },
    ],
    { lr: cfg.lr, betas: cfg.betas, eps: 1e-8 },
  );
  const scheduler = new LRScheduler(optimizer, warmupCosine({ warmup: cfg.warmup, total: steps, floor: cfg.lrFloor }));
  const dataRng = new Generator(cfg.seed + 1);
  const loader = new BatchLoader(new TokenWindows(data.train, cfg.seqLen), { batchSize: cfg.batchSize, random: () => dataRng.uniform() });

  let step = 0;
  let progress: Progress = { trainLoss: [], trainCe: [], logs: [], trainSec: 0, resumedFromStep: null };
  const ckpt = readCheckpoint<Progress>(ckptDir, {
    fingerprint: ckptFingerprint,
    progressSteps: (p) => p.trainLoss.length,
    onWarning: (message) => emit({ variant: variant.key, phase: 'warning', message }),
  });
  if (ckpt) {
    model.loadStateDict(ckpt.model);
    optimizer.loadStateDict(ckpt.optimizer);
    scheduler.loadState(ckpt.meta.scheduler);
    precision.restore(ckpt.meta.progress.gradScaler);
    defaultGenerator.setState(ckpt.meta.rng.default);
    dataRng.setState(ckpt.meta.rng.data);
    loader.restore(ckpt.meta.loader);
    ckpt.meta.usage.forEach((u, i) => layers[i]!.usage.set(u));
    step = ckpt.meta.step;
    progress = { ...ckpt.meta.progress, resumedFromStep: step };
    emit({ variant: variant.key, phase: 'resume', step, steps });
  } else {
    emit({ variant: variant.key, phase: 'start', step: 0, steps });
  }
  // log.jsonl for `moekit dashboard`, written by the rank that writes (under EP every rank runs
  // the routing sample: its forwards are collective)
  const writes = !par || par.isWriter;
  const dashboardLog = writes || ep ? new DashboardLog(opts.dir, cfg, variant, data, model, step, steps, writes) : null;

  const save = function* (): Reads<void> {
    if (dp && !dp.isWriter) return;
    const state = yield* hostCheckpointState(model.stateDict(), optimizer.stateDict());
    writeCheckpoint<Progress>(
      ckptDir,
      {
        step,
        fingerprint: ckptFingerprint,
        scheduler: scheduler.state,
        rng: { default: defaultGenerator.getState(), data: dataRng.getState() },
        loader: loader.state(),
        usage: layers.map((l) => [...l.usage]),
        progress: precision.state() ? { ...progress, gradScaler: precision.state() } : progress,
      },
      state.model,
      state.optimizer,
      opts.keepCheckpoints,
    );
  };

  const params = model.parameters();
  const named = model.namedParameters();
  const policy = opts.onNonFinite ?? 'stop';
  progress.skippedAt ??= [];
  const skippedAt = progress.skippedAt;
  let skipsInARow = 0;
  dp?.broadcastParameters(params);
  model.train();
  let sessionStart = performance.now();
  let sinceLog = { loss: [] as number[], ce: [] as number[] };
  // losses since the previous log point (also after a resume)
  const lastLogStep = progress.logs.length > 0 ? progress.logs[progress.logs.length - 1]!.step : 0;
  sinceLog = { loss: progress.trainLoss.slice(lastLogStep), ce: progress.trainCe.slice(lastLogStep) };

  while (step < steps) {
    // ranks > 0 draw their own dropout masks, seeded per step so a resume reproduces them
    if (dp && dp.rank > 0) manualSeed(cfg.seed + 7919 * dp.rank + step);
    // the step's tensors are released at its end and their storages reused by the next step's
    // (src/tensor/scope.ts): what survives is what the model, optimiser and precision hold
    const scope = openScope();
    let closed = false;
    let skipped = false;
    let lv = 0;
    let cv = 0;
    try {
      const { input, target } = batchTensors(dp ? dp.shard(loader.next()) : loader.next());
      model.zeroGrad();
      const { total, ce } = precision.forward(() => model.loss(input, target));
      precision.backward(total); // the layers' aux losses ride on the graph (attachAuxLoss)
      dp?.averageGradients(params);
      ep?.reduceGradients();
      // f16-amp: the true gradients before clipping; an overflow is the scaler's to skip, not a non-finite step
      const overflowed = precision.unscale(optimizer);
      const norm = ep ? ep.clipGradNorm(params, cfg.gradClip) : clipGradNormDeferred(params, cfg.gradClip);
      // the step's one wait: loss, CE and gradient norm together (with the layers' usage counts on webgpu)
      const [totalValue, ceValue, gradNorm] = yield* readStep(layers, total, ce, norm);
      lv = dp ? dp.mean(totalValue!) : totalValue!;
      cv = dp ? dp.mean(ceValue!) : ceValue!;
      if (!stepIsFinite(lv, overflowed ? 0 : gradNorm!)) {
        const badParam = yield* firstNonFiniteReads(named, 'parameters');
        const firstBad = badParam ?? (yield* firstNonFiniteReads(named));
        skipsInARow++;
        if (policy === 'stop' || badParam !== null || skipsInARow > MAX_CONSECUTIVE_SKIPS) {
          const why =
            policy === 'stop'
              ? '--on-nonfinite skip drops such steps instead'
              : badParam
                ? 'skipping cannot help: a parameter itself is not finite'
                : `${skipsInARow} steps in a row were not finite`;
          throw new NonFiniteError(
            variant.key,
            step + 1,
            `${variant.key}: step ${step + 1}: loss ${lv}, gradient norm ${gradNorm}; first non-finite: ${firstBad ?? 'none found (the loss alone)'}; ` +
              `training stopped, ${lastCheckpointNote(step, cfg.checkpointEvery)}; ${why}`,
          );
        }
        skippedAt.push(step + 1);
        skipped = true; // the step is dropped: no update, the scheduler and step count stay
      } else {
        skipsInARow = 0;
        precision.step(optimizer);
      }
      model.zeroGrad(); // the gradients are spent: their storages go back with the step's
      scope.close(undefined, model, optimizer, precision, par);
      closed = true;
    } finally {
      if (!closed) scope.abandon(); // an error or a stopped run: nothing released, the GC takes it
    }
    if (skipped) continue;
    scheduler.step();
    step++;
    progress.trainLoss.push(lv);
    progress.trainCe.push(cv);
    sinceLog.loss.push(lv);
    sinceLog.ce.push(cv);
    dashboardLog?.afterStep(step, lv, cv);

    if (step % cfg.logEvery === 0 || step === steps) {
      const now = performance.now();
      progress.trainSec += (now - sessionStart) / 1000;
      sessionStart = now;
      const re = layers.map((l) => takeRoutingEntropy(l.usage));
      const sd = yield* sDiagnosticsReads(model);
      const log: CtMoeLogEntry = {
        step,
        loss: mean(sinceLog.loss),
        ce: mean(sinceLog.ce),
        valPpl: yield* evalPplReads(model, mixedBatches(data.val, cfg.seqLen, cfg.batchSize, cfg.evalBatches)),
        routingEntropy: mean(re),
        routingEntropyPerLayer: re,
        sEntropy: sd ? mean(sd.sEntropy) : null,
        sEntropyPerLayer: sd?.sEntropy ?? null,
        sMax: sd ? mean(sd.sMax) : null,
        sMaxPerLayer: sd?.sMax ?? null,
        lr: optimizer.paramGroups[0]!.lr,
        sLr: optimizer.paramGroups[1]!.lr,
        elapsedSec: progress.trainSec,
      };
      progress.logs.push(log);
      if (dashboardLog) yield* dashboardLog.afterLog(log);
      sinceLog = { loss: [], ce: [] };
      sessionStart = performance.now(); // validation time is not training time
      emit({ variant: variant.key, phase: 'log', step, steps, log });
    }
    if (opts.stopAfterStep !== undefined && step >= opts.stopAfterStep && step < steps) {
      emit({ variant: variant.key, phase: 'interrupted', step, steps });
      return null;
    }
    if (step % cfg.checkpointEvery === 0 || step === steps) {
      progress.trainSec += (performance.now() - sessionStart) / 1000;
      sessionStart = performance.now();
      yield* save();
      emit({ variant: variant.key, phase: 'checkpoint', step, steps });
    }
  }

  emit({ variant: variant.key, phase: 'eval', steps });
  const t0 = performance.now();
  const B = cfg.batchSize;
  const domainPpl = {
    code: yield* evalPplReads(model, domainBatches(data.val.code, cfg.seqLen, B, cfg.evalBatches)),
    prose: yield* evalPplReads(model, domainBatches(data.val.prose, cfg.seqLen, B, cfg.evalBatches)),
    mixed: yield* evalPplReads(model, mixedBatches(data.val, cfg.seqLen, B, cfg.evalBatches)),
  };
  const routingFreq = {
    code: yield* routingFrequencyReads(model, domainBatches(data.val.code, cfg.seqLen, B, cfg.freqBatches)),
    prose: yield* routingFrequencyReads(model, domainBatches(data.val.prose, cfg.seqLen, B, cfg.freqBatches)),
  };
  const result: CtMoeVariantResult = {
    key: variant.key,
    label: variant.label,
    color: variant.color,
    flags: variant.flags,
    config: cfg,
    nParams,
    nTopologyParams: model.topologyParameters().reduce((n, p) => n + p.size, 0),
    steps,
    trainLoss: progress.trainLoss,
    trainCe: progress.trainCe,
    logs: progress.logs,
    domainPpl,
    routingFreq,
    specialisation: specialisation(routingFreq),
    finalS: yield* finalSReads(model),
    eigenspectrum: yield* lastLayerEigenspectrumReads(model),
    timing: {
      trainSec: progress.trainSec,
      evalSec: (performance.now() - t0) / 1000,
      secPerStep: progress.trainSec / steps,
      resumedFromStep: progress.resumedFromStep,
    },
    backend: backendInfo().reason,
    nonFinite: { policy, skipped: skippedAt.length, skippedAt },
  };
  if (!par || par.isWriter) writeJsonAtomicSync(resultFile, result);
  emit({ variant: variant.key, phase: 'done', result });
  return result;
}
