// A routing recording on disk: <path>.safetensors holds each record's ids, weights, counts and
// bias as tensors r<i>.ids, r<i>.weights, r<i>.counts, r<i>.bias; <path>.json is the index (the
// scalars of each record, its counts as plain numbers for readers without safetensors, such as
// the dashboard page, and the tensors' names). The index names the tensor file and is written
// last, so a crash between the two leaves no index pointing at a half-written file.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeJsonAtomicSync } from '../../io/atomic.js';
import { type SafetensorsTensor, readSafetensorsSync, writeSafetensorsSync } from '../../io/safetensors.js';
import { RECORDING_FORMAT, type RoutingRecord, type RoutingRecordingIndex } from './record.js';

/** <path>.json for a path given with or without it. */
const stem = (path: string) => path.replace(/\.(json|safetensors)$/, '');

export function writeRoutingRecording(path: string, records: readonly RoutingRecord[]): string {
  const s = stem(path);
  const tensors: Record<string, SafetensorsTensor> = {};
  const index: RoutingRecordingIndex = { format: RECORDING_FORMAT, version: 1, tensors: `${basename(s)}.safetensors`, records: [] };
  records.forEach((r, i) => {
    const { ids, weights, counts, bias, ...scalars } = r;
    const shape = [r.tokensKept, r.topK];
    tensors[`r${i}.ids`] = { dtype: 'I32', shape, data: ids };
    tensors[`r${i}.weights`] = { dtype: weights instanceof Float64Array ? 'F64' : 'F32', shape, data: weights };
    tensors[`r${i}.counts`] = { dtype: 'I32', shape: [r.numExperts], data: counts };
    if (bias) tensors[`r${i}.bias`] = { dtype: 'F32', shape: [r.numExperts], data: bias };
    index.records.push({ ...scalars, counts: Array.from(counts), hasBias: bias !== null });
  });
  writeSafetensorsSync(`${s}.safetensors`, tensors, { format: RECORDING_FORMAT });
  writeJsonAtomicSync(`${s}.json`, index);
  return `${s}.json`;
}

/** Read a recording (the index's path, with or without .json). */
export function readRoutingRecording(path: string): RoutingRecord[] {
  const file = `${stem(path)}.json`;
  if (!existsSync(file)) throw new RangeError(`routing recording: ${file} does not exist`);
  const index = JSON.parse(readFileSync(file, 'utf8')) as RoutingRecordingIndex;
  if (index.format !== RECORDING_FORMAT || index.version !== 1) {
    throw new RangeError(
      `routing recording: ${file} is not a ${RECORDING_FORMAT} version 1 index (format '${String(index.format)}', version ${String(index.version)})`,
    );
  }
  const t = readSafetensorsSync(join(dirname(file), index.tensors)).tensors;
  const get = (name: string) => {
    const e = t.get(name);
    if (!e) throw new RangeError(`routing recording: ${index.tensors} lacks tensor '${name}' named by ${file}`);
    return e.data;
  };
  return index.records.map(({ counts: _counts, hasBias, ...scalars }, i) => ({
    ...scalars,
    ids: get(`r${i}.ids`) as Int32Array,
    weights: get(`r${i}.weights`) as Float32Array | Float64Array,
    counts: get(`r${i}.counts`) as Int32Array,
    bias: hasBias ? (get(`r${i}.bias`) as Float32Array) : null,
  }));
}
