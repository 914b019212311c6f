// `npm run bench -- gemm|moe --backend webgpu` end to end at tiny sizes (no timing assertions):
// the JSON lines of the CPU runs, the adapter line, the software-adapter note on Mesa, and the
// PyTorch peer on the CPU (with the note that says so) where Debian's torch is installed, else
// the line that says why it did not run. A bad --backend value is a one-line error.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { defaultPeerDir } from '../bench/util.js';
import { webgpuOrSkip } from './helpers/webgpu.js';

const ROOT = join(import.meta.dirname, '..');
const BENCH = join(ROOT, 'bench', 'main.ts');
/** bench/moe.ts's default peer folder. */
const PEER_DIR = defaultPeerDir();
const torchHere = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

async function bench(args: string[]): Promise<{ rows: Array<Record<string, unknown>>; stderr: string }> {
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', BENCH, ...args, '--backend', 'webgpu', '--json'],
    {
      cwd: ROOT,
      timeout: 120_000,
      encoding: 'utf8',
    },
  );
  const rows = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { rows, stderr };
}

/** What both benches say on stderr about the adapter and the peer; whether the peer ran. */
function checkNotes(stderr: string, peerExpected: boolean): void {
  assert.match(stderr, /^webgpu adapter: .+ via Dawn /m);
  if (/llvmpipe|lavapipe/.test(stderr)) assert.match(stderr, /software adapter .*its timings mean nothing/);
  if (peerExpected) assert.match(stderr, /the PyTorch peer ran on the CPU .*not a GPU/);
  else assert.match(stderr, /PyTorch peer not run: /);
}

test('bench --backend: an unknown backend, or a CPU-only option with webgpu, is a one-line error', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', BENCH, 'gemm', '--backend', 'cuda'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(
    r.stderr.trim(),
    /^error: option '--backend <name>' argument 'cuda' is invalid\. 'cuda' is not a bench backend \(allowed: native, webgpu\)$/,
  );
  const bf16 = spawnSync(process.execPath, ['--import', 'tsx', BENCH, 'moe', '--backend', 'webgpu', '--dtype', 'bf16'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(bf16.status, 1);
  assert.equal(bf16.stderr.trim(), '--backend webgpu: --dtype bf16 is for the CPU kernels (webgpu runs f32)');
});

const gpu = await webgpuOrSkip('bench --backend webgpu runs end to end');
if (gpu) {
  test('bench gemm --backend webgpu: one JSON line per shape, the torch.mm peer on the CPU when installed', async () => {
    const { rows, stderr } = await bench(['gemm', '--shapes', '16x8x12,33x17x9']);
    checkNotes(stderr, torchHere);
    assert.deepEqual(
      rows.map((r) => [r['bench'], r['backend'], r['m'], r['k'], r['n']]),
      [
        ['gemm', 'webgpu', 16, 8, 12],
        ['gemm', 'webgpu', 33, 17, 9],
      ],
    );
    for (const r of rows) {
      assert.ok((r['gflops'] as number) >= 0);
      if (!torchHere) continue;
      assert.equal(r['peer_device'], 'cpu');
      assert.ok(Math.abs((r['ratio'] as number) - (r['gflops'] as number) / (r['peer_gflops'] as number)) < 0.01, JSON.stringify(r));
    }
  });

  test('bench moe --backend webgpu --configs tiny: fwd and fwd+bwd lines, the MoE peer on the CPU when installed', async () => {
    const peer = torchHere && existsSync(join(PEER_DIR, 'moe_ref.py'));
    const { rows, stderr } = await bench(['moe', '--configs', 'tiny']);
    checkNotes(stderr, peer);
    if (!peer && torchHere) assert.match(stderr, /moe_ref\.py is not in /);
    assert.deepEqual(
      rows.map((r) => [r['bench'], r['backend'], r['config'], r['mode']]),
      [
        ['moe', 'webgpu', 'tiny', 'fwd'],
        ['moe', 'webgpu', 'tiny', 'fwd+bwd'],
      ],
    );
    for (const r of rows) {
      assert.ok((r['tokens_per_s'] as number) > 0, JSON.stringify(r));
      if (peer) assert.equal(r['peer_device'], 'cpu');
    }
  });
}
