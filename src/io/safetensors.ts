// Reader and writer for the Hugging Face safetensors format:
//
//   [8 bytes: N, little-endian u64] [N bytes: UTF-8 JSON header] [data buffer]
//
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]}
// (offsets relative to the start of the data buffer) plus an optional
// "__metadata__" string->string map. Tensor data is row-major little-endian.
//
// Validation follows the reference Rust crate (huggingface/safetensors): the
// header is at most 100_000_000 bytes, and the tensors, ordered by offset, must
// tile the data buffer exactly (no overlaps, no gaps, no trailing bytes). As in
// the crate (serde_json into usize fields), shapes and offsets must be integer
// literals ("2.0" is rejected); as in the format's spec, the header starts with
// '{' and may end in JSON whitespace. Stricter than the crate: duplicate keys are
// rejected (it keeps one silently) and nesting is limited to 64 levels (its JSON
// parser stops at 128). Errors are SafetensorsError, naming the file and the
// field, with attacker-controlled text shortened (see strict-json.ts).

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { writeFileAtomic, writeFileAtomicSync } from './atomic.js';
import { f32ArrayToFp8, fp8ArrayToF32 } from './fp8.js';
import { BF16Array, F16Array, type HalfArray, isHalfArray } from '../backend/types.js';
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16, widenHalfToF32 } from './half.js';
import { StrictJsonError, parseStrictJson, preview } from './strict-json.js';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'F64' | 'U8' | 'I8' | 'F8_E4M3' | 'F8_E5M2';
/** U8 / I8 stay bytes (e.g. GPT-OSS MXFP4 blocks and scales); they are not tensor dtypes. */
/** BF16Array / F16Array: F16 / BF16 tensors read with `{ half: 'keep' }` (their bit patterns, no f32 copy). */
export type SafetensorsData = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array | HalfArray;

export interface ReadSafetensorsOptions {
  /** F16 / BF16 tensors: 'widen' to Float32Array (default) or 'keep' as F16Array / BF16Array. */
  half?: 'widen' | 'keep';
}

/** A loaded tensor. F16/BF16/F8 are widened to Float32Array, I64 narrowed to Int32Array. */
export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  data: SafetensorsData;
}

/** A tensor to write; `data` is converted to `dtype` on the way out. */
export type SafetensorsTensor = SafetensorsEntry;

export interface SafetensorsTensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  /** [begin, end) byte range relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** N, the JSON header's byte length (including padding). */
  headerLength: number;
  /** Absolute file offset of the data buffer (8 + N). */
  dataStart: number;
  dataLength: number;
  /** Tensor infos in data-buffer order. */
  tensors: Map<string, SafetensorsTensorInfo>;
  metadata: Record<string, string>;
}

export interface SafetensorsContents {
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export const SAFETENSORS_DTYPES: readonly SafetensorsDType[] = [
  'F32',
  'F16',
  'BF16',
  'I32',
  'I64',
  'F64',
  'U8',
  'I8',
  'F8_E4M3',
  'F8_E5M2',
];
export const SAFETENSORS_MAX_HEADER_LENGTH = 100_000_000;
/** Deepest JSON nesting accepted in a header (a valid one needs 3: header, tensor, shape). */
export const SAFETENSORS_MAX_HEADER_DEPTH = 64;

/** Bytes per element of each dtype. */
export const SAFETENSORS_DTYPE_SIZE: Readonly<Record<SafetensorsDType, number>> = {
  F16: 2,
  BF16: 2,
  I32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};
const DTYPE_SIZE = SAFETENSORS_DTYPE_SIZE;
// Position in the Rust crate's Dtype enum (increasing alignment). The reference
// writer orders tensors by this, descending, then by name, so data stays aligned.
const DTYPE_RANK: Record<SafetensorsDType, number> = {
  U8: 0,
  I8: 1,
  F8_E5M2: 1.3,
  F8_E4M3: 1.6,
  F16: 2,
  BF16: 3,
  I32: 4,
  F32: 5,
  F64: 6,
  I64: 7,
};
const METADATA_KEY = '__metadata__';
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(source: string | undefined, message: string): never {
  throw new SafetensorsError(`${source ?? 'safetensors data'}: ${message}`);
}

const show = (value: unknown): string => preview(value);
const tensorName = (name: string): string => `tensor ${preview(name, 80)}`;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.hasOwn(DTYPE_SIZE, value);
}

function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/** Product of dims, or undefined if it is not a safe integer. */
function numel(shape: number[]): number | undefined {
  let n = 1;
  for (const d of shape) n *= d;
  return Number.isSafeInteger(n) ? n : undefined;
}

// Reverse each element's bytes in place; only needed on big-endian hosts.
function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

// ------------------------------------------------------------------ header

/** Validate the 8-byte prefix and return N, the header length. */
function readHeaderLength(prefix: Uint8Array, fileLength: number, source?: string): number {
  if (fileLength < 8) {
    fail(source, `file is ${fileLength} bytes, shorter than the 8-byte header length prefix`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n === 0n) fail(source, `header length is 0; the header must hold at least "{}"`);
  if (n > BigInt(SAFETENSORS_MAX_HEADER_LENGTH)) {
    fail(source, `header length ${n} exceeds the limit of ${SAFETENSORS_MAX_HEADER_LENGTH} bytes`);
  }
  if (n + 8n > BigInt(fileLength)) {
    fail(source, `header length ${n} is larger than the ${fileLength - 8} bytes that follow the prefix (file is ${fileLength} bytes)`);
  }
  return Number(n);
}

function parseTensorInfo(name: string, raw: unknown, dataLength: number, source?: string): SafetensorsTensorInfo {
  const where = tensorName(name);
  if (!isPlainObject(raw)) {
    fail(source, `${where}: expected an object with dtype, shape and data_offsets, got ${show(raw)}`);
  }
  const { dtype, shape, data_offsets: offsets } = raw;
  if (!isDType(dtype)) {
    fail(source, `${where}: field "dtype" is ${show(dtype)}; allowed: ${SAFETENSORS_DTYPES.join(', ')}`);
  }
  if (!isShape(shape)) {
    fail(source, `${where}: field "shape" must be an array of non-negative integers, got ${show(shape)}`);
  }
  const count = numel(shape);
  if (count === undefined) fail(source, `${where}: field "shape" ${show(shape)} has too many elements`);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o)) ||
    !(0 <= offsets[0] && offsets[0] <= offsets[1] && offsets[1] <= dataLength)
  ) {
    fail(
      source,
      `${where}: field "data_offsets" is ${show(offsets)}; must be [begin, end] integers with ` +
        `0 <= begin <= end <= ${dataLength} (the data buffer length)`,
    );
  }
  const [begin, end] = offsets as [number, number];
  const expected = count * DTYPE_SIZE[dtype];
  if (end - begin !== expected) {
    fail(
      source,
      `${where}: field "data_offsets" [${begin}, ${end}] spans ${end - begin} bytes, but shape ` +
        `${show(shape)} with dtype ${dtype} needs ${expected} (${count} elements x ${DTYPE_SIZE[dtype]} bytes)`,
    );
  }
  return { dtype, shape: [...shape], dataOffsets: [begin, end] };
}

/** Parse and fully validate the JSON header against a data buffer of `dataLength` bytes. */
function parseHeader(headerBytes: Uint8Array, dataLength: number, source?: string): Omit<SafetensorsHeader, 'dataStart' | 'headerLength'> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    fail(source, 'header is not valid UTF-8');
  }
  if (/^[ \t\n\r]/.test(text))
    fail(source, `header must start with '{' (the format allows whitespace only after the JSON), got ${preview(text.slice(0, 8))}`);
  let json: unknown;
  try {
    json = parseStrictJson(text, { maxDepth: SAFETENSORS_MAX_HEADER_DEPTH, numbers: 'natural-or-literal' });
  } catch (err) {
    if (!(err instanceof StrictJsonError)) throw err;
    fail(source, `header is not valid JSON (${err.message})`);
  }
  if (!isPlainObject(json)) fail(source, `header must be a JSON object, got ${show(json)}`);

  const metadata: Record<string, string> = {};
  const infos: [string, SafetensorsTensorInfo][] = [];
  for (const [key, value] of Object.entries(json)) {
    if (key !== METADATA_KEY) {
      infos.push([key, parseTensorInfo(key, value, dataLength, source)]);
      continue;
    }
    if (value === null) continue; // the reference reader treats null as absent
    if (!isPlainObject(value)) fail(source, `"${METADATA_KEY}" must be an object of strings, got ${show(value)}`);
    for (const [mk, mv] of Object.entries(value)) {
      if (typeof mv !== 'string') fail(source, `"${METADATA_KEY}" value for key ${preview(mk)} must be a string, got ${show(mv)}`);
      // defineProperty, not assignment: a "__proto__" key must stay a plain entry.
      Object.defineProperty(metadata, mk, { value: mv, enumerable: true, writable: true, configurable: true });
    }
  }

  // Tensors ordered by offset must tile [0, dataLength) exactly.
  infos.sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let covered = 0;
  let previous: [string, SafetensorsTensorInfo] | undefined;
  for (const [name, info] of infos) {
    const [begin, end] = info.dataOffsets;
    if (begin < covered && previous) {
      fail(
        source,
        `${tensorName(name)}: data_offsets [${begin}, ${end}] overlap ` +
          `${tensorName(previous[0])} at [${previous[1].dataOffsets[0]}, ${previous[1].dataOffsets[1]}]`,
      );
    }
    if (begin > covered) {
      fail(
        source,
        `${tensorName(name)}: data_offsets [${begin}, ${end}] leave bytes [${covered}, ${begin}) ` +
          `of the data buffer uncovered; tensors must be contiguous from offset 0`,
      );
    }
    covered = end;
    previous = [name, info];
  }
  if (covered !== dataLength) {
    fail(
      source,
      `data buffer is ${dataLength} bytes but tensors cover only ${covered} ` +
        `(${dataLength - covered} trailing bytes not covered by any tensor)`,
    );
  }
  return { dataLength, tensors: new Map(infos), metadata };
}

// ------------------------------------------------------------------ decoding

function readLE<T>(bytes: Uint8Array, ctor: { new (buffer: ArrayBuffer): T; BYTES_PER_ELEMENT: number }): T {
  const copy = new Uint8Array(bytes); // a copy with its own, aligned buffer (Buffer#slice would not copy)
  if (!LITTLE_ENDIAN_HOST) swapBytes(copy, ctor.BYTES_PER_ELEMENT);
  return new ctor(copy.buffer);
}

/** Decode one tensor's little-endian bytes (F16/BF16 widen to f32 unless kept, I64 narrows to i32). */
export function decodeTensor(
  name: string,
  dtype: SafetensorsDType,
  bytes: Uint8Array,
  source?: string,
  options: ReadSafetensorsOptions = {},
): SafetensorsData {
  const keep = options.half === 'keep';
  switch (dtype) {
    case 'F32':
      return readLE(bytes, Float32Array);
    case 'F64':
      return readLE(bytes, Float64Array);
    case 'I32':
      return readLE(bytes, Int32Array);
    case 'U8':
      return new Uint8Array(bytes);
    case 'I8':
      return new Int8Array(new Uint8Array(bytes).buffer);
    case 'F8_E4M3':
    case 'F8_E5M2':
      return fp8ArrayToF32(bytes, dtype);
    case 'F16':
      return keep ? readLE(bytes, F16Array) : f16ArrayToF32(readLE(bytes, Uint16Array));
    case 'BF16':
      return keep ? readLE(bytes, BF16Array) : bf16ArrayToF32(readLE(bytes, Uint16Array));
    case 'I64': {
      // Read each i64 as (lo, hi) int32 words: it fits in int32 iff hi is lo's sign extension.
      const words = readLE(bytes, BigInt64Array);
      const halves = new Int32Array(words.buffer);
      const out = new Int32Array(words.length);
      for (let i = 0; i < out.length; i++) {
        const lo = halves[2 * i]!;
        if (halves[2 * i + 1] !== lo >> 31) {
          fail(
            source,
            `${tensorName(name)}: I64 value ${words[i]} at index ${i} is outside the ` +
              `int32 range [-2147483648, 2147483647] and cannot be loaded into an Int32Array`,
          );
        }
        out[i] = lo;
      }
      return out;
    }
  }
}

/** Parse a complete safetensors file held in memory. `source` names it in errors. */
export function parseSafetensors(input: Uint8Array, source?: string, options: ReadSafetensorsOptions = {}): SafetensorsContents {
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength); // plain view, not Buffer
  const n = readHeaderLength(bytes, bytes.length, source);
  const dataStart = 8 + n;
  const header = parseHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, source);
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, info] of header.tensors) {
    const [begin, end] = info.dataOffsets;
    const data = decodeTensor(name, info.dtype, bytes.subarray(dataStart + begin, dataStart + end), source, options);
    tensors.set(name, { dtype: info.dtype, shape: info.shape, data });
  }
  return { tensors, metadata: header.metadata };
}

export async function readSafetensors(path: string, options: ReadSafetensorsOptions = {}): Promise<SafetensorsContents> {
  return parseSafetensors(await fsp.readFile(path), path, options);
}

export function readSafetensorsSync(path: string, options: ReadSafetensorsOptions = {}): SafetensorsContents {
  return parseSafetensors(fs.readFileSync(path), path, options);
}

/** Read and validate only the header of a (possibly huge) file, without loading the data. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const handle = await fsp.open(path, 'r');
  try {
    const { size } = await handle.stat();
    const prefix = new Uint8Array(8);
    await handle.read(prefix, 0, Math.min(8, size), 0);
    const n = readHeaderLength(prefix, size, path);
    const headerBytes = new Uint8Array(n);
    await handle.read(headerBytes, 0, n, 8);
    return { headerLength: n, dataStart: 8 + n, ...parseHeader(headerBytes, size - 8 - n, path) };
  } finally {
    await handle.close();
  }
}

export function readSafetensorsHeaderSync(path: string): SafetensorsHeader {
  const fd = fs.openSync(path, 'r');
  try {
    const { size } = fs.fstatSync(fd);
    const prefix = new Uint8Array(8);
    fs.readSync(fd, prefix, 0, Math.min(8, size), 0);
    const n = readHeaderLength(prefix, size, path);
    const headerBytes = new Uint8Array(n);
    fs.readSync(fd, headerBytes, 0, n, 8);
    return { headerLength: n, dataStart: 8 + n, ...parseHeader(headerBytes, size - 8 - n, path) };
  } finally {
    fs.closeSync(fd);
  }
}

// ------------------------------------------------------------------ encoding

function leBytes(view: Float32Array | Float64Array | Int32Array | Uint16Array | Uint8Array | Int8Array): Uint8Array {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
  if (!LITTLE_ENDIAN_HOST) swapBytes(bytes, view.BYTES_PER_ELEMENT);
  return bytes;
}

function integerData(name: string, data: SafetensorsData, dtype: SafetensorsDType, min: number, max: number): SafetensorsData {
  if (data instanceof Int32Array && min <= -(2 ** 31) && max >= 2 ** 31 - 1) return data; // every int32 fits
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new SafetensorsError(`${tensorName(name)}: dtype ${dtype} needs integers in [${min}, ${max}], ` + `but data[${i}] is ${v}`);
    }
  }
  return data;
}

function encodeTensor(name: string, { dtype, data: given }: SafetensorsTensor): Uint8Array {
  // bf16 / f16 bit patterns written as they are to their own dtype, else as their values
  if ((given instanceof BF16Array && dtype === 'BF16') || (given instanceof F16Array && dtype === 'F16')) return leBytes(given);
  const data = isHalfArray(given) ? widenHalfToF32(given, given instanceof BF16Array ? 'bf16' : 'f16') : given;
  switch (dtype) {
    case 'F32':
      return leBytes(data instanceof Float32Array ? data : Float32Array.from(data));
    case 'F64':
      return leBytes(data instanceof Float64Array ? data : Float64Array.from(data));
    case 'F16':
      return leBytes(f32ArrayToF16(data));
    case 'BF16':
      return leBytes(f32ArrayToBf16(data));
    case 'I32':
      return leBytes(Int32Array.from(integerData(name, data, dtype, -(2 ** 31), 2 ** 31 - 1)));
    case 'U8':
      return Uint8Array.from(integerData(name, data, dtype, 0, 255));
    case 'I8':
      return leBytes(Int8Array.from(integerData(name, data, dtype, -128, 127)));
    case 'F8_E4M3':
    case 'F8_E5M2':
      return f32ArrayToFp8(data, dtype);
    case 'I64': {
      const values = integerData(name, data, dtype, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      const words = new BigInt64Array(values.length);
      for (let i = 0; i < values.length; i++) words[i] = BigInt(values[i]!);
      const bytes = new Uint8Array(words.buffer);
      if (!LITTLE_ENDIAN_HOST) swapBytes(bytes, 8);
      return bytes;
    }
  }
}

function checkTensor(name: string, tensor: SafetensorsTensor): void {
  const where = tensorName(name);
  if (name === METADATA_KEY) throw new SafetensorsError(`${where}: the name is reserved for metadata`);
  if (!isDType(tensor.dtype)) {
    throw new SafetensorsError(`${where}: dtype ${show(tensor.dtype)} is not one of ${SAFETENSORS_DTYPES.join(', ')}`);
  }
  if (!isShape(tensor.shape)) {
    throw new SafetensorsError(`${where}: shape must be an array of non-negative integers, got ${show(tensor.shape)}`);
  }
  const count = numel(tensor.shape);
  if (count !== tensor.data.length) {
    throw new SafetensorsError(`${where}: shape ${show(tensor.shape)} has ${count} elements but data has ${tensor.data.length}`);
  }
}

/**
 * JSON object text from [key, value-as-JSON-text] pairs, keeping their order
 * (a JS object would move integer-like keys such as "0" to the front).
 */
function orderedObject(entries: [string, string][]): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

/**
 * Serialize tensors to safetensors bytes, laid out like the reference writer:
 * ordered by dtype alignment (descending) then name, header padded with spaces
 * to a multiple of 8 bytes.
 */
export function serializeSafetensors(tensors: Record<string, SafetensorsTensor>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors);
  for (const name of names) checkTensor(name, tensors[name]!);
  names.sort((a, b) => DTYPE_RANK[tensors[b]!.dtype] - DTYPE_RANK[tensors[a]!.dtype] || compareUtf8(a, b));

  const headerEntries: [string, string][] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    for (const k of keys) {
      if (typeof metadata[k] !== 'string') {
        throw new SafetensorsError(`metadata value for key ${preview(k)} must be a string, got ${show(metadata[k])}`);
      }
    }
    headerEntries.push([METADATA_KEY, orderedObject(keys.map((k) => [k, JSON.stringify(metadata[k])]))]);
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const tensor = tensors[name]!;
    const bytes = encodeTensor(name, tensor);
    // Key order matches the reference writer: dtype, shape, data_offsets.
    const info = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes.length] };
    headerEntries.push([name, JSON.stringify(info)]);
    chunks.push(bytes);
    offset += bytes.length;
  }

  const json = Buffer.from(orderedObject(headerEntries), 'utf8');
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength); // space padding keeps the data 8-byte aligned
  let at = 8 + headerLength;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

export async function writeSafetensors(
  path: string,
  tensors: Record<string, SafetensorsTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

export function writeSafetensorsSync(path: string, tensors: Record<string, SafetensorsTensor>, metadata?: Record<string, string>): void {
  writeFileAtomicSync(path, serializeSafetensors(tensors, metadata));
}
