// native/runtime/malloc_policy.c: once the addon has loaded, glibc serves big arrays from its heap
// and keeps them there when they are freed, so a training step's new weight gradients reuse the
// last step's pages instead of faulting fresh ones in (docs/performance.md: native/runtime/
// malloc_policy.c: mk_retain_memory). Each case runs in a fresh node (the policy is process-wide)
// and counts the minor page faults of allocating and filling a 64 MiB array after an earlier one
// of the same size was collected: ~16k (one a 4 KiB page) without the policy, ~0 with it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { loadNativeAddon } from '../src/backend/native/addon.js';

const ADDON = new URL('../src/backend/native/addon.ts', import.meta.url).pathname;
const PAGES = (64 << 20) / 4096;

const SCRIPT = `
import { loadNativeAddon } from '${ADDON}';
if (!loadNativeAddon().addon) throw new Error('the native addon did not load');
const n = ${PAGES * 1024};
let a = new Float32Array(n).fill(1);
a = null;
globalThis.gc();
const f0 = process.resourceUsage().minorPageFault;
const b = new Float32Array(n).fill(2);
console.log(JSON.stringify({ faults: process.resourceUsage().minorPageFault - f0, last: b[n - 1] }));
`;

/** Page faults of the second 64 MiB array, in a fresh node with MOEKIT_RETAIN_MEMORY = retain. */
function secondArrayFaults(retain: '0' | '1'): number {
  const env: NodeJS.ProcessEnv = { ...process.env, MOEKIT_RETAIN_MEMORY: retain };
  for (const k of ['MALLOC_MMAP_MAX_', 'MALLOC_TRIM_THRESHOLD_', 'GLIBC_TUNABLES']) delete env[k];
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', '--no-concurrent-array-buffer-sweeping', '--import', 'tsx', '--input-type=module', '-e', SCRIPT],
    { encoding: 'utf8', env },
  );
  const r = JSON.parse(out.trim().split('\n').pop()!) as { faults: number; last: number };
  assert.equal(r.last, 2);
  return r.faults;
}

const glibc = !!(process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
const skip = !glibc ? 'not glibc: the policy is glibc-only' : !loadNativeAddon().addon ? 'the native addon did not load' : false;

test('malloc policy: a freed 64 MiB array is reused without page faults once the addon loads', { skip }, () => {
  const off = secondArrayFaults('0');
  const on = secondArrayFaults('1');
  assert.ok(off > PAGES / 2, `without the policy the new array faults its pages in (${off} faults, ${PAGES} pages)`);
  assert.ok(on < PAGES / 16, `with the policy the freed pages are reused (${on} faults, ${PAGES} pages)`);
});
