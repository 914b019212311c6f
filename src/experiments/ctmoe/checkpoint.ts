// Checkpoints of one variant's training: model + optimiser moments in safetensors, everything
// else (step, optimiser steps and hyper-parameters, scheduler, RNG states, data position,
// usage counters, the logs so far) in JSON. Both are written atomically; the JSON names the
// weights file of its step, so a crash between the two writes leaves the previous pair valid.
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { LoaderState } from '../../data/batches.js';
import { writeJsonAtomicSync } from '../../io/atomic.js';
import { readSafetensorsSync, writeSafetensorsSync, type SafetensorsTensor } from '../../io/safetensors.js';
import { stateDictToSafetensors, safetensorsToStateDict } from '../../nn/state.js';
import type { AdamWStateDict } from '../../optim/adamw.js';
import type { LRSchedulerState } from '../../optim/schedule.js';
import type { GeneratorState } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { StateDict } from '../../nn/module.js';

export const CHECKPOINT_JSON = 'checkpoint.json';

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

export interface CheckpointState<P> {
  meta: CheckpointMeta<P>;
  model: StateDict;
  optimizer: AdamWStateDict;
}

export function writeCheckpoint<P>(dir: string, meta: Omit<CheckpointMeta<P>, 'weightsFile' | 'optimizer' | 'version'>, model: StateDict, optimizer: AdamWStateDict): void {
  const weightsFile = `ckpt-${String(meta.step).padStart(8, '0')}.safetensors`;
  const tensors: Record<string, SafetensorsTensor> = {};
  for (const [k, v] of Object.entries(stateDictToSafetensors(model))) tensors[`model.${k}`] = v;
  const paramSteps: Record<number, number> = {};
  const moments: Record<string, Tensor> = {};
  for (const [i, s] of Object.entries(optimizer.state)) {
    paramSteps[Number(i)] = s.step;
    moments[`optim.${i}.exp_avg`] = s.expAvg;
    moments[`optim.${i}.exp_avg_sq`] = s.expAvgSq;
  }
  Object.assign(tensors, stateDictToSafetensors(moments));
  writeSafetensorsSync(join(dir, weightsFile), tensors, { format: 'moekit-ctmoe-checkpoint', step: String(meta.step) });
  const full: CheckpointMeta<P> = {
    version: 1,
    ...meta,
    weightsFile,
    optimizer: { stepCount: optimizer.stepCount, paramGroups: optimizer.paramGroups, paramSteps },
  };
  writeJsonAtomicSync(join(dir, CHECKPOINT_JSON), full);
  for (const f of readdirSync(dir)) if (/^ckpt-\d+\.safetensors$/.test(f) && f !== weightsFile) rmSync(join(dir, f), { force: true });
}

export function readCheckpoint<P>(dir: string): CheckpointState<P> | null {
  const file = join(dir, CHECKPOINT_JSON);
  if (!existsSync(file)) return null;
  const meta = JSON.parse(readFileSync(file, 'utf8')) as CheckpointMeta<P>;
  if (meta.version !== 1) throw new Error(`${file}: unsupported checkpoint version ${String(meta.version)} (expected 1)`);
  const all = safetensorsToStateDict(readSafetensorsSync(join(dir, meta.weightsFile)).tensors);
  const model: StateDict = {};
  for (const [k, v] of Object.entries(all)) if (k.startsWith('model.')) model[k.slice(6)] = v;
  const state: AdamWStateDict['state'] = {};
  for (const [i, step] of Object.entries(meta.optimizer.paramSteps)) {
    const m = all[`optim.${i}.exp_avg`];
    const v = all[`optim.${i}.exp_avg_sq`];
    if (!m || !v) throw new Error(`${join(dir, meta.weightsFile)}: optimiser moments of parameter ${i} are missing`);
    state[Number(i)] = { step, expAvg: m, expAvgSq: v };
  }
  return { meta, model, optimizer: { state, paramGroups: meta.optimizer.paramGroups, stepCount: meta.optimizer.stepCount } };
}
