// Random safetensors files and mutations of them, for the property tests (a few thousand
// cases) and scripts/fuzz-readers.ts (tens of thousands). Each mutation says what the reader
// must do: 'reject' (the spec forbids the result), 'accept' (still valid) or 'either' (random
// bytes; then an accepted file must pass `independentlyValid`, a check that shares no code
// with the reader: JSON.parse for the grammar, a regex tokenizer for duplicate keys and
// number literals, and a re-serialisation round trip).
import fc from 'fast-check';
import {
  SafetensorsError,
  parseSafetensors,
  serializeSafetensors,
  type SafetensorsContents,
  type SafetensorsTensor,
} from '../../src/io/safetensors.js';

export type Expectation = 'reject' | 'accept' | 'either';
export interface MutatedFile {
  op: string;
  bytes: Uint8Array;
  expect: Expectation;
}

const DTYPES = ['F32', 'F16', 'BF16', 'I32', 'I64', 'F64', 'U8', 'I8'] as const;

const arbTensor: fc.Arbitrary<SafetensorsTensor> = fc
  .record({ dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }) })
  .chain(({ dtype, shape }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const value =
      dtype === 'U8'
        ? fc.integer({ min: 0, max: 255 })
        : dtype === 'I8'
          ? fc.integer({ min: -128, max: 127 })
          : dtype === 'I32' || dtype === 'I64'
            ? fc.integer()
            : fc.float({ noNaN: true });
    return fc.array(value, { minLength: n, maxLength: n }).map((values) => {
      const data =
        dtype === 'I32' || dtype === 'I64'
          ? Int32Array.from(values)
          : dtype === 'U8'
            ? Uint8Array.from(values)
            : dtype === 'I8'
              ? Int8Array.from(values)
              : dtype === 'F64'
                ? Float64Array.from(values)
                : Float32Array.from(values);
      return { dtype, shape, data } as SafetensorsTensor;
    });
  });

const arbName = fc
  .oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constantFrom('a', 'w.0.weight', '__proto__', 'constructor', '0', 'é✓'))
  .filter((s) => s !== '__metadata__');

export const arbContents = fc.record({
  tensors: fc.dictionary(arbName, arbTensor, { maxKeys: 5 }),
  metadata: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }), { nil: undefined }),
});

/** Rebuild a file from header text and data bytes (the prefix is the text's UTF-8 length). */
export function rebuild(header: string, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

export function split(file: Uint8Array): { header: string; data: Uint8Array } {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  return { header: new TextDecoder().decode(file.subarray(8, 8 + n)), data: file.subarray(8 + n) };
}

/** Apply `edit` to the header text; null when it does not apply to this file (then the file is kept, expect accept). */
function headerOp(op: string, expect: Expectation, edit: (h: string) => string | null) {
  return (file: Uint8Array): MutatedFile => {
    const { header, data } = split(file);
    const h = edit(header.trimEnd());
    return h === null ? { op: `${op} (n/a)`, bytes: file, expect: 'accept' } : { op, bytes: rebuild(h, data), expect };
  };
}

const firstEntry = /^\{("(?:[^"\\]|\\.)*"):(\{[^{}]*\})/;

/** Structured mutations: the spec says whether the result is valid. */
const structured: fc.Arbitrary<(f: Uint8Array) => MutatedFile>[] = [
  fc.constant(
    headerOp('shape as a float literal', 'reject', (h) =>
      /"shape":\[(\d+)/.test(h) ? h.replace(/"shape":\[(\d+)/, '"shape":[$1.0') : null,
    ),
  ),
  fc.constant(
    headerOp('offset in exponent form', 'reject', (h) =>
      /"data_offsets":\[(\d+)/.test(h) ? h.replace(/"data_offsets":\[(\d+)/, (_, d) => `"data_offsets":[${d}e0`) : null,
    ),
  ),
  fc.constant(
    headerOp('duplicate tensor key', 'reject', (h) => {
      const m = firstEntry.exec(h);
      return m ? `${h.slice(0, -1)},${m[1]}:${m[2]}}` : null;
    }),
  ),
  fc.constant(
    headerOp('duplicate field', 'reject', (h) => (h.includes('"dtype":') ? h.replace('"dtype":', '"dtype":"U8","dtype":') : null)),
  ),
  fc.constantFrom(' ', '\n', '\t', '\r').map((ws) => headerOp('leading whitespace', 'reject', (h) => ws + h)),
  fc
    .integer({ min: 65, max: 200_000 })
    .map((d) => headerOp(`nesting ${d}`, 'reject', (h) => `{"__x":${'['.repeat(d)}${']'.repeat(d)}${h === '{}' ? '}' : `,${h.slice(1)}`}`)),
  fc.constant(
    headerOp('unknown dtype', 'reject', (h) => (h.includes('"dtype":"') ? h.replace(/"dtype":"[A-Z0-9]+"/, '"dtype":"BOOL"') : null)),
  ),
  fc.constant(headerOp('metadata value not a string', 'reject', () => '{"__metadata__":{"k":1}}')),
  fc
    .integer({ min: 1, max: 64 })
    .map((k) =>
      headerOp('end offset shifted', 'reject', (h) =>
        /"data_offsets":\[(\d+),(\d+)\]/.test(h)
          ? h.replace(/"data_offsets":\[(\d+),(\d+)\]/, (_, a, b) => `"data_offsets":[${a},${Number(b) + k}]`)
          : null,
      ),
    ),
  fc.constant(headerOp('header is an array', 'reject', (h) => `[${h}]`)),
  fc
    .string({ minLength: 1, maxLength: 2000 })
    .map((junk) =>
      headerOp('long junk key', 'reject', (h) => `{${JSON.stringify(junk.repeat(50))}:1${h === '{}' ? '}' : `,${h.slice(1)}`}`),
    ),
  // still valid: trailing JSON whitespace, an unknown field (the reference crate ignores it)
  fc.constantFrom(' ', '\n', '\r\n\t ').map((ws) => headerOp('trailing whitespace', 'accept', (h) => h + ws)),
  fc.constant(
    headerOp('unknown field in a tensor', 'accept', (h) =>
      h.includes('"dtype":') ? h.replace('"dtype":', '"x":[[1.5,{"y":null}]],"dtype":') : null,
    ),
  ),
  // bounded length prefix
  fc.bigInt({ min: 100_000_001n, max: (1n << 64n) - 1n }).map((n) => (file: Uint8Array): MutatedFile => {
    const out = file.slice();
    new DataView(out.buffer).setBigUint64(0, n, true);
    return { op: 'header length over 100 MB', bytes: out, expect: 'reject' };
  }),
];

/** Random byte-level damage: validity unknown. */
const bytewise: fc.Arbitrary<(f: Uint8Array) => MutatedFile>[] = [
  fc
    .array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 16 })
    .map((flips) => (f: Uint8Array): MutatedFile => {
      const out = f.slice();
      for (const [at, x] of flips) out[at % out.length] ^= x;
      return { op: 'xor bytes', bytes: out, expect: 'either' };
    }),
  fc.nat().map(
    (n) =>
      (f: Uint8Array): MutatedFile => ({ op: 'truncate', bytes: f.slice(0, n % (f.length + 1)), expect: 'either' }),
  ),
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 32 })).map(([at, ins]) => (f: Uint8Array): MutatedFile => {
    const i = at % (f.length + 1);
    const out = new Uint8Array(f.length + ins.length);
    out.set(f.subarray(0, i));
    out.set(ins, i);
    out.set(f.subarray(i), i + ins.length);
    return { op: 'insert bytes', bytes: out, expect: 'either' };
  }),
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 600 })).map(([at, text]) => (f: Uint8Array): MutatedFile => {
    // a byte of the header text replaced by a JSON-significant character, the prefix kept in step
    const { header, data } = split(f);
    if (header.length === 0) return { op: 'header char', bytes: f, expect: 'either' };
    const i = at % header.length;
    const c = '{}[]:,"\\0123456789.eE-+ tfn\u00e9\u{1F600}'[text % 30]!;
    return { op: 'header char', bytes: rebuild(header.slice(0, i) + c + header.slice(i + 1), data), expect: 'either' };
  }),
];

export const arbMutatedFile: fc.Arbitrary<MutatedFile> = fc
  .tuple(arbContents, fc.oneof(fc.oneof(...structured), fc.oneof(...bytewise)))
  .map(([c, mutate]) => mutate(serializeSafetensors(c.tensors, c.metadata)));

// strings may not hold raw control characters (U+0000-U+001F), as in JSON
const TOKEN = new RegExp(
  String.raw`\s+|"(?:[^"\\${String.fromCharCode(0)}-${String.fromCharCode(0x1f)}]|\\.)*"|[{}[\]:,]|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null`,
  'y',
);

/** Independent of the reader: grammar by JSON.parse, keys and numbers by a regex tokenizer, then a round trip. */
export function independentlyValid(bytes: Uint8Array, parsed: SafetensorsContents): string | null {
  const { header } = split(bytes);
  if (!header.startsWith('{')) return 'header does not start with {';
  try {
    JSON.parse(header);
  } catch {
    return 'JSON.parse rejects the header';
  }
  const stack: { keys: Set<string>; expectKey: boolean; field?: string }[] = [];
  let lastKey = '';
  for (let i = 0; i < header.length; ) {
    TOKEN.lastIndex = i;
    const m = TOKEN.exec(header);
    if (!m) return `untokenizable at ${i}`;
    const t = m[0];
    i += t.length;
    const top = stack[stack.length - 1];
    if (t === '{') stack.push({ keys: new Set(), expectKey: true });
    else if (t === '[') stack.push({ keys: new Set(), expectKey: false, field: lastKey });
    else if (t === '}' || t === ']') stack.pop();
    else if (t === ',' && top && top.field === undefined) top.expectKey = true;
    else if (t.startsWith('"') && top?.expectKey) {
      const key = JSON.parse(t) as string;
      if (top.keys.has(key)) return `duplicate key ${key}`;
      top.keys.add(key);
      top.expectKey = false;
      lastKey = key;
    } else if (/^-?\d/.test(t) && (top?.field === 'shape' || top?.field === 'data_offsets') && !/^\d+$/.test(t))
      return `number ${t} in ${top.field}`;
    if (stack.length > 64) return 'nesting over 64';
  }
  const names = [...parsed.tensors.keys()];
  const again = parseSafetensors(serializeSafetensors(Object.fromEntries(parsed.tensors), parsed.metadata));
  for (const n of names) {
    const a = parsed.tensors.get(n)!;
    const b = again.tensors.get(n);
    if (!b || a.dtype !== b.dtype || a.shape.join() !== b.shape.join() || a.data.length !== b.data.length)
      return `tensor ${n} changes in a round trip`;
  }
  return null;
}

/** Longest error message the reader may produce, whatever the file holds. */
export const MAX_MESSAGE = 1000;

export type Outcome =
  | { kind: 'accepted' }
  | { kind: 'typed-error' }
  | { kind: 'untyped-error'; error: unknown }
  | { kind: 'unbounded-message'; length: number }
  | { kind: 'silent-acceptance'; why: string }
  | { kind: 'false-rejection'; error: unknown };

/** What the reader did with one mutated file, judged against its expectation. */
export function judge(m: MutatedFile): Outcome {
  let parsed: SafetensorsContents;
  try {
    parsed = parseSafetensors(m.bytes, 'fuzz.safetensors');
  } catch (error) {
    if (!(error instanceof SafetensorsError)) return { kind: 'untyped-error', error };
    if (error.message.length > MAX_MESSAGE) return { kind: 'unbounded-message', length: error.message.length };
    return m.expect === 'accept' ? { kind: 'false-rejection', error } : { kind: 'typed-error' };
  }
  if (m.expect === 'reject') return { kind: 'silent-acceptance', why: m.op };
  const why = independentlyValid(m.bytes, parsed);
  return why ? { kind: 'silent-acceptance', why: `${m.op}: ${why}` } : { kind: 'accepted' };
}
