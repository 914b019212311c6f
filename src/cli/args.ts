// Option parsers for commander that fail with the option's name, the value and what is allowed.
import { InvalidArgumentError } from 'commander';

export function parsePositiveInt(name: string, min = 1): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min} (got '${value}')`);
    return n;
  };
}
