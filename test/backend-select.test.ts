// Backend selection: native by default when the addon loads, CI must have it, env override.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { availableBackends } from '../src/backend/index.js';

const probe = `import { backendInfo } from './src/backend/index.js'; console.log(JSON.stringify(backendInfo()));`;

function infoWith(env: Record<string, string>): { name: string; reason: string } {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').pop()!) as { name: string; reason: string };
}

test('the native addon is built and loads in CI', { skip: !process.env['CI'] && 'set CI=1 to require the native addon' }, () => {
  assert.ok(availableBackends().includes('native'), 'the native backend must load in CI (npm ci builds it)');
});

test('MOEKIT_BACKEND=reference selects the reference backend and says why', () => {
  const info = infoWith({ MOEKIT_BACKEND: 'reference' });
  assert.equal(info.name, 'reference');
  assert.match(info.reason, /reference backend \(MOEKIT_BACKEND=reference\)/);
});

test('native is the default when it loads', { skip: !availableBackends().includes('native') && 'native addon not built' }, () => {
  const info = infoWith({ MOEKIT_BACKEND: '' });
  assert.equal(info.name, 'native');
  assert.match(info.reason, /native backend, (avx512|avx2|scalar), \d+ threads/);
});

test('an unknown MOEKIT_BACKEND is a clear error', () => {
  assert.throws(
    () => infoWith({ MOEKIT_BACKEND: 'cuda' }),
    /MOEKIT_BACKEND='cuda' is invalid: expected 'native' or 'reference' or 'webgpu'/,
  );
});

test('MOEKIT_BACKEND=webgpu before initBackend() says to await it', () => {
  assert.throws(() => infoWith({ MOEKIT_BACKEND: 'webgpu' }), /WebGPU opens asynchronously; call `await initBackend\('webgpu'\)` first/);
});
