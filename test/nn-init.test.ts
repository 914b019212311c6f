import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Generator,
  Linear,
  calculateFans,
  kaimingUniformBound,
  kaimingUniform_,
  normal_,
  ones_,
  truncNormal_,
  uniform_,
  zeros,
  zeros_,
} from '../src/index.js';

const N = 100_000;

function moments(a: ArrayLike<number>): { mean: number; variance: number; min: number; max: number } {
  let s = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < a.length; i++) {
    s += a[i]!;
    min = Math.min(min, a[i]!);
    max = Math.max(max, a[i]!);
  }
  const mean = s / a.length;
  let v = 0;
  for (let i = 0; i < a.length; i++) v += (a[i]! - mean) ** 2;
  return { mean, variance: v / a.length, min, max };
}

// Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), enough for moment tolerances
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}
const Phi = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2));
const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);

describe('init', () => {
  test('fans follow PyTorch (dim 1 is fan in; receptive field multiplies)', () => {
    assert.deepEqual(calculateFans([4, 3]), { fanIn: 3, fanOut: 4 });
    assert.deepEqual(calculateFans([8, 2, 3, 3]), { fanIn: 18, fanOut: 72 });
    assert.throws(() => calculateFans([5]), /at least 2 dims \(got shape \[5\]\)/);
  });

  test('kaimingUniform_ bound = sqrt(2/(1+a²)) * sqrt(3/fanIn), hit and respected', () => {
    assert.ok(Math.abs(kaimingUniformBound(100) - 0.1) < 1e-15);
    assert.ok(Math.abs(kaimingUniformBound(50, 0) - Math.sqrt(2) * Math.sqrt(3 / 50)) < 1e-15);
    const t = zeros([1000, 100], { dtype: 'f64' });
    kaimingUniform_(t, Math.sqrt(5), new Generator(3));
    const m = moments(t.dataSync());
    const bound = 0.1;
    assert.ok(m.min >= -bound && m.max < bound, `range [${m.min}, ${m.max}]`);
    assert.ok(m.max > bound * 0.999 && m.min < -bound * 0.999, 'samples reach the bound');
    assert.ok(Math.abs(m.mean) < 0.002);
    assert.ok(Math.abs(m.variance / ((bound * bound) / 3) - 1) < 0.02);
  });

  test('Linear default init: weight within 1/sqrt(in), bias within 1/sqrt(in)', () => {
    const l = new Linear(400, 300, { generator: new Generator(9) });
    const w = moments(l.weight.dataSync());
    const b = moments(l.bias!.dataSync());
    assert.ok(w.max <= 0.05 && w.min >= -0.05 && w.max > 0.049);
    assert.ok(b.max <= 0.05 && b.min >= -0.05);
  });

  test('normal_ moments on 100k samples', () => {
    const t = zeros([N], { dtype: 'f64' });
    normal_(t, 0.5, 2, new Generator(1));
    const m = moments(t.dataSync());
    assert.ok(Math.abs(m.mean - 0.5) < 0.03, `mean ${m.mean}`);
    assert.ok(Math.abs(m.variance / 4 - 1) < 0.02, `variance ${m.variance}`);
  });

  test('truncNormal_ respects [a, b] and matches the truncated moments', () => {
    const [mu, sd, a, b] = [0.2, 1.5, -1, 2.5];
    const t = zeros([N], { dtype: 'f64' });
    truncNormal_(t, mu, sd, a, b, new Generator(2));
    const m = moments(t.dataSync());
    assert.ok(m.min >= a && m.max <= b, `range [${m.min}, ${m.max}]`);
    const al = (a - mu) / sd;
    const be = (b - mu) / sd;
    const Z = Phi(be) - Phi(al);
    const mean = mu + (sd * (phi(al) - phi(be))) / Z;
    const variance = sd * sd * (1 + (al * phi(al) - be * phi(be)) / Z - ((phi(al) - phi(be)) / Z) ** 2);
    assert.ok(Math.abs(m.mean - mean) < 0.01, `mean ${m.mean} vs ${mean}`);
    assert.ok(Math.abs(m.variance / variance - 1) < 0.02, `variance ${m.variance} vs ${variance}`);
    assert.throws(() => truncNormal_(t, 0, 1, 1, 1), /a \(1\) must be less than b \(1\)/);
  });

  test('uniform_, zeros_, ones_; same generator state gives the same values', () => {
    const t = zeros([N], { dtype: 'f32' });
    uniform_(t, -3, 1, new Generator(5));
    const m = moments(t.dataSync());
    assert.ok(m.min >= -3 && m.max <= 1);
    assert.ok(Math.abs(m.mean + 1) < 0.02 && Math.abs(m.variance / (16 / 12) - 1) < 0.02);
    const u = zeros([N], { dtype: 'f32' });
    uniform_(u, -3, 1, new Generator(5));
    assert.deepEqual(u.dataSync(), t.dataSync());
    const storage = t.storage;
    zeros_(t);
    assert.equal(t.storage, storage, 'writes in place');
    assert.ok(t.dataSync().every((v) => v === 0));
    assert.ok(
      ones_(t)
        .dataSync()
        .every((v) => v === 1),
    );
    assert.throws(() => normal_(zeros([2], { dtype: 'i32' })), /must be floating/);
  });
});
