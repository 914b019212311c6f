// What training does when a step's loss or gradient norm is not finite (NaN or +-inf).
// The check itself costs nothing extra: the loss is read each step anyway and the global
// gradient norm is the reduction clipGradNorm already computes; only a failing step pays for
// the scan below, which names the first non-finite parameter or gradient.
import type { Parameter } from '../nn/module.js';

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
  for (const [name, p] of named) {
    const d = p.dataSync();
    const i = firstBad(d);
    if (i >= 0) return `parameter '${name}'[${i}] = ${d[i]}`;
  }
  if (what === 'parameters') return null;
  for (const [name, p] of named) {
    if (!p.grad) continue;
    const g = p.grad.dataSync();
    const i = firstBad(g);
    if (i >= 0) return `gradient of '${name}'[${i}] = ${g[i]}`;
  }
  return null;
}

/** Whether a step's loss and gradient norm are both finite. */
export function stepIsFinite(loss: number, gradNorm: number): boolean {
  return Number.isFinite(loss) && Number.isFinite(gradNorm);
}
