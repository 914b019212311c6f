import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchLoader, TokenWindows, evalBatches, makeBatch, type Batch, type LoaderState } from '../src/data/batches.js';

/** mulberry32 with an inspectable/restorable state. */
function rng(seed: number): { next: () => number; state: () => number; set: (s: number) => void } {
  let a = seed >>> 0;
  return {
    next: () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
    state: () => a,
    set: (s) => {
      a = s;
    },
  };
}

const arange = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

function take(loader: BatchLoader, n: number): Batch[] {
  return Array.from({ length: n }, () => loader.next());
}

test('TokenWindows: floor((n - 1) / L) windows, target = input shifted by one', () => {
  assert.equal(new TokenWindows(arange(0), 4).length, 0);
  assert.equal(new TokenWindows(arange(1), 4).length, 0);
  assert.equal(new TokenWindows(arange(4), 4).length, 0);
  assert.equal(new TokenWindows(arange(5), 4).length, 1);
  assert.equal(new TokenWindows(arange(101), 10).length, 10);
  assert.equal(new TokenWindows(arange(100), 10).length, 9);
  assert.throws(() => new TokenWindows(arange(10), 0), /seqLen/);

  const w = new TokenWindows(arange(101), 10);
  const b = makeBatch(w, [0, 9]);
  assert.equal(b.batch, 2);
  assert.equal(b.seqLen, 10);
  assert.equal(b.input.length, 20);
  assert.deepEqual([...b.input.subarray(0, 10)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual([...b.input.subarray(10)], [90, 91, 92, 93, 94, 95, 96, 97, 98, 99]);
  assert.deepEqual([...b.target.subarray(10)], [91, 92, 93, 94, 95, 96, 97, 98, 99, 100]);
  assert.throws(() => makeBatch(w, [10]), /window index must be in \[0, 10\)/);
});

test('BatchLoader: shapes, shift, every window once per epoch, epochs advance', () => {
  const w = new TokenWindows(arange(8 * 12 + 1), 8); // 12 windows
  const r = rng(1);
  const loader = new BatchLoader(w, { batchSize: 4, random: r.next });
  assert.equal(loader.batchesPerEpoch, 3);
  for (let epoch = 0; epoch < 3; epoch++) {
    const starts: number[] = [];
    for (const b of loader.epochBatches()) {
      assert.equal(b.batch, 4);
      assert.equal(b.seqLen, 8);
      assert.equal(b.input.length, 32);
      assert.equal(b.target.length, 32);
      for (let i = 0; i < 32; i++) assert.equal(b.target[i], b.input[i]! + 1);
      for (let row = 0; row < 4; row++) starts.push(b.input[row * 8]!);
      assert.equal(loader.epoch, epoch);
    }
    assert.deepEqual(
      [...starts].sort((a, b) => a - b),
      Array.from({ length: 12 }, (_, i) => i * 8),
    );
  }
});

test('BatchLoader: same seed -> same batches, different seed -> different order', () => {
  const w = new TokenWindows(arange(16 * 50 + 1), 16);
  const a = take(new BatchLoader(w, { batchSize: 5, random: rng(42).next }), 25);
  const b = take(new BatchLoader(w, { batchSize: 5, random: rng(42).next }), 25);
  const c = take(new BatchLoader(w, { batchSize: 5, random: rng(43).next }), 25);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  // Epochs are reshuffled.
  assert.notDeepEqual(a.slice(0, 10), a.slice(10, 20));
});

test('BatchLoader: resume from a (JSON) state gives the same remaining batches', () => {
  const w = new TokenWindows(arange(8 * 23 + 1), 8); // 23 windows, 5 batches of 4 per epoch (3 dropped)
  for (const cut of [0, 1, 4, 5, 7, 12]) {
    const r1 = rng(7);
    const full = new BatchLoader(w, { batchSize: 4, random: r1.next });
    take(full, cut);
    const saved = JSON.parse(JSON.stringify({ loader: full.state(), rng: r1.state() })) as { loader: LoaderState; rng: number };
    const rest = take(full, 13);

    const r2 = rng(999);
    const resumed = new BatchLoader(w, { batchSize: 4, random: r2.next });
    resumed.restore(saved.loader);
    r2.set(saved.rng);
    assert.equal(resumed.epoch, saved.loader.epoch);
    assert.deepEqual(take(resumed, 13), rest, `cut at ${cut}`);
  }
});

test('BatchLoader: options and validation', () => {
  const w = new TokenWindows(arange(4 * 10 + 1), 4); // 10 windows
  assert.throws(() => new BatchLoader(w, { batchSize: 2 }), /seeded `random`/);
  assert.throws(() => new BatchLoader(w, { batchSize: 0, shuffle: false }), /batchSize/);
  assert.throws(() => new BatchLoader(w, { batchSize: 2, shuffle: false, maxBatches: 0 }), /maxBatches/);
  assert.throws(() => new BatchLoader(w, { batchSize: 11, shuffle: false }).next(), /no full batch/);

  const capped = new BatchLoader(w, { batchSize: 2, shuffle: false, maxBatches: 3 });
  assert.equal(capped.batchesPerEpoch, 3);
  assert.deepEqual(
    take(capped, 4).map((b) => b.input[0]),
    [0, 8, 16, 0],
  );
  assert.equal(capped.epoch, 1);

  const partial = new BatchLoader(w, { batchSize: 4, shuffle: false, dropLast: false });
  assert.deepEqual(
    [...partial.epochBatches()].map((b) => b.batch),
    [4, 4, 2],
  );

  const shuffled = new BatchLoader(w, { batchSize: 2, random: rng(3).next });
  shuffled.next();
  assert.throws(() => shuffled.restore({ epoch: 0, index: 2 }), /order is required/);
  assert.throws(() => shuffled.restore({ epoch: 0, index: 1, order: [0, 0, 1, 2, 3, 4, 5, 6, 7, 8] }), /permutation/);
  assert.throws(() => shuffled.restore({ epoch: 0, index: 6, order: [...Array(10).keys()] }), /index/);
  assert.throws(() => shuffled.restore({ epoch: -1, index: 0 }), /epoch/);
});

test('evalBatches: in order, no shuffle, maxBatches, partial last batch', () => {
  const w = new TokenWindows(arange(4 * 10 + 1), 4);
  const all = [...evalBatches(w, { batchSize: 4 })];
  assert.deepEqual(
    all.map((b) => b.batch),
    [4, 4, 2],
  );
  assert.deepEqual(
    all.map((b) => b.input[0]),
    [0, 16, 32],
  );
  assert.deepEqual([...evalBatches(w, { batchSize: 4 })], all); // restartable, deterministic
  assert.equal([...evalBatches(w, { batchSize: 4, dropLast: true })].length, 2);
  assert.equal([...evalBatches(w, { batchSize: 3, maxBatches: 2 })].length, 2);
});
