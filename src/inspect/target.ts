// What `moekit inspect <target>` was pointed at: a config.json, a model directory (config.json
// plus safetensors), a shipped model's name (models/) or an OLMo-core MoE block preset; and the
// full inspection of it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readCheckpointIndex } from '../io/safetensors-sharded.js';
import { OLMO_CORE_PRESETS, type OlmoCorePresetName, moeParamCounts, olmoCorePreset } from '../moe/presets.js';
import type { MoEConfig } from '../moe/config.js';
import { type CheckpointCheck, type ExpertNorms, checkCheckpoint, expertNormBytes, expertWeightNorms } from './check.js';
import { checkpointLayout } from './checkpoint-layout.js';
import { knownModelConfig, knownModels } from './known-models.js';
import { type InspectReport, inspectModel } from './report.js';

export class InspectTargetError extends Error {
  override name = 'InspectTargetError';
}

export interface BlockReport {
  preset: string;
  config: MoEConfig;
  params: { total: number; active: number };
  /** Forward FLOPs of the block per token: 2 x active parameters. */
  forwardFlops: number;
}

export interface TargetInspection {
  target: string;
  kind: 'config' | 'directory' | 'preset';
  model?: InspectReport;
  block?: BlockReport;
  checkpoint?: CheckpointCheck;
  expertNorms?: ExpertNorms[];
}

export interface InspectTargetOptions {
  seqLen?: number;
  /** Read the experts' tensors for their norms (default true). */
  norms?: boolean;
  /** Called before reading the experts with the bytes to read, then with the bytes read so far. */
  onNormsStart?: (totalBytes: number) => void;
  onNormsProgress?: (bytesRead: number) => void;
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InspectTargetError(`${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new InspectTargetError(`${file}: is not a JSON object (${(e as Error).message})`);
  }
}

export function inspectTarget(target: string, opts: InspectTargetOptions = {}): TargetInspection {
  if ((OLMO_CORE_PRESETS as readonly string[]).includes(target) && !fs.existsSync(target)) {
    const config = olmoCorePreset(target as OlmoCorePresetName);
    const params = moeParamCounts(config);
    return { target, kind: 'preset', block: { preset: target, config, params, forwardFlops: 2 * params.active } };
  }
  const known = fs.existsSync(target) ? null : knownModelConfig(target);
  if (known) return { target, kind: 'preset', model: inspectModel(known, { seqLen: opts.seqLen }) };
  if (!fs.existsSync(target)) {
    throw new InspectTargetError(
      `target '${target}' is neither a file, a directory nor a preset (models: ${knownModels().join(', ')}; MoE blocks: ${OLMO_CORE_PRESETS.join(', ')})`,
    );
  }
  if (!fs.statSync(target).isDirectory()) {
    return { target, kind: 'config', model: inspectModel(readJson(target), { seqLen: opts.seqLen }) };
  }
  const configFile = path.join(target, 'config.json');
  if (!fs.existsSync(configFile)) throw new InspectTargetError(`${target}: a model directory needs a config.json`);
  const config = readJson(configFile);
  const model = inspectModel(config, { seqLen: opts.seqLen });
  const hasWeights = fs.readdirSync(target).some((f) => f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json'));
  if (!hasWeights) return { target, kind: 'directory', model };
  const index = readCheckpointIndex(target);
  const layout = checkpointLayout(model.spec, new Set(index.tensors.keys()));
  const checkpoint = checkCheckpoint(model.spec, index, config, layout);
  if (opts.norms === false) return { target, kind: 'directory', model, checkpoint };
  opts.onNormsStart?.(expertNormBytes(layout, index));
  const expertNorms = expertWeightNorms(layout, index, checkpoint, opts.onNormsProgress);
  return { target, kind: 'directory', model, checkpoint, expertNorms };
}
