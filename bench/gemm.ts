// GEMM throughput of the native addon: C[m,n] = A[m,k] · B[k,n], float32.
//   npm run bench -- gemm [--json] [--threads N] [--shapes 1024x1024x1024,...]
import type { Command } from 'commander';

import { loadNativeAddon } from '../src/backend/native/addon.js';
import { addCommonOptions, median, table, timeRuns, type CommonOptions } from './util.js';

/** (m, k, n) */
export const DEFAULT_SHAPES: Array<[number, number, number]> = [
  [1024, 1024, 1024],
  [4096, 512, 2048],
  [512, 512, 2048],
  [128, 512, 2048],
];

export interface GemmResult {
  bench: 'gemm';
  m: number;
  k: number;
  n: number;
  gflops: number;
  backend: 'native';
  isa: string;
  threads: number;
}

function parseShapes(s: string): Array<[number, number, number]> {
  return s.split(',').map((part) => {
    const dims = part.split('x').map(Number);
    if (dims.length !== 3 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new Error(`--shapes: expected MxKxN, got '${part}'`);
    }
    return dims as [number, number, number];
  });
}

export function runGemm(opts: CommonOptions & { shapes?: string }): void {
  const loaded = loadNativeAddon();
  if (!loaded.addon) {
    console.error(`gemm bench: native addon unavailable: ${loaded.reason}`);
    process.exitCode = 1;
    return;
  }
  const addon = loaded.addon;
  if (opts.threads !== undefined) addon.setNumThreads(opts.threads);
  const { isa, threads } = addon.cpuInfo();
  const shapes = opts.shapes ? parseShapes(opts.shapes) : DEFAULT_SHAPES;
  const results: GemmResult[] = [];
  for (const [m, k, n] of shapes) {
    const a = new Float32Array(m * k).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    const b = new Float32Array(k * n).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
    const c = new Float32Array(m * n);
    const times = timeRuns(() => addon.matmul(a, b, c, 1, m, k, n, false, false, 0, 0, false), {
      warmup: 3,
      minRuns: 7,
      minSeconds: 1,
    });
    const gflops = (2 * m * k * n) / median(times) / 1e9;
    const r: GemmResult = { bench: 'gemm', m, k, n, gflops: Math.round(gflops * 10) / 10, backend: 'native', isa, threads };
    results.push(r);
    if (opts.json) console.log(JSON.stringify(r));
  }
  if (!opts.json) {
    console.log(`native GEMM, float32, ${isa}, ${threads} threads (median of >= 7 runs)`);
    console.log(table(['m', 'k', 'n', 'GFLOP/s'], results.map((r) => [String(r.m), String(r.k), String(r.n), r.gflops.toFixed(1)])));
  }
}

export function register(program: Command): void {
  addCommonOptions(program.command('gemm').description('float32 GEMM throughput of the native addon'))
    .option('--shapes <list>', 'comma-separated MxKxN shapes (default: the 4 reference shapes)')
    .action((opts: CommonOptions & { shapes?: string }) => runGemm(opts));
}
