// Field validators for MoE configs: every failure names the field, the value and what is allowed.

export class ConfigError extends RangeError {
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`${field} = ${show(value)} is invalid: expected ${allowed}`);
    this.name = 'ConfigError';
  }
}

function show(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return String(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An object with no keys outside `known` (catches typos such as `topk` for `topK`). */
export function record(field: string, v: unknown, known: readonly string[]): Record<string, unknown> {
  if (!isRecord(v)) throw new ConfigError(field, v, 'an object');
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) throw new ConfigError(`${field}.${k}`, v[k], `no such field (known: ${known.join(', ')})`);
  }
  return v;
}

export function int(field: string, v: unknown, lo: number, hi = Infinity, why = ''): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    const range = hi === Infinity ? `>= ${lo}` : `in [${lo}, ${hi}]`;
    throw new ConfigError(field, v, `an integer ${range}${why ? ` (${why})` : ''}`);
  }
  return v;
}

export interface NumRange {
  min?: number;
  max?: number;
  /** Exclude the bounds themselves. */
  minOpen?: boolean;
  maxOpen?: boolean;
}

export function num(field: string, v: unknown, r: NumRange = {}): number {
  const { min = -Infinity, max = Infinity, minOpen = false, maxOpen = false } = r;
  const ok = typeof v === 'number' && Number.isFinite(v) && (minOpen ? v > min : v >= min) && (maxOpen ? v < max : v <= max);
  if (!ok) {
    const lo = min === -Infinity ? '(-inf' : `${minOpen ? '(' : '['}${min}`;
    const hi = max === Infinity ? 'inf)' : `${max}${maxOpen ? ')' : ']'}`;
    throw new ConfigError(field, v, `a finite number in ${lo}, ${hi}`);
  }
  return v;
}

export function oneOf<T extends string>(field: string, v: unknown, options: readonly T[]): T {
  if (typeof v !== 'string' || !(options as readonly string[]).includes(v)) {
    throw new ConfigError(field, v, `one of ${options.map((o) => `'${o}'`).join(', ')}`);
  }
  return v as T;
}

export function bool(field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(field, v, 'true or false');
  return v;
}

/** `v` if given, else the default (null counts as given). */
export function or<T>(v: unknown, dflt: T): unknown {
  return v === undefined ? dflt : v;
}
