// `npm run bench -- moe [--json] [--configs ...]`: one MoE layer (router + SwiGLU experts +
// weighted combine + load-balancing loss), forward and forward+backward, on four configs;
// with Debian's python3-torch + libopenblas0-openmp, the PyTorch peer runs in the same command
// and each line gets the ratio moekit / PyTorch, plus the peer's peak RSS (bench/peer_rss.py) next
// to ours (rss_ratio <= 1: no more memory than PyTorch). Both sides measure each row in
// --repeats separate processes (default 3, the peer's own default) and report the median. The
// two sides take turns config by config (ours then the peer's, the next repeat the other way
// round), so that a ratio compares runs made a minute or so apart, not one side's whole run
// against the other's on a host whose speed drifts. `--isa avx2` runs moekit's AVX2 kernels and
// the peer's OpenBLAS Haswell kernels (bench/util.ts FORCED_ISAS); every row names both.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { backendInfo } from '../src/backend/index.js';
import { loadNativeAddon } from '../src/backend/native/addon.js';
import { benchMoeLayer } from './moe-layer.js';
import { manualSeed, noGrad, randn, useThroughputGc, withAutocast } from '../src/index.js';
import { BatchLoader, TokenWindows } from '../src/data/batches.js';
import { AdamW } from '../src/optim/adamw.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import {
  CtMoeGPT,
  type PresetName,
  batchTensors,
  experimentConfig,
  loadCtMoeData,
  resolveVariant,
} from '../src/experiments/ctmoe/index.js';
import { bf16Comparison } from './moe-bf16.js';
import { BACKEND_OPTION_HELP, PEER_PYTHON_OPTION_HELP, parseBenchBackend, type BenchBackend } from './backend-option.js';
import { runMoeWebGpu } from './webgpu.js';
import { describeRoofline, measureRoofline, openblasCoreIsa, rooflineColumns } from './roofline.js';
import {
  FORCED_ISAS,
  ISA_OPTION_HELP,
  PEER_INSTALL_HINT,
  PEER_PYTHON,
  median,
  parseForcedIsa,
  defaultPeerDir,
  peerBlas,
  torchPeerMissing,
  warmUp,
  type ForcedIsa,
  type PeerBlas,
} from './util.js';

interface MoeBenchConfig {
  dModel: number;
  dFf: number;
  experts: number;
  topK: number;
  tokens: number;
  /** The peer script's name for this config. */
  peer: string;
}

export const MOE_CONFIGS: Record<string, MoeBenchConfig> = {
  small: { dModel: 128, dFf: 256, experts: 8, topK: 2, tokens: 2048, peer: 'small' },
  'ct-moe': { dModel: 512, dFf: 2048, experts: 16, topK: 2, tokens: 4096, peer: 'ct-moe-paper' },
  'olmoe-like': { dModel: 2048, dFf: 1024, experts: 64, topK: 8, tokens: 512, peer: 'olmoe-like' },
  'mixtral-like': { dModel: 1024, dFf: 3584, experts: 8, topK: 2, tokens: 1024, peer: 'mixtral-like' },
};

/** --backend webgpu: the issue's GPU targets by default; 'tiny' checks the bench end to end on a software adapter. */
const WEBGPU_DEFAULT_CONFIGS = ['ct-moe', 'mixtral-like'];
const WEBGPU_CONFIGS: Record<string, MoeBenchConfig> = {
  ...MOE_CONFIGS,
  tiny: { dModel: 16, dFf: 32, experts: 4, topK: 2, tokens: 64, peer: 'tiny' },
};

type Mode = 'fwd' | 'fwd+bwd';

type GcPolicy = 'throughput' | 'default';

/** In a child: applies the policy the parent asked for and says which one is in effect. */
function applyGcPolicy(v8DefaultGc: boolean): GcPolicy {
  return !v8DefaultGc && useThroughputGc() ? 'throughput' : 'default';
}

export interface Row {
  bench: 'moe';
  config: string;
  mode: Mode;
  tokens_per_s: number;
  gflops: number;
  peak_rss_mb: number;
  /** RSS before the layer was built (Node's own baseline, with moekit loaded): the bf16 comparison's growth column. */
  start_rss_mb?: number;
  backend: string;
  /** The native kernels' instruction set in moekit's process ('-' off the native backend). */
  isa: string;
  /** V8's GC policy in moekit's process: 'throughput' (useThroughputGc, as moekit's CLI runs) or 'default'. */
  v8_gc: GcPolicy;
  peer_tokens_per_s?: number;
  ratio?: number;
  /** OpenBLAS's kernel family in the peer's processes (bench/util.ts peerBlas). */
  peer_blas_core?: string;
  /** The peer's peak RSS for this (config, mode): the lower of its two dispatch styles. */
  peer_peak_rss_mb?: number;
  /** peak_rss_mb / peer_peak_rss_mb (<= 1: moekit needs no more memory than PyTorch). */
  rss_ratio?: number;
  /** gflops over the measured FMA peak of moekit's ISA on this host (bench/roofline.ts). */
  peak_fraction?: number;
  /** The peer's expert GFLOP/s over the FMA peak of its OpenBLAS kernels' ISA. */
  peer_peak_fraction?: number;
  /** The highest ratio any moekit kernel could reach against this peer run: the FMA peak over the peer's rate. */
  ratio_ceiling?: number;
}

/** Expert-MLP FLOPs: 2·3·d·f·T·k forward, 3x that for forward+backward (as the peer counts). */
function expertFlops(c: MoeBenchConfig, mode: Mode): number {
  const f = 2 * 3 * c.dModel * c.dFf * c.tokens * c.topK;
  return mode === 'fwd' ? f : 3 * f;
}

/** The instruction set moekit's kernels run in this process ('-' when the backend is not native). */
function kernelIsa(): string {
  return backendInfo().name === 'native' ? (loadNativeAddon().addon?.cpuInfo().isa ?? '-') : '-';
}

/**
 * Runs in a child process so each row's peak RSS is its own. bf16 (--dtype bf16): the layer built
 * in bf16 (its `dtype` option), its input cast; autocast (--dtype bf16 --autocast): the f32 layer
 * and input, the forward under withAutocast('bf16').
 */
function measure(name: string, mode: Mode, v8Gc: GcPolicy, dtype: 'f32' | 'bf16' | 'autocast' = 'f32'): Row {
  const c = MOE_CONFIGS[name]!;
  const startRss = process.memoryUsage().rss;
  const stored = dtype === 'autocast' ? 'f32' : dtype;
  const layer = benchMoeLayer(c, stored);
  const x = randn([c.tokens, c.dModel]).to(stored);
  const dy = randn([c.tokens, c.dModel]).to(stored);
  const forward = (xi: Tensor) => (dtype === 'autocast' ? withAutocast('bf16', () => layer.forward(xi)) : layer.forward(xi));
  const run =
    mode === 'fwd'
      ? () => noGrad(() => forward(x)).dataSync()
      : () => {
          layer.zeroGrad();
          const xi = x.detach().requiresGrad_();
          forward(xi).backward(dy);
        };
  const last = warmUp(run);
  const runs = Math.min(50, Math.max(5, Math.ceil(3000 / last)));
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    run();
    times.push((performance.now() - t0) / 1000);
  }
  const s = median(times);
  return {
    bench: 'moe',
    config: name,
    mode,
    tokens_per_s: Math.round(c.tokens / s),
    gflops: +(expertFlops(c, mode) / s / 1e9).toFixed(1),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    start_rss_mb: Math.round(startRss / 2 ** 20),
    backend: backendInfo().name,
    isa: kernelIsa(),
    v8_gc: v8Gc,
  };
}

/** The run with the median throughput (the peer aggregates its process repeats the same way), with the highest peak RSS of all runs. */
function medianRow(runs: Row[]): Row {
  const sorted = [...runs].sort((a, b) => a.tokens_per_s - b.tokens_per_s);
  const mid = sorted[(sorted.length - 1) >> 1]!;
  return { ...mid, peak_rss_mb: Math.max(...runs.map((r) => r.peak_rss_mb)) };
}

/**
 * One training step of a CT-MoE preset's Full variant (its real model, AdamW, grad clipping, as
 * src/experiments/ctmoe/train.ts runs it, minus logging / eval / checkpoints), in phases so that
 * a profile (bench/train-profile.ts) can time each; `step` runs all four.
 */
export function ctmoeTrainStep(preset: PresetName = 'tiny') {
  const variant = resolveVariant('CT-MoE-Full');
  const cfg = experimentConfig(preset, variant.overrides);
  const data = loadCtMoeData(cfg.vocabSize);
  manualSeed(cfg.seed);
  const model = new CtMoeGPT(cfg, variant.flags);
  const optimizer = new AdamW(
    [
      { params: model.otherParameters(), lr: cfg.lr, weightDecay: cfg.weightDecay },
      { params: model.topologyParameters(), lr: cfg.lr * cfg.sLrScale, weightDecay: 0 },
    ],
    { lr: cfg.lr, betas: cfg.betas, eps: 1e-8 },
  );
  const rng = new Generator(cfg.seed + 1);
  const loader = new BatchLoader(new TokenWindows(data.train, cfg.seqLen), { batchSize: cfg.batchSize, random: () => rng.uniform() });
  const params = model.parameters();
  model.train();
  const phases = {
    forward: () => {
      const { input, target } = batchTensors(loader.next());
      model.zeroGrad();
      return model.loss(input, target).total;
    },
    backward: (total: Tensor) => total.backward(),
    clip: () => clipGradNorm(params, cfg.gradClip),
    optimizer: (total: Tensor) => {
      optimizer.step();
      total.item();
    },
  };
  const step = () => {
    const total = phases.forward();
    phases.backward(total);
    phases.clip();
    phases.optimizer(total);
  };
  return { cfg, model, optimizer, phases, step };
}

/** Training throughput of ctmoeTrainStep('tiny'): warm-up (bench/util.ts warmUp), then the median of 20 timed steps. */
function measureCtmoeTrain(v8Gc: GcPolicy): Record<string, unknown> {
  const { cfg, step } = ctmoeTrainStep('tiny');
  warmUp(step);
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    step();
    times.push((performance.now() - t0) / 1000);
  }
  const s = median(times);
  return {
    bench: 'moe',
    config: 'ctmoe-tiny-train',
    mode: 'train-step',
    tokens_per_s: Math.round((cfg.batchSize * cfg.seqLen) / s),
    step_ms: +(s * 1000).toFixed(1),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    backend: backendInfo().name,
    isa: kernelIsa(),
    v8_gc: v8Gc,
  };
}

/** The peer's script folder (bench/util.ts defaultPeerDir; `--peer-dir` names another). */
let PEER_DIR = defaultPeerDir();

function peerAvailable(): string | null {
  if (!existsSync(join(PEER_DIR, 'bench.py'))) return `the peer script is not at ${PEER_DIR} (--peer-dir names its folder)`;
  return torchPeerMissing();
}

/** One process repeat of the peer on one config: each (style, mode)'s per-process median time (s). */
function runPeerOnce(name: string, blas: PeerBlas): { style: string; mode: Mode; median_s: number; tokens: number }[] {
  const dir = mkdtempSync(join(tmpdir(), 'moekit-peer-'));
  const out = join(dir, 'results.json');
  try {
    execFileSync(
      PEER_PYTHON,
      [
        'bench.py',
        '--backends',
        'openblas-openmp',
        '--repeats',
        '1',
        '--wait-idle-s',
        '30',
        '--configs',
        MOE_CONFIGS[name]!.peer,
        '--out',
        out,
        '--md',
        join(dir, 'results.md'),
      ],
      { cwd: PEER_DIR, env: blas.env, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const summary = (
      JSON.parse(readFileSync(out, 'utf8')) as { summary: { moe: { style: string; mode: Mode; median_s: number; tokens: number }[] }[] }
    ).summary;
    return summary[0]!.moe;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The peer's tokens/s per (config, mode) as its own summary computes it from process repeats
 * (median over them of the per-process median time, per style), best of its two styles.
 */
function peerThroughput(repeatsByConfig: Map<string, ReturnType<typeof runPeerOnce>[]>): Map<string, number> {
  const best = new Map<string, number>();
  for (const [name, reps] of repeatsByConfig) {
    const times = new Map<string, number[]>(); // style|mode -> per-repeat median times
    for (const row of reps.flat()) append(times, `${row.style}|${row.mode}`, row.median_s);
    for (const row of reps[0]!) {
      const key = `${MOE_CONFIGS[name]!.peer}|${row.mode}`;
      best.set(key, Math.max(best.get(key) ?? 0, row.tokens / median(times.get(`${row.style}|${row.mode}`)!)));
    }
  }
  return best;
}

/**
 * The peer's peak RSS (MB) per (config, mode): bench/peer_rss.py builds the peer's layer as
 * bench.py does (imports its moe_ref, read-only) and runs a few calls of the mode in a fresh
 * process per style (so each peak is its own, like our per-row child processes); the lower of
 * the two styles is kept.
 */
function runPeerRss(names: string[], blas: PeerBlas): Map<string, number> {
  const script = new URL('./peer_rss.py', import.meta.url).pathname;
  const best = new Map<string, number>();
  for (const n of names) {
    const peer = MOE_CONFIGS[n]!.peer;
    for (const mode of ['fwd', 'fwd+bwd'] as Mode[]) {
      for (const style of ['naive', 'sorted']) {
        const out = execFileSync(PEER_PYTHON, [script, PEER_DIR, peer, mode, style, '2'], {
          env: blas.env,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const mb = (JSON.parse(out.trim().split('\n').pop()!) as { peak_rss_mb: number }).peak_rss_mb;
        const key = `${peer}|${mode}`;
        best.set(key, Math.min(best.get(key) ?? Infinity, mb));
      }
    }
  }
  return best;
}

/** Runs `moe --child <spec>` in a fresh process (its own peak RSS, MOEKIT_ISA capped by --isa) and returns its JSON line. */
function runChild<T extends { isa: string }>(spec: string, v8DefaultGc: boolean, isa: ForcedIsa | undefined): T {
  const args = [
    '--import',
    'tsx',
    new URL('./main.ts', import.meta.url).pathname,
    'moe',
    '--child',
    spec,
    ...(v8DefaultGc ? ['--v8-default-gc'] : []),
  ];
  const want = isa ? FORCED_ISAS[isa].moekitIsa : undefined;
  const out = execFileSync(process.execPath, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: want ? { ...process.env, MOEKIT_ISA: want } : process.env,
  });
  const row = JSON.parse(out.trim().split('\n').pop()!) as T;
  if (want && row.isa !== want) throw new Error(`--isa ${isa}: moekit ran its ${row.isa} kernels (this CPU has no ${want}?)`);
  return row;
}

function append<T>(m: Map<string, T[]>, key: string, v: T): void {
  const list = m.get(key);
  if (list) list.push(v);
  else m.set(key, [v]);
}

export function register(program: Command): void {
  program
    .command('moe')
    .description('one MoE layer, forward and forward+backward, against the PyTorch peer when installed')
    .option('--json', 'one JSON line per row')
    .option(
      '--configs <names...>',
      `subset of ${Object.keys(MOE_CONFIGS).join(', ')} (default: all; with --backend webgpu: ${WEBGPU_DEFAULT_CONFIGS.join(', ')}, or tiny)`,
    )
    .option('--no-peer', 'skip the PyTorch peer')
    .option('--no-peer-speed', "skip the peer's throughput run (keep its peak-RSS probe)")
    .option('--no-peer-rss', "skip the peer's peak-RSS probe (bench/peer_rss.py)")
    .option(
      '--peer-blas-env',
      'keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE from the environment for the peer (dropped by default: bench/util.ts peerBlas)',
    )
    .option('--no-ctmoe-train', 'skip the CT-MoE tiny-preset training-throughput line')
    .option('--repeats <n>', "processes per row, on both sides: each row is the median over them (the peer's own default is 3)", '3')
    .option(
      '--v8-default-gc',
      "run moekit under V8's default GC policy, not useThroughputGc() as moekit's CLI does (src/tensor/gc-policy.ts)",
    )
    .option('--dtype <dtype>', 'f32, or bf16: the layer in bf16 against moekit f32 and PyTorch bf16 (fwd+bwd, bench/moe-bf16.ts)', 'f32')
    .option('--autocast', "with --dtype bf16: also the f32 layer under withAutocast('bf16') (its own columns)")
    .option('--isa <name>', ISA_OPTION_HELP, parseForcedIsa)
    .option(
      '--peer-dir <path>',
      "the peer's folder (bench.py, moe_ref.py); default ../shared/peers/torch-moe beside the checkout or, from a git worktree, beside its main checkout",
    )
    .option('--child <spec>', 'internal: measure one config:mode[:dtype] in this process')
    .option('--backend <name>', BACKEND_OPTION_HELP, parseBenchBackend, 'native')
    .option('--peer-python <path>', PEER_PYTHON_OPTION_HELP)
    .action(
      (
        opts: {
          json?: boolean;
          configs?: string[];
          backend: BenchBackend;
          peerPython?: string;
          peer: boolean;
          peerSpeed: boolean;
          peerRss: boolean;
          peerBlasEnv?: boolean;
          ctmoeTrain: boolean;
          repeats: string;
          v8DefaultGc?: boolean;
          isa?: ForcedIsa;
          peerDir?: string;
          child?: string;
          dtype: string;
          autocast?: boolean;
        },
        cmd: Command,
      ) => {
        if (opts.peerDir) PEER_DIR = opts.peerDir;
        if (opts.backend === 'webgpu') {
          if (opts.dtype !== 'f32' || opts.isa)
            cmd.error(
              `--backend webgpu: ${opts.isa ? `--isa ${opts.isa}` : `--dtype ${opts.dtype}`} is for the CPU kernels (webgpu runs f32)`,
            );
          const names = opts.configs ?? WEBGPU_DEFAULT_CONFIGS;
          const unknown = names.find((n) => !WEBGPU_CONFIGS[n]);
          if (unknown)
            cmd.error(`--configs: unknown config '${unknown}' (allowed with --backend webgpu: ${Object.keys(WEBGPU_CONFIGS).join(', ')})`);
          return runMoeWebGpu(Object.fromEntries(names.map((n) => [n, WEBGPU_CONFIGS[n]!])), PEER_DIR, {
            json: opts.json,
            peer: opts.peer,
            peerPython: opts.peerPython ?? PEER_PYTHON,
          });
        }
        opts.configs ??= Object.keys(MOE_CONFIGS);
        const v8DefaultGc = opts.v8DefaultGc === true;
        if (opts.child === 'ctmoe-tiny-train') {
          process.stdout.write(`${JSON.stringify(measureCtmoeTrain(applyGcPolicy(v8DefaultGc)))}\n`);
          return;
        }
        if (opts.child) {
          const [name, mode, dtype] = opts.child.split(':') as [string, Mode, 'f32' | 'bf16' | 'autocast' | undefined];
          process.stdout.write(`${JSON.stringify(measure(name, mode, applyGcPolicy(v8DefaultGc), dtype))}\n`);
          return;
        }
        if (opts.dtype !== 'f32' && opts.dtype !== 'bf16') throw new Error(`--dtype: '${opts.dtype}' is not f32 or bf16`);
        if (opts.autocast && opts.dtype !== 'bf16') throw new Error(`--autocast: only with --dtype bf16 (got --dtype ${opts.dtype})`);
        for (const n of opts.configs) {
          if (!MOE_CONFIGS[n]) throw new Error(`--configs: unknown config '${n}' (allowed: ${Object.keys(MOE_CONFIGS).join(', ')})`);
        }
        const repeats = Number(opts.repeats);
        if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`--repeats: '${opts.repeats}' is not a positive integer`);
        if (opts.dtype === 'bf16') {
          bf16Comparison(opts.configs, repeats, {
            json: opts.json === true,
            peer: opts.peer,
            autocast: opts.autocast === true,
            v8DefaultGc,
            peerDir: PEER_DIR,
            runChild: <T extends { isa: string }>(spec: string, gc: boolean) => runChild<T>(spec, gc, opts.isa),
          });
          return;
        }
        if (!opts.json)
          console.log(
            `${backendInfo().reason}${opts.isa ? `; the measured processes run MOEKIT_ISA=${FORCED_ISAS[opts.isa].moekitIsa} (--isa)` : ''}; V8 GC policy: ${v8DefaultGc ? 'default (--v8-default-gc)' : 'useThroughputGc(), as the moekit CLI runs'}`,
          );
        const missing = opts.peer ? peerAvailable() : 'skipped (--no-peer)';
        const peerSpeed = missing === null && opts.peerSpeed;
        const blas = missing === null ? peerBlas({ keepEnv: opts.peerBlasEnv, isa: opts.isa }) : null;
        if (blas && !opts.json) console.log(`PyTorch peer's BLAS: OpenBLAS-openmp, ${blas.core} kernels, ${blas.note}`);
        const peerIsa = blas ? openblasCoreIsa(blas.core) : null;
        const roof = measureRoofline([opts.isa ? FORCED_ISAS[opts.isa].moekitIsa : kernelIsa(), peerIsa]);
        if (!opts.json) console.log(describeRoofline(roof));
        const ours = new Map<string, Row[]>();
        const peerRuns = new Map<string, ReturnType<typeof runPeerOnce>[]>();
        for (let rep = 0; rep < repeats; rep++) {
          for (const name of opts.configs) {
            const turns = [
              () =>
                (['fwd', 'fwd+bwd'] as Mode[]).forEach((mode) =>
                  append(ours, `${name}:${mode}`, runChild<Row>(`${name}:${mode}`, v8DefaultGc, opts.isa)),
                ),
            ];
            if (peerSpeed) turns.push(() => append(peerRuns, name, runPeerOnce(name, blas!)));
            if (rep % 2 === 1) turns.reverse(); // the peer first every other repeat: drift hits both sides alike
            for (const turn of turns) turn();
          }
        }
        const rows = [...ours.values()].map(medianRow);
        if (blas) {
          const peer = peerThroughput(peerRuns);
          const rss = opts.peerRss ? runPeerRss(opts.configs, blas) : new Map<string, number>();
          for (const r of rows) {
            r.peer_blas_core = blas.core;
            const key = `${MOE_CONFIGS[r.config]!.peer}|${r.mode}`;
            const p = peer.get(key);
            if (p) {
              r.peer_tokens_per_s = Math.round(p);
              r.ratio = +(r.tokens_per_s / p).toFixed(3);
            }
            if (p) {
              const peerGflops = (p * expertFlops(MOE_CONFIGS[r.config]!, r.mode)) / MOE_CONFIGS[r.config]!.tokens / 1e9;
              Object.assign(r, rooflineColumns(roof, r, { isa: peerIsa, gflops: peerGflops }));
            }
            const m = rss.get(key);
            if (m) {
              r.peer_peak_rss_mb = m;
              r.rss_ratio = +(r.peak_rss_mb / m).toFixed(3);
            }
          }
        } else {
          for (const r of rows) Object.assign(r, rooflineColumns(roof, r));
          // on stderr with --json, so that a run without the peer says why
          (opts.json ? console.error : console.log)(
            `PyTorch peer not run: ${missing}. To compare: ${PEER_INSTALL_HINT} (then rerun; the peer is ../shared/peers/torch-moe/bench.py).`,
          );
        }
        let train: Record<string, unknown> | null = null;
        if (opts.ctmoeTrain) {
          train = runChild<Record<string, unknown> & { isa: string }>('ctmoe-tiny-train', v8DefaultGc, opts.isa);
        }
        if (opts.json) {
          for (const r of rows) console.log(JSON.stringify(r));
          if (train) console.log(JSON.stringify(train));
        } else {
          console.table(
            rows.map((r) => ({
              config: r.config,
              mode: r.mode,
              isa: r.isa,
              'tok/s': r.tokens_per_s,
              GFLOP_s: r.gflops,
              'peak MB': r.peak_rss_mb,
              'torch BLAS': r.peer_blas_core ?? '-',
              'torch tok/s': r.peer_tokens_per_s ?? '-',
              ratio: r.ratio ?? '-',
              'torch peak MB': r.peer_peak_rss_mb ?? '-',
              'MB ratio': r.rss_ratio ?? '-',
              'of peak': r.peak_fraction ?? '-',
              'torch of peak': r.peer_peak_fraction ?? '-',
              'ratio ceiling': r.ratio_ceiling ?? '-',
            })),
          );
          if (train)
            console.log(
              `ctmoe-tiny-train (CT-MoE-Full, tiny preset, ${train['isa']}): ${train['tokens_per_s']} tokens/s, ${train['step_ms']} ms/step, peak ${train['peak_rss_mb']} MB`,
            );
        }
      },
    );
}
