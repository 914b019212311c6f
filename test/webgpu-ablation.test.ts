// The CT-MoE ablation on webgpu: runAblationAsync (what `moekit ablate --backend webgpu` runs)
// trains and evaluates a micro config on the GPU, and its results.json numbers equal the
// reference backend's run of the same config (runAblation, synchronous) within f32 tolerance:
// per-step losses, the log points (validation PPL, routing and S diagnostics), the domain
// perplexities, routing frequencies, final S and the eigenspectrum.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { initBackend, setBackend } from '../src/backend/index.js';
import { type CtMoeAblationResults, experimentConfig, runAblation, runAblationAsync } from '../src/experiments/ctmoe/index.js';
import { RESULTS_JSON } from '../src/experiments/ctmoe/ablation.js';
import { MICRO_OVERRIDES, synthData } from './helpers/ctmoe-micro.js';
import { tempDirs } from './helpers/ctmoe-one-layer.js';
import { webgpuOrSkip } from './helpers/webgpu.js';

const tmp = tempDirs('webgpu-ablation-');
const PRESET = experimentConfig('tiny', { ...MICRO_OVERRIDES, nLayer: 1, steps: 4, logEvery: 2, checkpointEvery: 2 });
const VARIANTS = ['CT-MoE-Full', 'StandardMoE'] as const;

/** Every number in a results.json variant, by its path (timings and the backend line left out). */
function numbers(v: unknown, path: string, out: Map<string, number>): Map<string, number> {
  if (typeof v === 'number') out.set(path, v);
  else if (Array.isArray(v)) v.forEach((x, i) => numbers(x, `${path}[${i}]`, out));
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) if (!['timing', 'elapsedSec', 'backend', 'config'].includes(k)) numbers(x, `${path}.${k}`, out);
  return out;
}

const gpu = await webgpuOrSkip('webgpu: the CT-MoE ablation equals the reference backend');
if (gpu) {
  await initBackend('webgpu');
  test('webgpu: runAblationAsync gives the reference backend results.json numbers (micro config, 2 variants, 4 steps)', async () => {
    setBackend('reference');
    const refDir = tmp();
    runAblation({ preset: PRESET, outDir: refDir, variants: [...VARIANTS], data: synthData() });
    setBackend('webgpu');
    const devDir = tmp();
    try {
      await runAblationAsync({ preset: PRESET, outDir: devDir, variants: [...VARIANTS], data: synthData() });
    } finally {
      setBackend('reference');
    }
    const load = (d: string) => JSON.parse(readFileSync(join(d, RESULTS_JSON), 'utf8')) as CtMoeAblationResults;
    const ref = load(refDir);
    const dev = load(devDir);
    for (const key of VARIANTS) {
      const want = numbers(ref.variants[key]!.result, key, new Map());
      const got = numbers(dev.variants[key]!.result, key, new Map());
      assert.deepEqual([...got.keys()], [...want.keys()], `${key}: the same fields`);
      assert.ok(want.size > 30, `${key}: ${want.size} numbers compared`);
      for (const [path, w] of want) {
        const g = got.get(path)!;
        assert.ok(Math.abs(g - w) <= 1e-4 * (1 + Math.abs(w)), `${path}: webgpu ${g}, reference ${w}`);
      }
      assert.match(dev.variants[key]!.result!.backend, /webgpu/);
    }
  });
}
