// bench/roofline.ts and the addon's fmaPeak: the ISA each OpenBLAS kernel family runs, the
// roofline columns against closed forms, and fmaPeak's answers and argument errors (its rate
// itself is a measurement, checked only for being a positive number: no timing assertions).
import assert from 'node:assert/strict';
import { arch } from 'node:os';
import { test } from 'node:test';
import { loadNativeAddon } from '../src/backend/native/addon.js';
import { describeRoofline, openblasCoreIsa, rooflineColumns, type Roofline } from '../bench/roofline.js';

test('openblasCoreIsa: the widest vector FMA of each OpenBLAS kernel family', () => {
  assert.equal(openblasCoreIsa('Cooperlake'), 'avx512');
  assert.equal(openblasCoreIsa('SkylakeX'), 'avx512');
  assert.equal(openblasCoreIsa('SapphireRapids'), 'avx512');
  assert.equal(openblasCoreIsa('Haswell'), 'avx2');
  assert.equal(openblasCoreIsa('Zen'), 'avx2');
  assert.equal(openblasCoreIsa('NeoverseN1'), 'neon');
  assert.equal(openblasCoreIsa('armv8'), 'neon');
  assert.equal(openblasCoreIsa('Sandybridge'), null); // AVX without FMA: no roofline to compare with
  assert.equal(openblasCoreIsa('Prescott'), null);
});

test("rooflineColumns: shares of each side's peak and the ratio ceiling", () => {
  const roof: Roofline = { peaks: { avx512: 200, avx2: 100 }, threads: 2 };
  // moekit 150 GFLOP/s on avx512 against a peer at 80 on its avx2 kernels
  assert.deepEqual(rooflineColumns(roof, { isa: 'avx512', gflops: 150 }, { isa: 'avx2', gflops: 80 }), {
    peak_fraction: 0.75,
    peer_peak_fraction: 0.8,
    ratio_ceiling: 2.5,
  });
  // a peer kernel family without a measured peak still bounds the ratio by moekit's peak
  assert.deepEqual(rooflineColumns(roof, { isa: 'avx2', gflops: 50 }, { isa: null, gflops: 40 }), {
    peak_fraction: 0.5,
    ratio_ceiling: 2.5,
  });
  assert.deepEqual(rooflineColumns(roof, { isa: 'avx2', gflops: 50 }), { peak_fraction: 0.5 });
  assert.deepEqual(rooflineColumns(roof, { isa: 'scalar', gflops: 5 }), {});
  assert.deepEqual(rooflineColumns(null, { isa: 'avx2', gflops: 5 }), {});
  assert.match(describeRoofline(roof), /avx512 200 GFLOP\/s, avx2 100 GFLOP\/s/);
});

const addon = loadNativeAddon().addon;

test('fmaPeak: a rate for each ISA this CPU runs, null for the others, one-line errors', { skip: !addon && 'no native addon' }, () => {
  const a = addon!;
  const mine = a.cpuInfo().isa;
  for (const isa of ['avx512', 'avx2', 'neon'] as const) {
    const p = a.fmaPeak(isa, 20);
    const runs = isa === mine || (isa === 'avx2' && mine === 'avx512');
    if (!runs && arch() !== 'x64') continue; // aarch64: neon only, checked below
    if (runs) {
      assert.ok(p, `${isa} should run on a CPU whose kernels run ${mine}`);
      assert.equal(p.isa, isa);
      assert.equal(p.threads, a.getNumThreads());
      assert.ok(Number.isFinite(p.gflops) && p.gflops > 0, `${isa}: ${p.gflops}`);
    } else if (isa === 'neon') assert.equal(p, null);
  }
  if (arch() === 'arm64') assert.ok(a.fmaPeak('neon', 20));
  assert.throws(() => a.fmaPeak('sse' as 'avx2', 20), /fmaPeak: isa must be "avx512", "avx2" or "neon", got "sse"/);
  assert.throws(() => a.fmaPeak('avx2', 0), /fmaPeak: ms/);
});
