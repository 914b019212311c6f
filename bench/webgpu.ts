// `gemm --backend webgpu` and `moe --backend webgpu`: the same JSON lines as the CPU runs, timed
// on the WebGPU device with its queue drained (each timed call ends with an awaited read of one
// element, which waits for every command submitted before it). The PyTorch peer
// (bench/peer_gpu.py) runs in the same command, on CUDA when torch has it, else on the CPU; the
// output says which, and that a software adapter's timings mean nothing.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { backendInfo, initBackend, setBackend } from '../src/backend/index.js';
import { openWebGPUBackend } from '../src/backend/webgpu/index.js';
import { manualSeed, matmul, noGrad, randn } from '../src/index.js';
import { benchMoeLayer } from './moe-layer.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { median } from './util.js';

export interface WebGpuBenchOptions {
  json?: boolean;
  peer: boolean;
  /** The python that has torch (the accelerator machine's is `python3` on PATH, not Debian's). */
  peerPython: string;
}

export interface MoeShape {
  dModel: number;
  dFf: number;
  experts: number;
  topK: number;
  tokens: number;
}

/** Adapters that are a CPU in disguise: correctness only, never timings. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|softpipe|swiftshader|software/i;

/** The open webgpu backend and its adapter line, or null after saying why none opens (exit code 1). */
async function openBench(): Promise<{ adapter: string; software: boolean } | null> {
  const opened = await openWebGPUBackend();
  if (!opened.backend) {
    console.error(`bench --backend webgpu: ${opened.reason}`);
    process.exitCode = 1;
    return null;
  }
  await initBackend('webgpu');
  setBackend('webgpu');
  return { adapter: opened.description, software: SOFTWARE_ADAPTER.test(opened.description) };
}

/** Wait until the device has finished everything enqueued so far (reads one element of t). */
async function drain(t: Tensor): Promise<void> {
  const b = t.backend;
  const zeros = t.shape.map(() => 0);
  await b.read(
    b.sliceCopy(
      t.storage,
      t.shape,
      zeros,
      t.shape.map(() => 1),
    ),
  );
}

/** Seconds per call of fn (median), each call drained; warm-up first (pipeline compiles, pool fills). */
async function timeDevice(fn: () => Tensor, opts: { warmup?: number; minRuns?: number; maxRuns?: number; seconds?: number } = {}) {
  const { warmup = 2, minRuns = 5, maxRuns = 30, seconds = 2 } = opts;
  for (let i = 0; i < warmup; i++) await drain(fn());
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxRuns) {
    // GPU buffers return to the pool when their tensors are collected; V8 does not see their size
    (globalThis as { gc?: () => void }).gc?.();
    const t0 = performance.now();
    await drain(fn());
    times.push((performance.now() - t0) / 1000);
    if (times.length >= minRuns && performance.now() - start >= seconds * 1000) break;
  }
  return median(times);
}

interface Peer {
  device: string;
  device_name: string;
  torch: string;
  results: Array<Record<string, number | string>>;
}

/** The peer's JSON, or why it did not run. */
function runPeer(opts: WebGpuBenchOptions, args: string[]): Peer | string {
  if (!opts.peer) return 'skipped (--no-peer)';
  const script = new URL('./peer_gpu.py', import.meta.url).pathname;
  try {
    const out = execFileSync(opts.peerPython, [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.trim().split('\n').pop()!) as Peer;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return `${opts.peerPython} ${script} failed: ${(err.stderr || err.message).trim().split('\n').pop()}`;
  }
}

/** What the output says about the peer and the adapter, on stderr with --json (the JSON lines stay clean). */
function say(opts: WebGpuBenchOptions, adapter: { adapter: string; software: boolean }, peer: Peer | string): void {
  const log = opts.json ? console.error : console.log;
  log(`webgpu adapter: ${adapter.adapter}`);
  if (adapter.software)
    log('NOTE: this is a software adapter (the CPU running a GPU API): its timings mean nothing; this run checks that the bench works');
  if (typeof peer === 'string') log(`PyTorch peer not run: ${peer}`);
  else if (peer.device !== 'cuda')
    log(
      `NOTE: torch.cuda.is_available() is false here: the PyTorch peer ran on the CPU (torch ${peer.torch}), not a GPU; its ratio is not the GPU target`,
    );
  else log(`PyTorch peer: torch ${peer.torch} on CUDA (${peer.device_name}), fp32 with TF32 off`);
}

export async function runGemmWebGpu(shapes: Array<[number, number, number]>, opts: WebGpuBenchOptions): Promise<void> {
  const adapter = await openBench();
  if (!adapter) return;
  manualSeed(1);
  const rows: Array<Record<string, unknown>> = [];
  for (const [m, k, n] of shapes) {
    const a = randn([m, k]);
    const b = randn([k, n]);
    const s = await timeDevice(() => matmul(a, b));
    rows.push({
      bench: 'gemm',
      m,
      k,
      n,
      gflops: Math.round(((2 * m * k * n) / s / 1e9) * 10) / 10,
      backend: 'webgpu',
      isa: '-',
      threads: 0,
    });
  }
  const peer = runPeer(opts, ['gemm', JSON.stringify(shapes)]);
  say(opts, adapter, peer);
  if (typeof peer !== 'string')
    rows.forEach((r, i) => {
      const p = peer.results[i]!['gflops'] as number;
      Object.assign(r, {
        peer_gflops: Math.round(p * 10) / 10,
        ratio: Math.round(((r['gflops'] as number) / p) * 1000) / 1000,
        peer_device: peer.device,
        peer_device_name: peer.device_name,
      });
    });
  print(rows, opts);
}

export async function runMoeWebGpu(configs: Record<string, MoeShape>, peerDir: string, opts: WebGpuBenchOptions): Promise<void> {
  const adapter = await openBench();
  if (!adapter) return;
  const rows: Array<Record<string, unknown>> = [];
  for (const [name, c] of Object.entries(configs)) {
    const layer = benchMoeLayer(c);
    const x = randn([c.tokens, c.dModel]);
    const dy = randn([c.tokens, c.dModel]);
    const modes = {
      fwd: () => noGrad(() => layer.forward(x)),
      'fwd+bwd': () => {
        layer.zeroGrad();
        const xi = x.detach().requiresGrad_();
        layer.forward(xi).backward(dy);
        return xi.grad!;
      },
    };
    for (const [mode, fn] of Object.entries(modes)) {
      const s = await timeDevice(fn);
      const flops = 2 * 3 * c.dModel * c.dFf * c.tokens * c.topK * (mode === 'fwd' ? 1 : 3);
      rows.push({
        bench: 'moe',
        config: name,
        mode,
        tokens_per_s: Math.round(c.tokens / s),
        gflops: +(flops / s / 1e9).toFixed(1),
        peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
        backend: backendInfo().name,
        isa: '-',
        v8_gc: 'default',
      });
    }
  }
  const shapes = Object.entries(configs).map(([name, c]) => ({
    name,
    d_model: c.dModel,
    d_ff: c.dFf,
    experts: c.experts,
    top_k: c.topK,
    tokens: c.tokens,
  }));
  const peer = existsSync(join(peerDir, 'moe_ref.py'))
    ? runPeer(opts, ['moe', peerDir, JSON.stringify(shapes)])
    : `the peer's moe_ref.py is not in ${peerDir} (--peer-dir names its folder)`;
  say(opts, adapter, peer);
  if (typeof peer !== 'string')
    for (const r of rows) {
      const p = peer.results.find((q) => q['config'] === r['config'] && q['mode'] === r['mode'])!;
      const tps = p['tokens_per_s'] as number;
      Object.assign(r, {
        peer_tokens_per_s: Math.round(tps),
        ratio: +((r['tokens_per_s'] as number) / tps).toFixed(3),
        peer_device: peer.device,
        peer_device_name: peer.device_name,
        peer_style: p['style'],
      });
    }
  print(rows, opts);
}

/** JSON lines with --json, else a table. */
function print(rows: Array<Record<string, unknown>>, opts: WebGpuBenchOptions): void {
  if (opts.json) for (const r of rows) console.log(JSON.stringify(r));
  else console.table(rows);
}
