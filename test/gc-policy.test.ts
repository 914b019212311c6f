// useThroughputGc (src/tensor/gc-policy.ts): incremental marking off for the process, unless the
// process was started with an explicit choice. Each case runs in a fresh node, and the GC kinds
// seen by a PerformanceObserver say what V8 did (kind 8: incremental marking steps).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

const MODULE = new URL('../src/tensor/gc-policy.ts', import.meta.url).pathname;

/** Grows the old generation by retaining ~200 MB of small objects; prints {inEffect, kinds}. */
const SCRIPT = (apply: boolean) => `
import { PerformanceObserver } from 'node:perf_hooks';
import { useThroughputGc } from '${MODULE}';
const inEffect = ${apply} ? useThroughputGc() : null;
const kinds = new Set();
new PerformanceObserver((list) => { for (const e of list.getEntries()) kinds.add(e.detail.kind); }).observe({ entryTypes: ['gc'] });
const keep = [];
for (let i = 0; i < 40; i++) keep.push(Array.from({ length: 100000 }, (_, j) => ({ i, j })));
setTimeout(() => console.log(JSON.stringify({ inEffect, kinds: [...kinds].sort(), n: keep.length })), 20);
`;

function run(apply: boolean, nodeArgs: string[] = []): { inEffect: boolean | null; kinds: number[] } {
  const out = execFileSync(process.execPath, [...nodeArgs, '--import', 'tsx', '--input-type=module', '-e', SCRIPT(apply)], {
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').pop()!) as { inEffect: boolean | null; kinds: number[] };
}

test('useThroughputGc: V8 marks incrementally by default and not once it is called', () => {
  const before = run(false);
  assert.ok(before.kinds.includes(8), `the default policy marks incrementally (kinds ${before.kinds})`);
  const after = run(true);
  assert.equal(after.inEffect, true);
  assert.ok(!after.kinds.includes(8), `no incremental marking (kinds ${after.kinds})`);
  assert.ok(after.kinds.includes(4), `major GCs still run (kinds ${after.kinds})`);
});

/** Grows the heap until V8 has marked incrementally, calls useThroughputGc, grows on. */
const MID_CYCLE_SCRIPT = `
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { useThroughputGc } from '${MODULE}';
const entries = [];
new PerformanceObserver((list) => { for (const e of list.getEntries()) entries.push({ kind: e.detail.kind, start: e.startTime }); }).observe({ entryTypes: ['gc'] });
const keep = [];
// keeps the newest 12 arrays (~45 MB): the old generation fills with garbage, so major GCs recur
const grow = (n) => { for (let i = 0; i < n; i++) { keep.push(Array.from({ length: 100000 }, (_, j) => ({ i, j }))); if (keep.length > 12) keep.shift(); } };
grow(20);
const t0 = performance.now();
const inEffect = useThroughputGc();
const t1 = performance.now();
grow(40);
setTimeout(() => console.log(JSON.stringify({ inEffect, t0, t1, entries })), 20);
`;

test('useThroughputGc called while V8 marks: a full GC ends the cycle, then no marking', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', MID_CYCLE_SCRIPT], { encoding: 'utf8' });
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    inEffect: boolean;
    t0: number;
    t1: number;
    entries: { kind: number; start: number }[];
  };
  assert.equal(r.inEffect, true);
  const kinds = (from: number, to: number) => r.entries.filter((e) => e.start >= from && e.start < to).map((e) => e.kind);
  assert.ok(kinds(0, r.t0).includes(8), `V8 was marking incrementally before the call (${kinds(0, r.t0)})`);
  assert.ok(kinds(r.t0, r.t1).includes(4), `a full GC inside the call (${kinds(r.t0, r.t1)})`);
  const after = kinds(r.t1, Number.POSITIVE_INFINITY);
  assert.ok(!after.includes(8), `no marking after the call (${after})`);
});

test('useThroughputGc leaves an explicit --incremental-marking alone and reports it', () => {
  const kept = run(true, ['--incremental-marking']);
  assert.equal(kept.inEffect, false);
  assert.ok(kept.kinds.includes(8), `kinds ${kept.kinds}`);
  assert.equal(run(true, ['--no-incremental-marking']).inEffect, true);
});
