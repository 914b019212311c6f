import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import {
  parseSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  readSafetensorsHeaderSync,
  readSafetensorsSync,
  serializeSafetensors,
  writeSafetensors,
  writeSafetensorsSync,
  type SafetensorsTensor,
} from '../src/io/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'moekit-st-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Build a file by hand: u64 LE header length, header text padded to 8, then raw data. */
function buildFile(header: string, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  const json = new TextEncoder().encode(header);
  const n = pad ? Math.ceil(json.length / 8) * 8 : json.length;
  const out = new Uint8Array(8 + n + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.fill(0x20, 8, 8 + n);
  out.set(json, 8);
  out.set(data, 8 + n);
  return out;
}

function header(tensors: Record<string, unknown>): string {
  return JSON.stringify(tensors);
}

// ---------------------------------------------------------------- round trips

test('round trip of every dtype, with metadata, through files (async and sync)', async () => {
  const tensors: Record<string, SafetensorsTensor> = {
    f32: { dtype: 'F32', shape: [2, 3], data: new Float32Array([0, -1.5, 3.25, 1e-40, Infinity, -0]) },
    f64: { dtype: 'F64', shape: [3], data: new Float64Array([Math.PI, -1e300, 5e-324]) },
    f16: { dtype: 'F16', shape: [2, 2], data: new Float32Array([1, -65504, 2 ** -24, 0.333251953125]) },
    bf16: { dtype: 'BF16', shape: [4], data: new Float32Array([1, -3.140625, 2 ** -133, 1.5 * 2 ** 120]) },
    i32: { dtype: 'I32', shape: [4], data: new Int32Array([0, -1, 2147483647, -2147483648]) },
    i64: { dtype: 'I64', shape: [2, 2], data: new Int32Array([0, -1, 2147483647, -2147483648]) },
    scalar: { dtype: 'F32', shape: [], data: new Float32Array([42]) },
    empty: { dtype: 'F16', shape: [0, 5], data: new Float32Array(0) },
  };
  const metadata = { format: 'pt', note: 'héllo "quoted"' };
  const file = path.join(tmp, 'nested', 'all.safetensors');
  await writeSafetensors(file, tensors, metadata);
  const results = [await readSafetensors(file), readSafetensorsSync(file), parseSafetensors(fs.readFileSync(file))];
  for (const loaded of results) {
    assert.deepEqual(loaded.metadata, metadata);
    assert.equal(loaded.tensors.size, Object.keys(tensors).length);
    for (const [name, t] of Object.entries(tensors)) {
      const got = loaded.tensors.get(name)!;
      assert.equal(got.dtype, t.dtype, name);
      assert.deepEqual(got.shape, t.shape, name);
      const expectedType = t.dtype === 'F64' ? Float64Array : t.dtype.startsWith('I') ? Int32Array : Float32Array;
      assert.ok(got.data instanceof expectedType, `${name} is ${got.data.constructor.name}`);
      assert.deepEqual(Array.from(got.data), Array.from(t.data), name);
    }
    assert.ok(Object.is(loaded.tensors.get('f32')!.data[5], -0));
  }

  const syncFile = path.join(tmp, 'sync.safetensors');
  writeSafetensorsSync(syncFile, tensors, metadata);
  assert.deepEqual(fs.readFileSync(syncFile), fs.readFileSync(file));
});

test('narrowing on write: F16/BF16 round to nearest even, overflow to inf, NaN kept', () => {
  const bytes = serializeSafetensors({
    h: { dtype: 'F16', shape: [6], data: new Float32Array([65520, 2 ** -25, 1 + 2 ** -11, NaN, -0, 1 + 3 * 2 ** -11]) },
    b: { dtype: 'BF16', shape: [3], data: new Float64Array([1 + 2 ** -8, NaN, 1e39]) },
    f: { dtype: 'F32', shape: [1], data: new Float64Array([1 + 2 ** -30]) },
  });
  const { tensors } = parseSafetensors(bytes);
  const h = Array.from(tensors.get('h')!.data);
  assert.deepEqual(h.slice(0, 3), [Infinity, 0, 1]);
  assert.ok(Number.isNaN(h[3]));
  assert.ok(Object.is(h[4], -0));
  assert.equal(h[5], 1 + 2 ** -9);
  const b = Array.from(tensors.get('b')!.data);
  assert.equal(b[0], 1);
  assert.ok(Number.isNaN(b[1]));
  assert.equal(b[2], Infinity);
  assert.deepEqual(Array.from(tensors.get('f')!.data), [1]);
});

// ---------------------------------------------------------------- byte-exact layout

test('byte-exact: a hand-built file parses and the serializer reproduces it', () => {
  // Reference layout: tensors ordered by dtype alignment (I64 before F16), metadata first.
  const json =
    '{"__metadata__":{"format":"pt"},' +
    '"b":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},' +
    '"a":{"dtype":"F16","shape":[2],"data_offsets":[16,20]}}';
  const data = new Uint8Array(20);
  const dv = new DataView(data.buffer);
  dv.setBigInt64(0, -5n, true);
  dv.setBigInt64(8, 7n, true);
  dv.setUint16(16, 0x3c00, true); // 1.0
  dv.setUint16(18, 0xc000, true); // -2.0
  const file = buildFile(json, data);
  assert.equal(file.length, 8 + 144 + 20); // 141 JSON bytes padded to 144
  assert.deepEqual(Array.from(file.subarray(8 + 141, 8 + 144)), [32, 32, 32]);

  const { tensors, metadata } = parseSafetensors(file);
  assert.deepEqual(metadata, { format: 'pt' });
  assert.deepEqual(tensors.get('b'), { dtype: 'I64', shape: [2], data: new Int32Array([-5, 7]) });
  assert.deepEqual(tensors.get('a'), { dtype: 'F16', shape: [2], data: new Float32Array([1, -2]) });

  const written = serializeSafetensors(
    { a: { dtype: 'F16', shape: [2], data: new Float32Array([1, -2]) }, b: { dtype: 'I64', shape: [2], data: new Int32Array([-5, 7]) } },
    { format: 'pt' },
  );
  assert.deepEqual(Array.from(written), Array.from(file));
});

test('byte-exact: test vectors from the reference implementation (huggingface/safetensors)', () => {
  const attn = serializeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } });
  assert.deepEqual(
    Array.from(attn),
    [
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44,
      34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34,
      58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ],
  );
  assert.deepEqual(Array.from(serializeSafetensors({})), [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  assert.deepEqual(
    Array.from(serializeSafetensors({}, { framework: 'pt' })),
    [
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119,
      111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
    ],
  );
});

test('layout: descending dtype alignment then name (bytewise), every tensor aligned', () => {
  const t = (dtype: SafetensorsTensor['dtype']): SafetensorsTensor => ({
    dtype,
    shape: [3],
    data: dtype.startsWith('I') ? new Int32Array(3) : new Float32Array(3),
  });
  const bytes = serializeSafetensors({
    z16: t('F16'),
    a16: t('F16'),
    bf: t('BF16'),
    i32: t('I32'),
    f32: t('F32'),
    f64: t('F64'),
    i64: t('I64'),
    '2': t('F32'),
    '10': t('F32'),
  });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  // Read the order from the raw text: JSON.parse would hoist integer-like keys such as "10".
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const order = [...text.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
  assert.deepEqual(order, ['i64', 'f64', '10', '2', 'f32', 'i32', 'bf', 'a16', 'z16']);
  const info = readHeaderFromBytes(bytes);
  for (const [name, { dtype, dataOffsets }] of info) {
    const size = { F16: 2, BF16: 2, I32: 4, F32: 4, F64: 8, I64: 8, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1 }[dtype];
    assert.equal((8 + n + dataOffsets[0]) % size, 0, `${name} aligned`);
  }
});

function readHeaderFromBytes(bytes: Uint8Array) {
  const file = path.join(tmp, `hdr-${Math.random().toString(36).slice(2)}.safetensors`);
  fs.writeFileSync(file, bytes);
  return readSafetensorsHeaderSync(file).tensors;
}

test('readSafetensorsHeader reads only the header and validates against the file size', async () => {
  const file = path.join(tmp, 'header.safetensors');
  await writeSafetensors(
    file,
    {
      w: { dtype: 'F32', shape: [4, 4], data: new Float32Array(16) },
      b: { dtype: 'F16', shape: [4], data: new Float32Array(4) },
    },
    { step: '3' },
  );
  for (const h of [await readSafetensorsHeader(file), readSafetensorsHeaderSync(file)]) {
    assert.deepEqual(h.metadata, { step: '3' });
    assert.equal(h.dataStart, 8 + h.headerLength);
    assert.equal(h.dataLength, 72);
    assert.deepEqual([...h.tensors.keys()], ['w', 'b']);
    assert.deepEqual(h.tensors.get('b'), { dtype: 'F16', shape: [4], dataOffsets: [64, 72] });
  }
  // A truncated file is caught from the header alone.
  const truncated = path.join(tmp, 'truncated.safetensors');
  fs.writeFileSync(truncated, fs.readFileSync(file).subarray(0, fs.statSync(file).size - 4));
  await assert.rejects(
    readSafetensorsHeader(truncated),
    (e: Error) =>
      e.message.includes(truncated) && e.message.includes('"b"') && e.message.includes('data_offsets') && e.message.includes('<= 68'),
  );
});

// ---------------------------------------------------------------- malformed files

/** Assert parsing fails with a message containing every fragment. */
function rejects(bytes: Uint8Array, ...fragments: string[]): void {
  assert.throws(
    () => parseSafetensors(bytes, 'bad.safetensors'),
    (err: Error) => {
      assert.equal(err.name, 'SafetensorsError');
      for (const f of ['bad.safetensors', ...fragments]) assert.ok(err.message.includes(f), `"${err.message}" should mention ${f}`);
      return true;
    },
  );
}

const f32Info = (begin: number, end: number, shape = [(end - begin) / 4]) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

test('malformed: file shorter than 8 bytes', () => {
  rejects(new Uint8Array(5), '5 bytes', 'shorter than the 8-byte');
});

test('malformed: header length 0', () => {
  rejects(new Uint8Array(16), 'header length is 0');
});

test('malformed: header length larger than the file', () => {
  const bytes = buildFile('{}');
  new DataView(bytes.buffer).setBigUint64(0, 100n, true);
  rejects(bytes, 'header length 100', 'file is 16 bytes');
});

test('malformed: header length over the 100 MB limit', () => {
  const bytes = buildFile('{}');
  new DataView(bytes.buffer).setBigUint64(0, 100_000_001n, true);
  rejects(bytes, 'header length 100000001', 'limit of 100000000');
  new DataView(bytes.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
  rejects(bytes, 'header length 18446744073709551615');
});

test('malformed: header is not valid UTF-8', () => {
  const bytes = buildFile('{"x":1}');
  bytes[10] = 0xff;
  rejects(bytes, 'not valid UTF-8');
});

test('malformed: header is not JSON, or not an object', () => {
  rejects(buildFile('{"a":'), 'not valid JSON');
  rejects(buildFile('[1,2]'), 'must be a JSON object', '[1,2]');
  rejects(buildFile('null'), 'must be a JSON object', 'null');
});

test('malformed: tensor entry not an object', () => {
  rejects(buildFile(header({ w: [1, 2] })), 'tensor "w"', 'expected an object', '[1,2]');
});

test('malformed: unknown dtype lists the allowed ones', () => {
  rejects(
    buildFile(header({ w: { dtype: 'BOOL', shape: [4], data_offsets: [0, 4] } }), new Uint8Array(4)),
    'tensor "w"',
    '"dtype"',
    '"BOOL"',
    'F32, F16, BF16, I32, I64, F64, U8, I8',
  );
  rejects(buildFile(header({ w: { shape: [4], data_offsets: [0, 4] } }), new Uint8Array(4)), 'tensor "w"', '"dtype"', 'missing');
});

test('malformed: shape not an array of non-negative integers', () => {
  for (const shape of [[2, -1], [1.5], '4', [null]]) {
    rejects(
      buildFile(header({ w: { dtype: 'F32', shape, data_offsets: [0, 4] } }), new Uint8Array(4)),
      'tensor "w"',
      '"shape"',
      JSON.stringify(shape),
      'non-negative integers',
    );
  }
});

test('malformed: data_offsets not two integers with 0 <= begin <= end <= data length', () => {
  for (const offsets of [[0], [4, 0], [-4, 0], [0, 12], [0, 4.5], '0,4']) {
    rejects(
      buildFile(header({ w: { dtype: 'F32', shape: [1], data_offsets: offsets } }), new Uint8Array(8)),
      'tensor "w"',
      '"data_offsets"',
      JSON.stringify(offsets),
      '<= 8 (the data buffer length)',
    );
  }
});

test('malformed: byte length does not match shape x dtype size', () => {
  rejects(
    buildFile(header({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }), new Uint8Array(8)),
    'tensor "w"',
    'spans 8 bytes',
    'needs 12',
    'dtype F32',
  );
});

test('malformed: overlapping tensors', () => {
  rejects(buildFile(header({ a: f32Info(0, 8), b: f32Info(4, 12) }), new Uint8Array(12)), 'tensor "b"', 'overlap tensor "a"', '[4, 12]');
  rejects(buildFile(header({ a: f32Info(0, 8), b: f32Info(0, 8) }), new Uint8Array(8)), 'overlap');
});

test('malformed: gaps between tensors (the reference requires contiguous coverage)', () => {
  rejects(buildFile(header({ a: f32Info(0, 4), b: f32Info(8, 12) }), new Uint8Array(12)), 'tensor "b"', 'bytes [4, 8)', 'uncovered');
  rejects(buildFile(header({ a: f32Info(4, 8) }), new Uint8Array(8)), 'tensor "a"', 'bytes [0, 4)');
});

test('malformed: trailing bytes not covered by any tensor', () => {
  rejects(buildFile(header({ a: f32Info(0, 4) }), new Uint8Array(8)), 'data buffer is 8 bytes', 'cover only 4', '4 trailing');
  rejects(buildFile('{}', new Uint8Array(1)), '1 trailing');
});

test('malformed: __metadata__ must be an object of strings', () => {
  rejects(buildFile(header({ __metadata__: { step: 3 } })), '__metadata__', '"step"', 'must be a string', 'got 3');
  rejects(buildFile(header({ __metadata__: ['x'] })), '__metadata__', 'must be an object');
  assert.deepEqual(Object.entries(parseSafetensors(buildFile('{"__metadata__":{"__proto__":"x"}}')).metadata), [['__proto__', 'x']]);
  // null is accepted as "no metadata", like the reference reader.
  assert.deepEqual(parseSafetensors(buildFile(header({ __metadata__: null }))).metadata, {});
});

test('malformed: I64 value outside the int32 range names the tensor and value', () => {
  const data = new Uint8Array(16);
  new DataView(data.buffer).setBigInt64(8, 2n ** 31n, true);
  rejects(
    buildFile(header({ idx: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }), data),
    'tensor "idx"',
    'I64 value 2147483648 at index 1',
    'int32 range',
  );
  new DataView(data.buffer).setBigInt64(8, -(2n ** 31n) - 1n, true);
  rejects(buildFile(header({ idx: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }), data), '-2147483649');
});

test('malformed: errors from files name the file', () => {
  const file = path.join(tmp, 'broken.safetensors');
  fs.writeFileSync(file, new Uint8Array(3));
  assert.throws(
    () => readSafetensorsSync(file),
    (e: Error) => e.message.startsWith(`${file}: `),
  );
  assert.throws(
    () => readSafetensorsHeaderSync(file),
    (e: Error) => e.message.includes(file) && e.message.includes('3 bytes'),
  );
});

test('parses from a view at an odd offset into a larger buffer (e.g. a pooled Buffer)', () => {
  const file = serializeSafetensors({ w: { dtype: 'F64', shape: [2], data: new Float64Array([1.25, -7]) } });
  const big = new Uint8Array(file.length + 10);
  big.fill(0xee);
  big.set(file, 3);
  for (const view of [big.subarray(3, 3 + file.length), Buffer.from(big.buffer, 3, file.length)]) {
    assert.deepEqual(Array.from(parseSafetensors(view).tensors.get('w')!.data), [1.25, -7]);
  }
});

test('unpadded headers and any key order are accepted', () => {
  const json = header({ b: f32Info(4, 8), a: f32Info(0, 4) });
  const data = new Uint8Array(new Float32Array([1, 2]).buffer);
  const { tensors } = parseSafetensors(buildFile(json, data, false));
  assert.deepEqual(Array.from(tensors.get('a')!.data), [1]);
  assert.deepEqual(Array.from(tensors.get('b')!.data), [2]);
});

// ---------------------------------------------------------------- writer validation

test('serializer rejects bad input with clear errors and writes nothing', async () => {
  const bad: [Record<string, SafetensorsTensor>, string][] = [
    [{ w: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }, 'shape [2,2] has 4 elements but data has 3'],
    [{ w: { dtype: 'I32', shape: [2], data: new Float32Array([1, 1.5]) } }, 'data[1] is 1.5'],
    [{ w: { dtype: 'I32', shape: [1], data: new Float64Array([2 ** 31]) } }, 'data[0] is 2147483648'],
    [{ w: { dtype: 'BOOL' as 'F32', shape: [1], data: new Float32Array(1) } }, 'dtype "BOOL"'],
    [{ w: { dtype: 'F32', shape: [-1], data: new Float32Array(1) } }, 'shape must be'],
    [{ __metadata__: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }, 'reserved'],
  ];
  for (const [tensors, fragment] of bad) {
    assert.throws(
      () => serializeSafetensors(tensors),
      (e: Error) => e.message.includes(fragment),
      fragment,
    );
  }
  assert.throws(() => serializeSafetensors({}, { n: 3 as unknown as string }), /"n" must be a string/);
  const file = path.join(tmp, 'never.safetensors');
  await assert.rejects(writeSafetensors(file, bad[0]![0]));
  assert.equal(fs.existsSync(file), false);
});

test('I64 written from floats accepts safe integers beyond int32, which then fail to load', () => {
  const bytes = serializeSafetensors({ big: { dtype: 'I64', shape: [2], data: new Float64Array([2 ** 40, -3]) } });
  assert.equal(new DataView(bytes.buffer).getBigInt64(bytes.length - 16, true), 2n ** 40n);
  assert.throws(() => parseSafetensors(bytes), /tensor "big": I64 value 1099511627776 at index 0/);
});

test('U8 and I8 tensors round-trip as raw bytes (MXFP4 blocks and scales)', () => {
  const bytes = serializeSafetensors({
    blocks: { dtype: 'U8', shape: [2, 3], data: new Uint8Array([0, 1, 127, 128, 200, 255]) },
    signed: { dtype: 'I8', shape: [3], data: new Int8Array([-128, 0, 127]) },
  });
  const back = parseSafetensors(bytes).tensors;
  assert.ok(back.get('blocks')!.data instanceof Uint8Array);
  assert.deepEqual([...back.get('blocks')!.data], [0, 1, 127, 128, 200, 255]);
  assert.ok(back.get('signed')!.data instanceof Int8Array);
  assert.deepEqual([...back.get('signed')!.data], [-128, 0, 127]);
  assert.throws(
    () => serializeSafetensors({ b: { dtype: 'U8', shape: [1], data: new Int32Array([256]) } }),
    /dtype U8 needs integers in \[0, 255\], but data\[0\] is 256/,
  );
});

// ---------------------------------------------------------------- strictness (issue 27)

test('strict: shapes and offsets must be integer literals ("2.0", "2e0" rejected like the reference crate)', () => {
  const data = new Uint8Array(24);
  rejects(buildFile('{"w":{"dtype":"F32","shape":[2.0,3.0],"data_offsets":[0,24]}}', data), 'tensor "w"', '"shape"', '[2.0,3.0]');
  rejects(buildFile('{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,2.4e1]}}', data), 'tensor "w"', '"data_offsets"', '2.4e1');
  rejects(buildFile('{"w":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,24]}}', data), 'tensor "w"', '"shape"');
  // the same file with integer literals loads
  assert.deepEqual(
    parseSafetensors(buildFile('{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}', data)).tensors.get('w')!.shape,
    [2, 3],
  );
});

test('strict: duplicate keys are rejected, at any level (JSON.parse would keep the last)', () => {
  const data = new Uint8Array(24);
  rejects(
    buildFile('{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"w":{"dtype":"U8","shape":[24],"data_offsets":[0,24]}}', data),
    'duplicate key "w"',
  );
  rejects(buildFile('{"w":{"dtype":"F32","dtype":"U8","shape":[24],"data_offsets":[0,24]}}', data), 'duplicate key "dtype"', '$["w"]');
  rejects(buildFile('{"__metadata__":{"a":"1","a":"2"}}'), 'duplicate key "a"');
});

test('strict: the header starts with "{"; trailing JSON whitespace is allowed (format spec)', () => {
  for (const lead of [' ', '\n', '\t', '\r']) rejects(buildFile(`${lead}{}`), "must start with '{'");
  rejects(buildFile('\uFEFF{}'), 'not valid JSON', 'unexpected character');
  const trailing = buildFile('{}\r \t\n', new Uint8Array(0), false);
  assert.equal(parseSafetensors(trailing).tensors.size, 0);
});

test('strict: deep nesting is a typed error, fast, without a stack overflow (10^4 and 10^6 levels)', () => {
  for (const depth of [65, 10_000, 1_000_000]) {
    const t0 = performance.now();
    rejects(buildFile(`{"w":${'['.repeat(depth)}${']'.repeat(depth)}}`), 'nesting deeper than 64');
    assert.ok(performance.now() - t0 < 2000, `depth ${depth} took ${performance.now() - t0} ms`);
  }
  // 64 levels are accepted (an unknown field is ignored, as serde ignores it in the reference crate)
  const deep = `{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":${'['.repeat(62)}${']'.repeat(62)}}}`;
  assert.equal(parseSafetensors(buildFile(deep, new Uint8Array(4))).tensors.get('w')!.data.length, 1);
  rejects(buildFile(deep.replace('"x":[', '"x":[[').replace(']}}', ']]}}'), new Uint8Array(4)), 'nesting deeper than 64', '$["w"]["x"]');
});

test('strict: error messages never echo attacker-controlled text unbounded', () => {
  const longName = 'n'.repeat(1_000_000);
  const cases = [
    buildFile(`{"${longName}":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, new Uint8Array(8)),
    buildFile(`{"w":{"dtype":"${'X'.repeat(1_000_000)}","shape":[1],"data_offsets":[0,4]}}`, new Uint8Array(4)),
    buildFile(`{"w":{"dtype":"F32","shape":[${'1,'.repeat(500_000)}2],"data_offsets":[0,4]}}`, new Uint8Array(4)),
    buildFile(`{"${longName}":1,"${longName}":2}`),
    buildFile(`{"w":[${'{"a":1},'.repeat(100_000)}1]}`),
  ];
  for (const bytes of cases) {
    assert.throws(
      () => parseSafetensors(bytes, 'bad.safetensors'),
      (err: Error) => {
        assert.equal(err.name, 'SafetensorsError');
        assert.ok(err.message.length < 600, `message of ${err.message.length} characters: ${err.message.slice(0, 200)}`);
        return true;
      },
    );
  }
});
