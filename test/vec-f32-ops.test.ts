// The f32 ops on the vector kernels (native/ops/vec_f32.h: softmax and cross-entropy's exp rows,
// GELU in erf and tanh form and their gradients) on every ISA this CPU runs, against double
// computations written here, at float tolerances, edge cases included (±0, ±inf, NaN, huge |x|,
// -inf logits, rows of one, tails of every width). native/test/kernels_check_vec.c holds the
// kernels themselves to libm at a few ulp on each ISA (NEON under qemu).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { loadNativeAddon, type NativeAddon } from '../src/backend/native/addon.js';
import { onEachIsa } from './helpers/isa.js';
import { erf } from '../src/backend/reference/math.js';

const loaded = loadNativeAddon();
const skip = loaded.addon ? false : `native addon not available: ${loaded.reason}`;
const addon = loaded.addon as NativeAddon;

/** |got - want| <= rel·scale + 1e-37 (NaN wants NaN; infinities want themselves). */
function near(got: number, want: number, scale: number, rel: number, what: string): void {
  if (Number.isNaN(want) || !Number.isFinite(Math.fround(want))) {
    assert.ok(Object.is(got, Math.fround(want)) || (Number.isNaN(want) && Number.isNaN(got)), `${what}: got ${got}, want ${want}`);
    return;
  }
  assert.ok(Math.abs(got - want) <= rel * Math.abs(scale) + 1e-37, `${what}: got ${got}, want ${want}`);
}

const REL = 1e-6; // ~8 float ulps

// a sweep of [-6, 6] (where 1 + erf in double is exact enough for a reference) and edge cases
const X = Float32Array.from([
  ...Array.from({ length: 241 }, (_, i) => -6 + i * 0.05 + 0.001),
  0,
  -0,
  1e-30,
  -1e-30,
  30,
  1e20,
  3.4e38,
  Infinity,
  -Infinity,
  NaN,
]);

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
function geluRef(x: number, tanhForm: boolean): { y: number; d: number; scale: number } {
  if (tanhForm) {
    const u = SQRT_2_OVER_PI * (x + 0.044715 * x ** 3);
    const s = 1 / (1 + Math.exp(-2 * u)); // 0.5·(1 + tanh u)
    const du = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    const term = 2 * x * s * (1 - s) * du;
    const cond = 1 + Math.abs(2 * u) * (1 - s); // the float argument of σ, amplified
    return { y: x * s, d: Number.isFinite(x) ? s + term : NaN, scale: (Math.abs(s) + Math.abs(term)) * cond };
  }
  const cdf = 0.5 * (1 + erf(x / Math.SQRT2));
  const term = (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
  return { y: x * cdf, d: Number.isFinite(x) ? cdf + term : NaN, scale: Math.abs(cdf) + Math.abs(term) };
}

test('gelu and gelu_tanh forward and backward (f32, every ISA) against double', { skip }, () => {
  onEachIsa(addon, (isa) => {
    for (const [op, tanhForm] of [
      ['gelu', false],
      ['gelu_tanh', true],
    ] as const) {
      const y = new Float32Array(X.length);
      const dy = X.map((_, i) => 0.5 + ((i * 37) % 11) / 11);
      const dx = new Float32Array(X.length);
      addon.unary(op, X, y);
      addon.unaryBackward(op, X, dy, dx);
      X.forEach((x, i) => {
        const r = geluRef(x, tanhForm);
        const yScale = tanhForm ? r.y * (1 + Math.abs(2 * SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))) : r.y;
        near(y[i]!, Number.isFinite(x) || x > 0 ? r.y : NaN, yScale, REL, `${isa} ${op}(${x})`);
        near(dx[i]!, dy[i]! * r.d, dy[i]! * r.scale, REL, `${isa} ${op}'(${x})`);
      });
    }
  });
});

/** Rows of x with a double softmax: logits in [-spread, spread], some -inf, one of NaN. */
function rows(r: number, n: number, spread: number): Float32Array {
  const x = new Float32Array(r * n);
  for (let i = 0; i < x.length; i++) x[i] = spread * Math.sin(i * 12.9898 + n);
  if (n > 2) x[1] = -Infinity;
  if (r > 2) x[2 * n + (n - 1)] = NaN;
  return x;
}
function lseRef(x: Float32Array, r: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, x[r * n + j]!);
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(x[r * n + j]! - m);
  return m + Math.log(s);
}

test('softmax, log-softmax, their backward and the cross-entropy pick (f32, every ISA) against double', { skip }, () => {
  onEachIsa(addon, (isa) => {
    for (const n of [1, 5, 16, 37, 64, 2048]) {
      const R = 4;
      for (const spread of [3, 40]) {
        const x = rows(R, n, spread);
        const p = new Float32Array(R * n);
        const lp = new Float32Array(R * n);
        addon.softmax(x, R, n, false, p);
        addon.softmax(x, R, n, true, lp);
        const t = Int32Array.from({ length: R }, (_, r) => (r * 7) % n);
        const pick = new Float32Array(R);
        const lse = new Float32Array(R);
        addon.logSoftmaxPick(x, t, R, n, pick, lse);
        const g = Float32Array.from({ length: R }, (_, r) => 0.25 + r);
        const dxPick = new Float32Array(R * n);
        addon.logSoftmaxPickBackward(x, lse, t, g, R, n, dxPick);
        const dy = Float32Array.from({ length: R * n }, (_, i) => Math.cos(i));
        const dxLog = new Float32Array(R * n);
        addon.softmaxBackward(lp, dy, R, n, true, dxLog);
        for (let r = 0; r < R; r++) {
          const L = lseRef(x, r, n);
          const what = `${isa} n=${n} spread=${spread} row ${r}`;
          // |x - lse| scales the float rounding of the difference
          const bad = Number.isNaN(L);
          near(lse[r]!, L, Math.abs(L) + 1, REL, `${what} lse`);
          near(pick[r]!, bad ? NaN : x[r * n + t[r]!]! - L, Math.abs(x[r * n + t[r]!]!) + Math.abs(L), REL, `${what} pick`);
          let sdy = 0;
          for (let j = 0; j < n; j++) sdy += dy[r * n + j]!;
          for (let j = 0; j < n; j++) {
            const xj = x[r * n + j]!;
            const pj = bad ? NaN : Math.exp(xj - L);
            const cond = 1 + (Number.isFinite(xj) ? Math.abs(xj - L) : 0); // the rounding of x - lse, amplified by e^
            near(p[r * n + j]!, pj, pj * cond, REL, `${what} softmax[${j}]`);
            near(lp[r * n + j]!, bad ? NaN : xj - L, Math.abs(xj) + Math.abs(L), REL, `${what} log_softmax[${j}]`);
            const dPick = (j === t[r] ? g[r]! : 0) - pj * g[r]!;
            near(dxPick[r * n + j]!, dPick, (j === t[r] ? g[r]! : 0) + pj * g[r]! * cond, REL, `${what} pick dx[${j}]`);
            const dLog = dy[r * n + j]! - pj * sdy;
            near(dxLog[r * n + j]!, dLog, Math.abs(dy[r * n + j]!) + pj * Math.abs(sdy) * cond, REL, `${what} dx[${j}]`);
          }
        }
      }
    }
  });
});
