// Option parsers for commander that fail with the option's name, the value and what is allowed.
// Numbers are decimal only: '0x10', '1e20' for an integer, 'Infinity', '' and ' 5' are refused
// (Number() would take most of them).
import { InvalidArgumentError } from 'commander';

const INTEGER_TEXT = /^[+-]?\d+$/;
const DECIMAL_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Largest count a flag accepts (steps, seeds, intervals): far beyond a real run (the config validators use the same bound). */
export const MAX_COUNT = 1e9;

function shown(value: string): string {
  return value.length > 40 ? `'${value.slice(0, 40)}…'` : `'${value}'`;
}

/** A decimal integer literal in [min, max], or an InvalidArgumentError naming `name`. */
export function parseIntStrict(name: string, value: string, min: number, max: number): number {
  const n = INTEGER_TEXT.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new InvalidArgumentError(`${name} must be a decimal integer in [${min}, ${max}] (got ${shown(value)})`);
  }
  return n;
}

/** A finite decimal number (e.g. 2e-4, -1.5) in [min, max], or an InvalidArgumentError naming `name`. */
export function parseFloatStrict(name: string, value: string, min = -Number.MAX_VALUE, max = Number.MAX_VALUE): number {
  const n = DECIMAL_TEXT.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n) || n < min || n > max) {
    const range =
      min === -Number.MAX_VALUE && max === Number.MAX_VALUE ? 'a finite decimal number' : `a decimal number in [${min}, ${max}]`;
    throw new InvalidArgumentError(`${name} must be ${range} (got ${shown(value)})`);
  }
  return n;
}

/** commander parser: a decimal integer in [min, max]. */
export function parsePositiveInt(name: string, min = 1, max = MAX_COUNT): (value: string) => number {
  return (value) => parseIntStrict(name, value, min, max);
}
