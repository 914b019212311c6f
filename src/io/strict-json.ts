// A strict JSON parser for untrusted headers (safetensors): RFC 8259 grammar, plus
//   - duplicate object keys rejected (JSON.parse keeps the last one silently),
//   - a nesting limit (JSON.parse recurses until the stack overflows),
//   - optionally, numbers other than non-negative integer literals kept as their text
//     (a NumberLiteral), so that a schema asking for integers can reject "2.0" or "2e0",
// each error naming the JSON path of the offending value, with long keys shortened.
// One pass over the text, iterative, so time and memory are linear in its length.

export class StrictJsonError extends Error {
  override name = 'StrictJsonError';
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly position: number,
  ) {
    super(`${reason} at ${path} (character ${position})`);
  }
}

export interface StrictJsonOptions {
  /** Deepest allowed nesting of objects and arrays (the top-level value is depth 1). */
  maxDepth: number;
  /**
   * 'number': every number becomes a JS number. 'natural-or-literal': a non-negative integer
   * literal that is a safe integer becomes a number, any other number a NumberLiteral.
   */
  numbers: 'number' | 'natural-or-literal';
}

/** A number that is not a plain non-negative safe integer, as written (e.g. "2.0", "-1", "1e3"). */
export class NumberLiteral {
  constructor(readonly text: string) {}
}

/** A value for an error message: at most `max` characters of it, JSON-quoted if a string. */
export function preview(value: unknown, max = 60): string {
  if (value instanceof NumberLiteral) return value.text.length > max ? `${value.text.slice(0, max)}…` : value.text;
  if (typeof value === 'string') {
    const cut = value.length > max ? `${value.slice(0, max)}…` : value;
    return `${JSON.stringify(cut)}${value.length > max ? ` (${value.length} characters)` : ''}`;
  }
  if (value === undefined) return 'undefined (missing)';
  if (Array.isArray(value)) {
    const simple =
      value.length <= 8 && value.every((v) => typeof v === 'number' || typeof v === 'boolean' || v === null || v instanceof NumberLiteral);
    return simple ? `[${value.map((v) => preview(v, 24)).join(',')}]` : `an array of ${value.length} items`;
  }
  if (typeof value === 'object' && value !== null) return `an object with ${Object.keys(value).length} keys`;
  return String(value);
}

const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const NATURAL_RE = /^(?:0|[1-9]\d*)$/;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

type Frame =
  | { kind: 'object'; value: Record<string, unknown>; key: string | null; keys: Set<string> }
  | { kind: 'array'; value: unknown[] };

/** Parse `text` as one JSON value under the given limits; objects have no prototype. */
export function parseStrictJson(text: string, options: StrictJsonOptions): unknown {
  let i = 0;
  const stack: Frame[] = [];

  const path = (): string => {
    let p = '$';
    for (const f of stack) {
      if (f.kind === 'array') p += `[${f.value.length}]`;
      else if (f.key !== null) p += `[${preview(f.key, 40)}]`;
    }
    return p;
  };
  const fail = (reason: string, at = i): never => {
    throw new StrictJsonError(path(), reason, at);
  };
  const skipSpace = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return;
    }
  };

  const readString = (): string => {
    const start = ++i; // past the opening quote
    let out = '';
    let chunk = start;
    for (;;) {
      if (i >= text.length) fail('unterminated string', start - 1);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(chunk, i++);
        return out;
      }
      if (c < 0x20) fail('control character in a string');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(chunk, i);
      const e = text[i + 1];
      if (e !== undefined && Object.hasOwn(ESCAPES, e)) {
        out += ESCAPES[e];
        i += 2;
      } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
        out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
        i += 6;
      } else fail('invalid escape in a string');
      chunk = i;
    }
  };

  const readNumber = (): number | NumberLiteral => {
    NUMBER_RE.lastIndex = i;
    const m = NUMBER_RE.exec(text);
    if (!m) fail('invalid number');
    const lexeme = m![0];
    i += lexeme.length;
    const n = Number(lexeme);
    if (options.numbers === 'number' || (NATURAL_RE.test(lexeme) && Number.isSafeInteger(n))) return n;
    return new NumberLiteral(lexeme);
  };

  const readLiteral = (): unknown => {
    for (const [word, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return value;
      }
    }
    return fail('unexpected character');
  };

  // Attach a finished value to the enclosing container; returns it when there is none.
  let result: unknown;
  let done = false;
  const emit = (value: unknown) => {
    const top = stack[stack.length - 1];
    if (!top) {
      result = value;
      done = true;
    } else if (top.kind === 'array') top.value.push(value);
    else {
      top.value[top.key!] = value; // a null-prototype object: "__proto__" stays a plain key
      top.key = null;
    }
  };
  const open = (frame: Frame) => {
    if (stack.length >= options.maxDepth) fail(`nesting deeper than ${options.maxDepth} levels`);
    stack.push(frame);
  };

  // After a value inside a container: expect ',' or the closing bracket.
  const afterValue = (): void => {
    for (;;) {
      skipSpace();
      const top = stack[stack.length - 1];
      if (!top) return;
      const c = text[i];
      if (c === ',') {
        i++;
        if (top.kind === 'object') readKey(top);
        return;
      }
      if ((top.kind === 'array' && c === ']') || (top.kind === 'object' && c === '}')) {
        i++;
        stack.pop();
        emit(top.value);
        continue;
      }
      fail(top.kind === 'array' ? "expected ',' or ']'" : "expected ',' or '}'");
    }
  };
  const readKey = (frame: Extract<Frame, { kind: 'object' }>): void => {
    skipSpace();
    if (text[i] !== '"') fail('expected a string key');
    const keyAt = i;
    const key = readString();
    if (frame.keys.has(key)) {
      frame.key = key;
      fail(`duplicate key ${preview(key, 40)}`, keyAt);
    }
    frame.keys.add(key);
    frame.key = key;
    skipSpace();
    if (text[i] !== ':') fail("expected ':'");
    i++;
  };

  skipSpace();
  while (!done) {
    skipSpace();
    const c = text[i];
    if (c === '{') {
      i++;
      const frame: Frame = { kind: 'object', value: Object.create(null) as Record<string, unknown>, key: null, keys: new Set() };
      open(frame);
      skipSpace();
      if (text[i] === '}') {
        i++;
        stack.pop();
        emit(frame.value);
      } else {
        readKey(frame);
        continue;
      }
    } else if (c === '[') {
      i++;
      const frame: Frame = { kind: 'array', value: [] };
      open(frame);
      skipSpace();
      if (text[i] === ']') {
        i++;
        stack.pop();
        emit(frame.value);
      } else continue;
    } else if (c === '"') emit(readString());
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) emit(readNumber());
    else if (c === undefined) fail('unexpected end of input');
    else emit(readLiteral());
    afterValue();
  }
  skipSpace();
  if (i < text.length) fail('unexpected text after the value');
  return result;
}
