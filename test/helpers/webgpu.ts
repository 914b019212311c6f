// Opening the webgpu backend for tests: skip with a printed reason where no adapter exists,
// fail in CI (which installs Mesa so Dawn's OpenGL ES backend has one).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend } from '../../src/backend/backend.js';
import type { Storage, TypedArray } from '../../src/backend/types.js';
import { openWebGPUBackend } from '../../src/backend/webgpu/index.js';
import { Generator } from '../../src/tensor/random.js';

/** The backend, or null after registering a skipped (or, in CI, failing) test named `title`. */
export async function webgpuOrSkip(title: string): Promise<Backend | null> {
  const opened = await openWebGPUBackend();
  if (opened.backend) return opened.backend;
  const reason = `webgpu: ${opened.reason}`;
  if (process.env['CI']) test(`${title}: a WebGPU adapter exists (required in CI)`, () => assert.fail(reason));
  else {
    console.log(`# skipping ${title}: ${reason}`);
    test(title, { skip: reason }, () => {});
  }
  return null;
}

/** Host copies of GPU storages (as the reference backend's arrays). */
export function readAll(gpu: Backend, xs: readonly Storage[]): Promise<TypedArray[]> {
  return Promise.all(xs.map((x) => gpu.read(x)));
}

/** n values uniform in [-scale, scale) from a seeded generator (the same on every backend). */
export function seededValues(n: number, seed: number, scale: number): Float32Array {
  const g = new Generator(seed);
  return Float32Array.from({ length: n }, () => (2 * g.uniform() - 1) * scale);
}

/** webgpu against the reference backend within f32 tolerance (2e-5 absolute + 2e-4 relative). */
export function assertCloseF32(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const tol = 2e-5 + 2e-4 * Math.abs(want[i]!);
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: webgpu ${got[i]}, reference ${want[i]}`);
  }
}
