// Finite-difference gradient checks in float64, and a loop over the available backends.
import assert from 'node:assert/strict';
import { beforeEach, describe } from 'node:test';
import { availableBackends, setBackend, type BackendName } from '../../src/backend/index.js';
import { Generator, type Tensor, noGrad } from '../../src/index.js';
import { fromArray } from '../../src/ops/index.js';

/** Run a describe block once per backend that can load here, with that backend as default. */
export function forEachBackend(title: string, body: (name: BackendName) => void): void {
  for (const name of availableBackends()) {
    describe(`${title} [${name}]`, () => {
      // describe bodies run at registration, tests later: switch at both times, so tensors made
      // in the body and in the tests land on this backend
      setBackend(name);
      beforeEach(() => void setBackend(name));
      body(name);
    });
  }
}

/** f64 tensor of uniform values in [lo, hi) from a seeded generator. */
export function randF64(shape: number[], seed: number, lo = -1, hi = 1): Tensor {
  const g = new Generator(seed);
  const n = shape.reduce((p, d) => p * d, 1);
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * g.uniform();
  return fromArray(a, shape);
}

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
}

/**
 * Compares autograd's gradient of L = sum(f(inputs) * w) (w a fixed random cotangent) with
 * central differences, for every element of every input that requires grad.
 */
export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): void {
  const { eps = 1e-6, atol = 1e-6, rtol = 1e-5 } = options;
  for (const x of inputs) assert.equal(x.dtype === 'i32' || x.dtype === 'f64', true, 'gradcheck needs f64 inputs');
  const probe = noGrad(() => f(...inputs));
  const w = randF64([...probe.shape], 12345);
  const scalar = (): number => {
    const y = noGrad(() => f(...inputs)).dataSync();
    const wd = w.dataSync();
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i]! * wd[i]!;
    return s;
  };
  for (const x of inputs) x.grad = null;
  const y = f(...inputs);
  y.backward(w);
  inputs.forEach((x, xi) => {
    if (!x.requiresGrad) return;
    assert.ok(x.grad, `input ${xi} got no gradient`);
    const analytic = x.grad.dataSync();
    const data = x.storage;
    for (let i = 0; i < x.size; i++) {
      const orig = data[i]!;
      data[i] = orig + eps;
      const up = scalar();
      data[i] = orig - eps;
      const down = scalar();
      data[i] = orig;
      const numeric = (up - down) / (2 * eps);
      const a = analytic[i]!;
      const tol = atol + rtol * Math.abs(numeric);
      if (!(Math.abs(a - numeric) <= tol)) {
        assert.fail(
          `gradient mismatch for input ${xi} element ${i}: autograd ${a}, finite difference ${numeric} (|diff| ${Math.abs(a - numeric)} > ${tol})`,
        );
      }
    }
  });
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-6, rtol = 1e-6, what = 'value'): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      assert.fail(`${what}[${i}]: got ${a}, expected ${e}`);
    }
  }
}
