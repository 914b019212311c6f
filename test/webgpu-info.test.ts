// `moekit info` says whether a WebGPU device opens and whether it runs: the adapter and its
// limits, chosen under MOEKIT_BACKEND=webgpu (then the backend line names it too).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { webgpuOrSkip } from './helpers/webgpu.js';

const info = (backend: string) =>
  execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'info'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, MOEKIT_BACKEND: backend },
  });

if (await webgpuOrSkip('moekit info: the webgpu line')) {
  test('moekit info: the webgpu adapter and its limits, chosen or not', () => {
    const limits =
      /workgroup <= \d+ invocations, storage buffers\/stage \d+, buffer <= \d+ B, binding <= \d+ B, f16 (yes|no), subgroups (yes|no)/;
    const ref = info('reference');
    assert.match(ref, new RegExp(`^webgpu: .* via .*; ${limits.source} \\(not chosen: MOEKIT_BACKEND=webgpu selects it\\)$`, 'm'));
    const gpu = info('webgpu');
    assert.match(gpu, new RegExp(`^moekit: webgpu backend, .*${limits.source} \\(MOEKIT_BACKEND=webgpu\\)$`, 'm'));
    assert.match(gpu, /^webgpu: .* \(chosen\)$/m);
  });
}
