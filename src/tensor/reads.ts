// Code that reads tensor values in the middle of its work (a training loop reading its loss,
// an evaluation reading its perplexity), written once for both kinds of backend: it is a
// generator that yields the tensors it needs and is resumed with their values. runReadsSync
// answers with dataSync (CPU backends: the code runs as plain synchronous code, at the same
// points as before); runReadsAsync answers with `await data()` (a device backend: the reads of
// one yield wait together, and nothing else waits).
import type { TypedArray } from '../backend/types.js';
import type { Tensor } from './tensor.js';

/** A computation that reads tensors as it goes and returns T. */
export type Reads<T> = Generator<readonly Tensor[], T, TypedArray[]>;

/** The values of `tensors` (one wait for all of them on a device backend). */
export function* read(...tensors: Tensor[]): Reads<TypedArray[]> {
  return tensors.length === 0 ? [] : yield tensors;
}

/** The first element of each tensor; numbers pass through unread. */
export function* readScalars(...xs: (Tensor | number)[]): Reads<number[]> {
  const tensors = xs.filter((x): x is Tensor => typeof x !== 'number');
  const values = yield* read(...tensors);
  let next = 0;
  return xs.map((x) => (typeof x === 'number' ? x : values[next++]![0]!));
}

/** Run `g` answering each read with dataSync (CPU backends). */
export function runReadsSync<T>(g: Reads<T>): T {
  let r = g.next();
  while (!r.done) r = g.next(r.value.map((t) => t.dataSync()));
  return r.value;
}

/** Run `g` answering each read with `await data()` (every backend). */
export async function runReadsAsync<T>(g: Reads<T>): Promise<T> {
  let r = g.next();
  while (!r.done) r = g.next(await Promise.all(r.value.map((t) => t.data())));
  return r.value;
}
