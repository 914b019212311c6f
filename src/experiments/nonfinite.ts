// What training does when a step's loss or gradient norm is not finite (NaN or +-inf).
// The check itself costs nothing extra: the loss is read each step anyway and the global
// gradient norm is the reduction clipGradNorm already computes; only a failing step pays for
// the scan below, which names the first non-finite parameter or gradient.
import type { Parameter } from '../nn/module.js';
import { type Reads, read, runReadsSync } from '../tensor/reads.js';

export type NonFinitePolicy = 'stop' | 'skip';
export const NONFINITE_POLICIES: readonly NonFinitePolicy[] = ['stop', 'skip'];
/** `skip` gives up after this many skipped steps in a row (the data or model is broken, not one batch). */
export const MAX_CONSECUTIVE_SKIPS = 20;

export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
  constructor(
    readonly variant: string,
    readonly step: number,
    message: string,
  ) {
    super(message);
  }
}

/** The first element of `a` that is not finite, or -1. */
function firstBad(a: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

/** "parameter 'x'[i] = NaN" / "gradient of 'x'[i] = Infinity", parameters first; null if all finite. */
export function firstNonFinite(named: readonly [string, Parameter][], what: 'parameters' | 'both' = 'both'): string | null {
  return runReadsSync(firstNonFiniteReads(named, what));
}

/** firstNonFinite, reading the parameters (and grads) through `read` (one wait on a device backend). */
export function* firstNonFiniteReads(named: readonly [string, Parameter][], what: 'parameters' | 'both' = 'both'): Reads<string | null> {
  const params = yield* read(...named.map(([, p]) => p));
  for (let k = 0; k < named.length; k++) {
    const d = params[k]!;
    const i = firstBad(d);
    if (i >= 0) return `parameter '${named[k]![0]}'[${i}] = ${d[i]}`;
  }
  if (what === 'parameters') return null;
  const withGrad = named.filter(([, p]) => p.grad);
  const grads = yield* read(...withGrad.map(([, p]) => p.grad!));
  for (let k = 0; k < withGrad.length; k++) {
    const g = grads[k]!;
    const i = firstBad(g);
    if (i >= 0) return `gradient of '${withGrad[k]![0]}'[${i}] = ${g[i]}`;
  }
  return null;
}

/** Whether a step's loss and gradient norm are both finite. */
export function stepIsFinite(loss: number, gradNorm: number): boolean {
  return Number.isFinite(loss) && Number.isFinite(gradNorm);
}
