// GEMM throughput of the native addon: C[m,n] = A[m,k] · B[k,n], float32.
//   npm run bench -- gemm [--json] [--threads N] [--shapes 1024x1024x1024,...] [--isa avx2]
//   npm run bench -- gemm --backend webgpu [--shapes ...]: the WGSL matmul (bench/webgpu.ts)
import type { Command } from 'commander';

import { loadNativeAddon } from '../src/backend/native/addon.js';
import { BACKEND_OPTION_HELP, PEER_PYTHON_OPTION_HELP, parseBenchBackend, type BenchBackend } from './backend-option.js';
import { runGemmWebGpu } from './webgpu.js';
import { describeRoofline, measureRoofline, openblasCoreIsa, rooflineColumns } from './roofline.js';
import { execFileSync } from 'node:child_process';
import {
  FORCED_ISAS,
  ISA_OPTION_HELP,
  PEER_INSTALL_HINT,
  PEER_PYTHON,
  addCommonOptions,
  median,
  parseForcedIsa,
  peerBlas,
  table,
  timeRuns,
  torchPeerMissing,
  type CommonOptions,
  type ForcedIsa,
  type PeerBlas,
} from './util.js';

// torch.mm with OpenBLAS-openmp on the same shapes and threads: the GFLOP/s a PyTorch user gets.
const PEER_SCRIPT = `
import json, sys, time, statistics, torch
threads, shapes = int(sys.argv[1]), json.loads(sys.argv[2])
torch.set_num_threads(threads)
out = []
for m, k, n in shapes:
    a, b, c = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
    for _ in range(3): torch.mm(a, b, out=c)
    ts = []
    t_end = time.perf_counter() + 1.0
    while len(ts) < 7 or time.perf_counter() < t_end:
        t0 = time.perf_counter(); torch.mm(a, b, out=c); ts.append(time.perf_counter() - t0)
        if len(ts) >= 50: break
    out.append(2 * m * k * n / statistics.median(ts) / 1e9)
print(json.dumps(out))
`;

function peerGflops(shapes: Array<[number, number, number]>, threads: number, blas: PeerBlas): number[] {
  const out = execFileSync(PEER_PYTHON, ['-c', PEER_SCRIPT, String(threads), JSON.stringify(shapes)], {
    encoding: 'utf8',
    env: blas.env,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as number[];
}

/** (m, k, n); the last three are MoE-router-like skinny shapes: small N, small K, small M */
export const DEFAULT_SHAPES: Array<[number, number, number]> = [
  [1024, 1024, 1024],
  [4096, 512, 2048],
  [512, 512, 2048],
  [128, 512, 2048],
  [2048, 128, 8],
  [2048, 8, 128],
  [8, 2048, 128],
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
  /** torch.mm (OpenBLAS-openmp) on the same shape and threads, when installed */
  peer_gflops?: number;
  ratio?: number;
  /** OpenBLAS's kernel family in the peer's process (bench/util.ts peerBlas). */
  peer_blas_core?: string;
  /** gflops over the measured FMA peak of moekit's ISA on this host (bench/roofline.ts). */
  peak_fraction?: number;
  /** peer_gflops over the FMA peak of its OpenBLAS kernels' ISA. */
  peer_peak_fraction?: number;
  /** The highest ratio any kernel could reach against this peer run: moekit's ISA's FMA peak over the peer's rate. */
  ratio_ceiling?: number;
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

type GemmOptions = CommonOptions & {
  shapes?: string;
  peer?: boolean;
  peerBlasEnv?: boolean;
  isa?: ForcedIsa;
  backend: BenchBackend;
  peerPython?: string;
};

/** The GPU target shape: fp32 4096^3. */
const WEBGPU_SHAPES: Array<[number, number, number]> = [[4096, 4096, 4096]];

export function runGemm(opts: GemmOptions): void {
  const loaded = loadNativeAddon();
  if (!loaded.addon) {
    console.error(`gemm bench: native addon unavailable: ${loaded.reason}`);
    process.exitCode = 1;
    return;
  }
  const addon = loaded.addon;
  if (opts.threads !== undefined) addon.setNumThreads(opts.threads);
  if (opts.isa) {
    const want = FORCED_ISAS[opts.isa].moekitIsa;
    const got = addon.setIsa(want);
    if (got !== want) {
      console.error(`gemm bench: --isa ${opts.isa}: this CPU runs at most moekit's ${got} kernels`);
      process.exitCode = 1;
      return;
    }
  }
  const { isa, threads } = addon.cpuInfo();
  const shapes = opts.shapes ? parseShapes(opts.shapes) : DEFAULT_SHAPES;
  const missing = opts.peer === false ? 'skipped (--no-peer)' : torchPeerMissing();
  const blas = missing === null ? peerBlas({ keepEnv: opts.peerBlasEnv, isa: opts.isa }) : null;
  const peerIsa = blas ? openblasCoreIsa(blas.core) : null;
  const roof = measureRoofline([isa, peerIsa]);
  if (!opts.json) console.log(describeRoofline(roof));
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
  }
  if (blas) {
    if (!opts.json) console.log(`torch.mm peer: OpenBLAS-openmp, ${blas.core} kernels, ${blas.note}`);
    const peer = peerGflops(shapes, threads, blas);
    results.forEach((r, i) => {
      r.peer_blas_core = blas.core;
      r.peer_gflops = Math.round(peer[i]! * 10) / 10;
      r.ratio = Math.round((r.gflops / peer[i]!) * 1000) / 1000;
    });
  }
  for (const r of results) Object.assign(r, rooflineColumns(roof, r, r.peer_gflops ? { isa: peerIsa, gflops: r.peer_gflops } : undefined));
  if (!blas && !opts.json) console.log(`PyTorch/OpenBLAS peer not run: ${missing}. To compare: ${PEER_INSTALL_HINT}`);
  if (opts.json) {
    for (const r of results) console.log(JSON.stringify(r));
  } else {
    console.log(`native GEMM, float32, ${isa}, ${threads} threads (median of >= 7 runs)`);
    console.log(
      table(
        ['m', 'k', 'n', 'isa', 'GFLOP/s', 'torch BLAS', 'torch GFLOP/s', 'ratio', 'of peak', 'torch of peak', 'ratio ceiling'],
        results.map((r) => [
          String(r.m),
          String(r.k),
          String(r.n),
          r.isa,
          r.gflops.toFixed(1),
          r.peer_blas_core ?? '-',
          r.peer_gflops?.toFixed(1) ?? '-',
          r.ratio?.toFixed(3) ?? '-',
          r.peak_fraction?.toFixed(3) ?? '-',
          r.peer_peak_fraction?.toFixed(3) ?? '-',
          r.ratio_ceiling?.toFixed(3) ?? '-',
        ]),
      ),
    );
  }
}

export function register(program: Command): void {
  addCommonOptions(program.command('gemm').description('float32 GEMM throughput of the native addon'))
    .option('--shapes <list>', 'comma-separated MxKxN shapes (default: 4 reference shapes and 3 skinny ones)')
    .option('--no-peer', 'skip the torch.mm (OpenBLAS) peer')
    .option(
      '--peer-blas-env',
      'keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE from the environment for the peer (dropped by default: bench/util.ts peerBlas)',
    )
    .option('--isa <name>', ISA_OPTION_HELP, parseForcedIsa)
    .option('--backend <name>', BACKEND_OPTION_HELP, parseBenchBackend, 'native')
    .option('--peer-python <path>', PEER_PYTHON_OPTION_HELP)
    .action((opts: GemmOptions, cmd: Command) => {
      if (opts.backend === 'webgpu' && (opts.isa || opts.threads))
        cmd.error(`--backend webgpu: ${opts.isa ? '--isa' : '--threads'} is for the CPU kernels`);
      return opts.backend === 'webgpu'
        ? runGemmWebGpu(opts.shapes ? parseShapes(opts.shapes) : WEBGPU_SHAPES, {
            json: opts.json,
            peer: opts.peer !== false,
            peerPython: opts.peerPython ?? PEER_PYTHON,
          })
        : runGemm(opts);
    });
}
