// Checkpoints as directories: one model.safetensors or shards listed by a
// model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: file}}), as
// transformers writes them. Reading takes headers only; tensor data is read on demand, a slice of
// leading-axis rows at a time (so one expert of a stacked [E, ...] tensor costs only its bytes).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomicSync } from './atomic.js';
import {
  SAFETENSORS_DTYPE_SIZE,
  SafetensorsError,
  type SafetensorsData,
  type SafetensorsTensor,
  type SafetensorsTensorInfo,
  decodeTensor,
  readSafetensorsHeaderSync,
  writeSafetensorsSync,
} from './safetensors.js';

export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

export interface CheckpointTensor extends SafetensorsTensorInfo {
  /** Absolute path of the file holding it. */
  file: string;
  /** Absolute offset of that file's data buffer. */
  dataStart: number;
}

export interface CheckpointIndex {
  dir: string;
  files: string[];
  tensors: Map<string, CheckpointTensor>;
  /** Names the index lists in a file whose header lacks them. */
  listedButAbsent: string[];
}

function indexFile(dir: string): string | null {
  if (fs.existsSync(path.join(dir, SAFETENSORS_INDEX_FILE))) return path.join(dir, SAFETENSORS_INDEX_FILE);
  const any = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors.index.json'))
    .sort();
  return any.length > 0 ? path.join(dir, any[0]!) : null;
}

/** Headers of every safetensors file of a checkpoint directory (sharded or not); no tensor data is read. */
export function readCheckpointIndex(dir: string): CheckpointIndex {
  const idx = indexFile(dir);
  let files: string[];
  let weightMap: Record<string, string> | null = null;
  if (idx) {
    const parsed = JSON.parse(fs.readFileSync(idx, 'utf8')) as { weight_map?: unknown };
    if (typeof parsed.weight_map !== 'object' || parsed.weight_map === null)
      throw new SafetensorsError(
        `${idx}: "weight_map" = ${JSON.stringify(parsed.weight_map)} is invalid: expected an object {tensor: file}`,
      );
    weightMap = parsed.weight_map as Record<string, string>;
    files = [...new Set(Object.values(weightMap))].sort().map((f) => path.join(dir, f));
  } else {
    files = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.safetensors'))
      .sort()
      .map((f) => path.join(dir, f));
    if (files.length === 0) throw new SafetensorsError(`${dir}: no *.safetensors file and no ${SAFETENSORS_INDEX_FILE}`);
  }
  const tensors = new Map<string, CheckpointTensor>();
  for (const file of files) {
    const h = readSafetensorsHeaderSync(file);
    for (const [name, info] of h.tensors) {
      if (tensors.has(name)) throw new SafetensorsError(`${file}: tensor ${JSON.stringify(name)} is also in ${tensors.get(name)!.file}`);
      tensors.set(name, { ...info, file, dataStart: h.dataStart });
    }
  }
  const listedButAbsent = weightMap
    ? Object.entries(weightMap)
        .filter(([n, f]) => tensors.get(n)?.file !== path.join(dir, f))
        .map(([n]) => n)
    : [];
  return { dir, files, tensors, listedButAbsent };
}

/** Bytes of one tensor. */
export const tensorBytes = (t: SafetensorsTensorInfo): number => t.dataOffsets[1] - t.dataOffsets[0];

/**
 * Rows [first, first + count) of a tensor's leading axis (the whole tensor for a scalar), read
 * straight from its file and decoded (F16/BF16 widened to f32).
 */
export function readTensorRows(
  name: string,
  t: CheckpointTensor,
  first = 0,
  count = t.shape[0] ?? 1,
): { data: SafetensorsData; shape: number[] } {
  const lead = t.shape[0] ?? 1;
  if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first + count > lead) {
    throw new RangeError(`readTensorRows(${name}): rows [${first}, ${first + count}) are outside [0, ${lead})`);
  }
  const rowBytes = t.shape.slice(1).reduce((p, d) => p * d, 1) * SAFETENSORS_DTYPE_SIZE[t.dtype]!;
  const bytes = new Uint8Array(count * rowBytes);
  const fd = fs.openSync(t.file, 'r');
  try {
    let done = 0;
    while (done < bytes.length) {
      const n = fs.readSync(fd, bytes, done, bytes.length - done, t.dataStart + t.dataOffsets[0] + first * rowBytes + done);
      if (n <= 0) throw new SafetensorsError(`${t.file}: tensor ${JSON.stringify(name)} ends before its data_offsets say`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { data: decodeTensor(name, t.dtype, bytes, t.file), shape: t.shape.length === 0 ? [] : [count, ...t.shape.slice(1)] };
}

export interface WriteShardedOptions {
  /** Start a new shard once one holds this many bytes (default 5 GB, as transformers). */
  maxShardBytes?: number;
  metadata?: Record<string, string>;
}

/**
 * Write tensors as one model.safetensors, or, when they exceed maxShardBytes, as
 * model-0000i-of-0000n.safetensors shards plus model.safetensors.index.json. Returns the files written.
 */
export function writeShardedSafetensors(dir: string, tensors: Record<string, SafetensorsTensor>, opts: WriteShardedOptions = {}): string[] {
  const max = opts.maxShardBytes ?? 5e9;
  const shards: Record<string, SafetensorsTensor>[] = [{}];
  let size = 0;
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name]!;
    const b = t.shape.reduce((p, d) => p * d, 1) * SAFETENSORS_DTYPE_SIZE[t.dtype]!;
    if (size > 0 && size + b > max) {
      shards.push({});
      size = 0;
    }
    shards[shards.length - 1]![name] = t;
    size += b;
  }
  fs.mkdirSync(dir, { recursive: true });
  if (shards.length === 1) {
    const f = path.join(dir, 'model.safetensors');
    writeSafetensorsSync(f, shards[0]!, opts.metadata);
    return [f];
  }
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  const written: string[] = [];
  let total = 0;
  shards.forEach((shard, i) => {
    const name = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
    writeSafetensorsSync(path.join(dir, name), shard, opts.metadata);
    written.push(path.join(dir, name));
    for (const [k, t] of Object.entries(shard)) {
      weightMap[k] = name;
      total += t.shape.reduce((p, d) => p * d, 1) * SAFETENSORS_DTYPE_SIZE[t.dtype]!;
    }
  });
  const idx = path.join(dir, SAFETENSORS_INDEX_FILE);
  writeJsonAtomicSync(idx, { metadata: { total_size: total }, weight_map: weightMap });
  return [...written, idx];
}
