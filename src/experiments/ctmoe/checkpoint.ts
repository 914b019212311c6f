// Checkpoints of one variant's training, each three files named by its step:
//   ckpt-<step>.safetensors     model + optimiser moments (its metadata records the step)
//   ckpt-<step>.json            everything else: step, optimiser steps and hyper-parameters,
//                               scheduler, RNG states, data position, usage, the logs so far
//   ckpt-<step>.manifest.json   step, config hash, tensor list, size and SHA-256 of the two
// All atomic; the manifest is written last, so a checkpoint exists once its manifest does. The
// last `keep` (default 2) are kept. Resuming verifies the newest against its manifest and falls
// back to the one before with a one-line warning when a file is missing or its bytes changed;
// a checkpoint that verifies but contradicts itself (steps that differ between its files, logs
// of another length) or was written for another config refuses to resume and says why.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { LoaderState } from '../../data/batches.js';
import { writeFileAtomicSync } from '../../io/atomic.js';
import { readJsonFileSync } from '../../io/json-file.js';
import { parseSafetensors, serializeSafetensors, type SafetensorsTensor } from '../../io/safetensors.js';
import { stateDictToSafetensors, safetensorsToStateDict } from '../../nn/state.js';
import type { AdamWStateDict } from '../../optim/adamw.js';
import type { LRSchedulerState } from '../../optim/schedule.js';
import type { GeneratorState } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { StateDict } from '../../nn/module.js';

/** Where checkpoints were kept before manifests (one, unverified): still read when nothing newer is there. */
export const LEGACY_CHECKPOINT_JSON = 'checkpoint.json';
export const DEFAULT_KEEP_CHECKPOINTS = 2;
const MANIFEST_FORMAT = 'moekit-checkpoint-manifest';
const MANIFEST_RE = /^ckpt-(\d{8,})\.manifest\.json$/;
const CKPT_FILE_RE = /^ckpt-(\d{8,})\.(safetensors|json|manifest\.json)$/;

export interface CheckpointMeta<P> {
  version: 1;
  /** Optimiser steps completed. */
  step: number;
  weightsFile: string;
  /** JSON of the config + variant flags it was trained with (resume refuses a mismatch). */
  fingerprint: string;
  optimizer: { stepCount: number; paramGroups: AdamWStateDict['paramGroups']; paramSteps: Record<number, number> };
  scheduler: LRSchedulerState;
  rng: { default: GeneratorState; data: GeneratorState };
  loader: LoaderState;
  usage: number[][];
  progress: P;
}

export interface CheckpointManifest {
  format: typeof MANIFEST_FORMAT;
  version: 1;
  step: number;
  /** SHA-256 of the fingerprint (config + variant flags). */
  configHash: string;
  tensors: string[];
  files: Record<string, { bytes: number; sha256: string }>;
}

export interface CheckpointState<P> {
  meta: CheckpointMeta<P>;
  model: StateDict;
  optimizer: AdamWStateDict;
}

/** A checkpoint that verifies but cannot be resumed from (another config, a step that contradicts itself). */
export class CheckpointMismatchError extends Error {
  override name = 'CheckpointMismatchError';
}

const stem = (step: number) => `ckpt-${String(step).padStart(8, '0')}`;
const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

export function writeCheckpoint<P>(
  dir: string,
  meta: Omit<CheckpointMeta<P>, 'weightsFile' | 'optimizer' | 'version'>,
  model: StateDict,
  optimizer: AdamWStateDict,
  keep = DEFAULT_KEEP_CHECKPOINTS,
): void {
  const base = stem(meta.step);
  const weightsFile = `${base}.safetensors`;
  const tensors: Record<string, SafetensorsTensor> = {};
  for (const [k, v] of Object.entries(stateDictToSafetensors(model))) tensors[`model.${k}`] = v;
  const paramSteps: Record<number, number> = {};
  const moments: Record<string, Tensor> = {};
  for (const [i, s] of Object.entries(optimizer.state)) {
    paramSteps[Number(i)] = s.step;
    moments[`optim.${i}.exp_avg`] = s.expAvg;
    moments[`optim.${i}.exp_avg_sq`] = s.expAvgSq;
    if (s.master) moments[`optim.${i}.master`] = s.master; // bf16 parameters' f32 master weights
  }
  Object.assign(tensors, stateDictToSafetensors(moments));
  const weights = serializeSafetensors(tensors, { format: 'moekit-ctmoe-checkpoint', step: String(meta.step) });
  const full: CheckpointMeta<P> = {
    version: 1,
    ...meta,
    weightsFile,
    optimizer: { stepCount: optimizer.stepCount, paramGroups: optimizer.paramGroups, paramSteps },
  };
  const metaText = `${JSON.stringify(full, null, 2)}\n`;
  writeFileAtomicSync(join(dir, weightsFile), weights);
  writeFileAtomicSync(join(dir, `${base}.json`), metaText);
  const manifest: CheckpointManifest = {
    format: MANIFEST_FORMAT,
    version: 1,
    step: meta.step,
    configHash: sha256(meta.fingerprint),
    tensors: Object.keys(tensors).sort(),
    files: {
      [weightsFile]: { bytes: weights.length, sha256: sha256(weights) },
      [`${base}.json`]: { bytes: Buffer.byteLength(metaText), sha256: sha256(metaText) },
    },
  };
  writeFileAtomicSync(join(dir, `${base}.manifest.json`), `${JSON.stringify(manifest, null, 2)}\n`);
  prune(dir, keep);
}

/** Steps of the checkpoints in `dir` that have a manifest, newest first. */
export function checkpointSteps(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => MANIFEST_RE.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
}

// Keep the newest `keep` checkpoints; remove every other ckpt-* file (older ones, and the
// leftovers of a checkpoint whose manifest was never written).
function prune(dir: string, keep: number): void {
  const kept = new Set(checkpointSteps(dir).slice(0, Math.max(1, keep)));
  for (const f of readdirSync(dir)) {
    const m = CKPT_FILE_RE.exec(f);
    if (m && !kept.has(Number(m[1]))) rmSync(join(dir, f), { force: true });
  }
  rmSync(join(dir, LEGACY_CHECKPOINT_JSON), { force: true });
}

/** Why a checkpoint's files do not match its manifest, or null when they do. */
function corruption(dir: string, manifest: CheckpointManifest): string | null {
  for (const [file, want] of Object.entries(manifest.files)) {
    const path = join(dir, file);
    if (!existsSync(path)) return `${file} is missing`;
    const bytes = statSync(path).size;
    if (bytes !== want.bytes) return `${file} is ${bytes} bytes, the manifest says ${want.bytes}`;
    if (sha256(readFileSync(path)) !== want.sha256) return `${file} does not match its SHA-256 in the manifest`;
  }
  return null;
}

/** The config fields that differ between two fingerprints, e.g. "lr (checkpoint 0.002, now 0.001)". */
function fingerprintDiff(saved: string, now: string): string {
  try {
    const a = JSON.parse(saved) as { cfg: Record<string, unknown>; flags: Record<string, unknown>; worldSize?: number };
    const b = JSON.parse(now) as { cfg: Record<string, unknown>; flags: Record<string, unknown>; worldSize?: number };
    const diffs: string[] = [];
    // a data-parallel run's checkpoint also records its world size (src/dist/data-parallel.ts)
    if (a.worldSize !== b.worldSize) diffs.push(`worldSize (checkpoint ${a.worldSize ?? 'unset'}, now ${b.worldSize ?? 'unset'})`);
    for (const part of ['cfg', 'flags'] as const) {
      for (const k of new Set([...Object.keys(a[part] ?? {}), ...Object.keys(b[part] ?? {})])) {
        const x = JSON.stringify(a[part]?.[k]);
        const y = JSON.stringify(b[part]?.[k]);
        if (x !== y) diffs.push(`${k} (checkpoint ${x ?? 'unset'}, now ${y ?? 'unset'})`);
      }
    }
    return diffs.length ? diffs.slice(0, 4).join(', ') + (diffs.length > 4 ? `, and ${diffs.length - 4} more` : '') : 'the flags';
  } catch {
    return 'its fingerprint';
  }
}

/** Load one verified checkpoint; a CheckpointMismatchError when it contradicts itself or the config. */
function load<P>(
  dir: string,
  step: number,
  fingerprint: string,
  progressSteps: (p: P) => number,
  metaFile = join(dir, `${stem(step)}.json`),
): CheckpointState<P> {
  const base = stem(step);
  const meta = readJsonFileSync(metaFile) as CheckpointMeta<P>;
  if (meta.version !== 1)
    throw new CheckpointMismatchError(`${metaFile}: unsupported checkpoint version ${String(meta.version)} (expected 1)`);
  if (meta.fingerprint !== fingerprint) {
    throw new CheckpointMismatchError(
      `${metaFile} was written for another config or variant: ${fingerprintDiff(meta.fingerprint, fingerprint)}; ` +
        'move the directory away or use another --out',
    );
  }
  const weightsFile = join(dir, meta.weightsFile);
  const weights = parseSafetensors(readFileSync(weightsFile), weightsFile);
  const steps: [string, unknown][] = [
    ['its file name', step],
    [`${basename(metaFile)} "step"`, meta.step],
    [`${meta.weightsFile} metadata "step"`, Number(weights.metadata['step'])],
    ['the logged losses', progressSteps(meta.progress)],
  ];
  const bad = steps.find(([, s]) => s !== step);
  if (bad || meta.weightsFile !== `${base}.safetensors`) {
    throw new CheckpointMismatchError(
      `checkpoint ${base} in ${dir} contradicts itself: ` +
        steps.map(([what, s]) => `${what} says step ${String(s)}`).join(', ') +
        `, weights file ${meta.weightsFile}; refusing to resume from it`,
    );
  }
  const all = safetensorsToStateDict(weights.tensors);
  const model: StateDict = {};
  for (const [k, v] of Object.entries(all)) if (k.startsWith('model.')) model[k.slice(6)] = v;
  const state: AdamWStateDict['state'] = {};
  for (const [i, s] of Object.entries(meta.optimizer.paramSteps)) {
    const m = all[`optim.${i}.exp_avg`];
    const v = all[`optim.${i}.exp_avg_sq`];
    if (!m || !v) throw new CheckpointMismatchError(`${weightsFile}: optimiser moments of parameter ${i} are missing`);
    const master = all[`optim.${i}.master`];
    state[Number(i)] = { step: s, expAvg: m, expAvgSq: v, ...(master ? { master } : {}) };
  }
  return { meta, model, optimizer: { state, paramGroups: meta.optimizer.paramGroups, stepCount: meta.optimizer.stepCount } };
}

export interface ReadCheckpointOptions<P> {
  /** The run's config + flags; a checkpoint with another refuses to resume. */
  fingerprint: string;
  /** Optimiser steps the saved progress covers (compared with the checkpoint's step). */
  progressSteps: (p: P) => number;
  /** One line per checkpoint skipped because its files do not match its manifest. */
  onWarning?: (message: string) => void;
}

/**
 * The newest checkpoint in `dir` whose files match its manifest, or null when there is none
 * at all. Throws when checkpoints exist but none verifies, or when the one that verifies
 * contradicts itself or the config (CheckpointMismatchError).
 */
export function readCheckpoint<P>(dir: string, opts: ReadCheckpointOptions<P>): CheckpointState<P> | null {
  const steps = checkpointSteps(dir);
  if (steps.length === 0) return readLegacy(dir, opts);
  const failures: string[] = [];
  for (const [i, step] of steps.entries()) {
    const manifestFile = join(dir, `${stem(step)}.manifest.json`);
    let why: string | null;
    try {
      const manifest = readJsonFileSync(manifestFile) as CheckpointManifest;
      if (manifest.format !== MANIFEST_FORMAT || manifest.step !== step || typeof manifest.files !== 'object' || manifest.files === null) {
        why = `${manifestFile} is not the manifest of step ${step}`;
      } else if (manifest.configHash !== sha256(opts.fingerprint)) {
        return load(dir, step, opts.fingerprint, opts.progressSteps); // throws, naming the config fields that differ
      } else why = corruption(dir, manifest);
    } catch (err) {
      if (err instanceof CheckpointMismatchError) throw err;
      why = (err as Error).message;
    }
    if (why === null) return load(dir, step, opts.fingerprint, opts.progressSteps);
    failures.push(`step ${step}: ${why}`);
    const next = steps[i + 1];
    opts.onWarning?.(
      `checkpoint ${stem(step)} in ${dir} is damaged (${why}); ` +
        (next !== undefined ? `falling back to step ${next}` : 'no older checkpoint'),
    );
  }
  throw new Error(`no checkpoint in ${dir} verifies (${failures.join('; ')}); move the directory away to start over`);
}

// Before manifests: one checkpoint.json naming its weights file, read without verification.
function readLegacy<P>(dir: string, opts: ReadCheckpointOptions<P>): CheckpointState<P> | null {
  const file = join(dir, LEGACY_CHECKPOINT_JSON);
  if (!existsSync(file)) return null;
  const meta = readJsonFileSync(file) as Partial<CheckpointMeta<P>>;
  const m = /^ckpt-(\d+)\.safetensors$/.exec(String(meta.weightsFile));
  if (!m)
    throw new CheckpointMismatchError(
      `${file}: "weightsFile" ${JSON.stringify(meta.weightsFile)?.slice(0, 60)} is not a checkpoint's weights file`,
    );
  opts.onWarning?.(`${file} has no manifest (written by an older moekit): resuming from it unverified`);
  return load(dir, Number(m[1]), opts.fingerprint, opts.progressSteps, file);
}
