// Reading a JSON file whose errors name the file: a truncated checkpoint.json says which
// file is broken, not only "Expected ',' or ']' at position 995410".
import { readFileSync } from 'node:fs';

export class JsonFileError extends Error {
  override name = 'JsonFileError';
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: ${reason}`);
  }
}

/** The parsed contents of `file`; a JsonFileError naming it when it cannot be read or parsed. */
export function readJsonFileSync(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new JsonFileError(file, `cannot be read (${(err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new JsonFileError(file, `is not valid JSON (${(err as Error).message}; ${text.length} characters)`);
  }
}

/** `readJsonFileSync`, then a check that the value is an object with `field` equal to `expected`. */
export function readJsonObjectSync(file: string, field?: string, expected?: unknown): Record<string, unknown> {
  const value = readJsonFileSync(file);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new JsonFileError(file, 'is not a JSON object');
  const obj = value as Record<string, unknown>;
  if (field !== undefined && obj[field] !== expected) {
    throw new JsonFileError(
      file,
      `field "${field}" is ${JSON.stringify(obj[field])?.slice(0, 60) ?? 'missing'}, expected ${JSON.stringify(expected)}`,
    );
  }
  return obj;
}
