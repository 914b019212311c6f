// `npm run bench -- ctmoe-train [--presets tiny small] [--check]`: end-to-end training speed
// of the CT-MoE ablation's model (CT-MoE (Full): message passing and routing bias) against the
// PyTorch peer bench/ctmoe_train_peer.py (the same model written from the seed's description,
// eager fp32, Debian's python3-torch on OpenBLAS-openmp). One step = forward, backward, gradient
// clipping and the AdamW step with the two parameter groups, dropout on, the LB loss in the
// total: the training loop of src/experiments/ctmoe/train.ts without its logging, evaluation,
// checkpoints and lr schedule (a constant lr on both sides). Both sides run 2 threads, on the
// same batches of the real data (written once per preset), each measurement in a fresh
// process (its own peak RSS), taking turns per repeat (ours first, then the peer first).
// --check proves the two are one model: moekit's initial weights are loaded into the peer and
// the first step's loss (and, after one AdamW step, the next batch's loss) must agree to 1e-4.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { backendInfo } from '../src/backend/index.js';
import { BatchLoader, TokenWindows } from '../src/data/batches.js';
import {
  CtMoeGPT,
  type CtMoeExperimentConfig,
  type PresetName,
  PRESETS,
  type VariantFlags,
  batchTensors,
  experimentConfig,
  loadCtMoeData,
  resolveVariant,
} from '../src/experiments/ctmoe/index.js';
import { fromArray, manualSeed, tidy, useThroughputGc } from '../src/index.js';
import { AdamW } from '../src/optim/adamw.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { Generator } from '../src/tensor/random.js';
import { PEER_INSTALL_HINT, PEER_PYTHON, median, peerBlas, table, torchPeerMissing } from './util.js';

const VARIANT = 'CT-MoE-Full';
const THREADS = 2;
const PEER_SCRIPT = new URL('./ctmoe_train_peer.py', import.meta.url).pathname;
/** Largest |moekit − peer| of a loss in --check. */
export const CHECK_TOLERANCE = 1e-4;

type BenchConfig = CtMoeExperimentConfig & { flags: VariantFlags };

/** The preset's config as the ablation trains CT-MoE (Full), with its flags (what the peer reads). */
function benchConfig(preset: PresetName, overrides: Partial<CtMoeExperimentConfig> = {}): BenchConfig {
  const v = resolveVariant(VARIANT);
  return { ...experimentConfig(preset, { ...v.overrides, ...overrides }), flags: v.flags };
}

/** `n` training batches of the real data as int32 windows [n, B, T + 1] (input = window[:-1], target = window[1:]). */
function writeBatches(cfg: CtMoeExperimentConfig, n: number, file: string): void {
  const data = loadCtMoeData(cfg.vocabSize);
  const rng = new Generator(cfg.seed + 1);
  const loader = new BatchLoader(new TokenWindows(data.train, cfg.seqLen), { batchSize: cfg.batchSize, random: () => rng.uniform() });
  const T = cfg.seqLen;
  const out = new Int32Array(n * cfg.batchSize * (T + 1));
  for (let k = 0; k < n; k++) {
    const b = loader.next();
    for (let r = 0; r < cfg.batchSize; r++) {
      const at = (k * cfg.batchSize + r) * (T + 1);
      out.set(b.input.subarray(r * T, (r + 1) * T), at);
      out[at + T] = b.target[(r + 1) * T - 1]!;
    }
  }
  writeFileSync(file, out);
}

function readBatches(cfg: CtMoeExperimentConfig, file: string): { input: Int32Array; target: Int32Array }[] {
  const raw = new Int32Array(readFileSync(file).buffer.slice(0));
  const T = cfg.seqLen;
  const B = cfg.batchSize;
  const n = raw.length / (B * (T + 1));
  return Array.from({ length: n }, (_, k) => {
    const input = new Int32Array(B * T);
    const target = new Int32Array(B * T);
    for (let r = 0; r < B; r++) {
      const at = (k * B + r) * (T + 1);
      input.set(raw.subarray(at, at + T), r * T);
      target.set(raw.subarray(at + 1, at + T + 1), r * T);
    }
    return { input, target };
  });
}

/** The ablation's model and optimiser (train.ts), seeded by the config; step() returns the loss and gradient norm. */
function trainer(cfg: BenchConfig) {
  manualSeed(cfg.seed);
  const model = new CtMoeGPT(cfg, cfg.flags);
  const optimizer = new AdamW(
    [
      { params: model.otherParameters(), lr: cfg.lr, weightDecay: cfg.weightDecay },
      { params: model.topologyParameters(), lr: cfg.lr * cfg.sLrScale, weightDecay: 0 },
    ],
    { lr: cfg.lr, betas: cfg.betas, eps: 1e-8 },
  );
  const params = model.parameters();
  model.train();
  // each step in a tidy scope, as the trainer's (src/experiments/ctmoe/train.ts)
  const step = (b: { input: Int32Array; target: Int32Array }) =>
    tidy(
      () => {
        const { input, target } = batchTensors({ ...b, batch: cfg.batchSize, seqLen: cfg.seqLen });
        model.zeroGrad();
        const { total } = model.loss(input, target);
        total.backward();
        const gradNorm = clipGradNorm(params, cfg.gradClip);
        optimizer.step();
        const loss = total.item();
        model.zeroGrad();
        return { loss, gradNorm };
      },
      model,
      optimizer,
    );
  return { model, step };
}

interface SideRow {
  step_s: number;
  tokens_per_s: number;
  peak_rss_mb: number;
}

/** In a child: warm-up steps, then the median of the timed ones. */
function measureOurs(dir: string, warmup: number, steps: number): SideRow {
  useThroughputGc(); // as the CLI trains
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as BenchConfig;
  const batches = readBatches(cfg, join(dir, 'batches.i32'));
  const { step } = trainer(cfg);
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    step(batches[i % batches.length]!);
    if (i >= warmup) times.push((performance.now() - t0) / 1000);
  }
  const s = median(times);
  return { step_s: s, tokens_per_s: (cfg.batchSize * cfg.seqLen) / s, peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024) };
}

function runOurs(dir: string, warmup: number, steps: number): SideRow {
  const args = ['--import', 'tsx', new URL('./main.ts', import.meta.url).pathname, 'ctmoe-train', '--child', dir];
  args.push('--warmup', String(warmup), '--steps', String(steps));
  const out = execFileSync(process.execPath, args, {
    encoding: 'utf8',
    env: { ...process.env, MOEKIT_NUM_THREADS: String(THREADS) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out.trim().split('\n').pop()!) as SideRow;
}

function runPeer(env: NodeJS.ProcessEnv, args: string[]): Record<string, number> {
  const out = execFileSync(PEER_PYTHON, [PEER_SCRIPT, ...args], {
    encoding: 'utf8',
    env: { ...env, OMP_NUM_THREADS: String(THREADS) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
}

/** moekit's parameters in namedParameters order: one float32 file and an index of names and shapes. */
function writeWeights(model: CtMoeGPT, dir: string): void {
  const named = model.namedParameters();
  const total = named.reduce((n, [, p]) => n + p.size, 0);
  const flat = new Float32Array(total);
  let off = 0;
  for (const [, p] of named) {
    flat.set(p.dataSync(), off);
    off += p.size;
  }
  writeFileSync(join(dir, 'weights.bin'), flat);
  writeFileSync(join(dir, 'weights.json'), JSON.stringify(named.map(([name, p]) => ({ name, shape: p.shape }))));
}

interface CheckRow {
  preset: string;
  moekit_loss1: number;
  peer_loss1: number;
  diff1: number;
  moekit_loss2: number;
  peer_loss2: number;
  diff2: number;
  moekit_grad_norm: number;
  peer_grad_norm: number;
  ok: boolean;
}

/** Dropout off (the two sides draw different masks); everything else as trained. */
function check(preset: PresetName, env: NodeJS.ProcessEnv, dir: string): CheckRow {
  const cfg = benchConfig(preset, { dropout: 0 });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  writeBatches(cfg, 2, join(dir, 'batches.i32'));
  const batches = readBatches(cfg, join(dir, 'batches.i32'));
  const { model, step } = trainer(cfg);
  writeWeights(model, dir);
  const first = step(batches[0]!);
  model.zeroGrad();
  const b1 = batches[1]!;
  const loss2 = model
    .loss(fromArray(b1.input, [cfg.batchSize, cfg.seqLen]), fromArray(b1.target, [cfg.batchSize, cfg.seqLen]))
    .total.item();
  const peer = runPeer(env, [
    'check',
    join(dir, 'config.json'),
    join(dir, 'batches.i32'),
    join(dir, 'weights.bin'),
    join(dir, 'weights.json'),
  ]);
  const diff1 = Math.abs(first.loss - peer['loss1']!);
  const diff2 = Math.abs(loss2 - peer['loss2']!);
  return {
    preset,
    moekit_loss1: first.loss,
    peer_loss1: peer['loss1']!,
    diff1,
    moekit_loss2: loss2,
    peer_loss2: peer['loss2']!,
    diff2,
    moekit_grad_norm: first.gradNorm,
    peer_grad_norm: peer['grad_norm']!,
    ok: diff1 <= CHECK_TOLERANCE && diff2 <= CHECK_TOLERANCE,
  };
}

interface SpeedRow {
  bench: 'ctmoe-train';
  preset: string;
  tokens_per_step: number;
  tokens_per_s: number;
  step_ms: number;
  peak_rss_mb: number;
  peer_tokens_per_s?: number;
  peer_step_ms?: number;
  peer_peak_rss_mb?: number;
  /** moekit tokens/s / PyTorch tokens/s (target >= 1.5). */
  ratio?: number;
  backend: string;
  repeats: number;
}

function positive(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: '${v}' is not a positive integer`);
  return n;
}

export function register(program: Command): void {
  program
    .command('ctmoe-train')
    .description('CT-MoE (Full) training steps (forward + backward + AdamW) against the PyTorch peer, tokens/s and peak memory')
    .option('--presets <names...>', `subset of ${Object.keys(PRESETS).join(', ')}`, ['tiny', 'small'])
    .option('--warmup <n>', 'untimed steps per process', '3')
    .option('--steps <n>', 'timed steps per process (the median is kept)', '8')
    .option('--repeats <n>', 'processes per side and preset (median of their medians)', '3')
    .option('--check', "only prove the peer is the same model: moekit's initial weights in the peer, losses agree to 1e-4")
    .option('--no-peer', 'skip the PyTorch peer')
    .option(
      '--peer-omp-passive',
      "run the peer with OMP_WAIT_POLICY=PASSIVE: OpenMP's spinning threads (PyTorch's and OpenBLAS's) collapse on a loaded machine (docs/performance.md)",
    )
    .option('--json', 'one JSON line per row')
    .option('--child <dir>', 'internal: measure moekit on DIR/config.json and DIR/batches.i32 in this process')
    .action(
      (opts: {
        presets: string[];
        warmup: string;
        steps: string;
        repeats: string;
        check?: boolean;
        peer: boolean;
        peerOmpPassive?: boolean;
        json?: boolean;
        child?: string;
      }) => {
        const warmup = positive('--warmup', opts.warmup);
        const steps = positive('--steps', opts.steps);
        if (opts.child) {
          process.stdout.write(`${JSON.stringify(measureOurs(opts.child, warmup, steps))}\n`);
          return;
        }
        const repeats = positive('--repeats', opts.repeats);
        for (const p of opts.presets)
          if (!(p in PRESETS)) throw new Error(`--presets: unknown preset '${p}' (allowed: ${Object.keys(PRESETS).join(', ')})`);
        const presets = opts.presets as PresetName[];
        const missing = opts.peer ? torchPeerMissing() : 'skipped (--no-peer)';
        const found = missing === null ? peerBlas() : null;
        const blas = found && opts.peerOmpPassive ? { ...found, env: { ...found.env, OMP_WAIT_POLICY: 'PASSIVE' } } : found;
        if (!opts.json) {
          console.log(`${backendInfo().reason}; ${THREADS} threads on both sides (MOEKIT_NUM_THREADS, torch.set_num_threads)`);
          if (blas)
            console.log(
              `PyTorch peer: ${PEER_PYTHON}, OpenBLAS-openmp ${blas.core} kernels, ${blas.note}; OMP_WAIT_POLICY ${blas.env['OMP_WAIT_POLICY'] ?? 'unset (OpenMP spins)'}`,
            );
          else console.log(`PyTorch peer not run: ${missing}. To compare: ${PEER_INSTALL_HINT}`);
        }
        const dir = mkdtempSync(join(tmpdir(), 'moekit-ctmoe-train-'));
        try {
          if (opts.check) {
            if (!blas) throw new Error(`--check needs the PyTorch peer: ${missing}`);
            const rows = presets.map((p) => check(p, blas.env, dir));
            if (opts.json) for (const r of rows) console.log(JSON.stringify(r));
            else
              console.log(
                table(
                  ['preset', 'moekit loss 1', 'peer loss 1', '|diff|', 'moekit loss 2', 'peer loss 2', '|diff|', 'same model'],
                  rows.map((r) => [
                    r.preset,
                    r.moekit_loss1.toFixed(6),
                    r.peer_loss1.toFixed(6),
                    r.diff1.toExponential(1),
                    r.moekit_loss2.toFixed(6),
                    r.peer_loss2.toFixed(6),
                    r.diff2.toExponential(1),
                    r.ok ? `yes (<= ${CHECK_TOLERANCE})` : 'NO',
                  ]),
                ),
              );
            if (rows.some((r) => !r.ok)) process.exitCode = 1;
            return;
          }
          const rows: SpeedRow[] = [];
          for (const preset of presets) {
            const cfg = benchConfig(preset);
            writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
            writeBatches(cfg, warmup + steps, join(dir, 'batches.i32'));
            const ours: SideRow[] = [];
            const peer: Record<string, number>[] = [];
            for (let rep = 0; rep < repeats; rep++) {
              const turns = [() => ours.push(runOurs(dir, warmup, steps))];
              if (blas)
                turns.push(() =>
                  peer.push(
                    runPeer(blas.env, ['speed', join(dir, 'config.json'), join(dir, 'batches.i32'), String(warmup), String(steps)]),
                  ),
                );
              if (rep % 2 === 1) turns.reverse(); // the peer first every other repeat: drift hits both sides alike
              for (const t of turns) t();
            }
            const tokens = cfg.batchSize * cfg.seqLen;
            const s = median(ours.map((r) => r.step_s));
            const row: SpeedRow = {
              bench: 'ctmoe-train',
              preset,
              tokens_per_step: tokens,
              tokens_per_s: Math.round(tokens / s),
              step_ms: +(s * 1000).toFixed(1),
              peak_rss_mb: Math.max(...ours.map((r) => r.peak_rss_mb)),
              backend: backendInfo().name,
              repeats,
            };
            if (peer.length > 0) {
              const ps = median(peer.map((r) => r['step_s']!));
              row.peer_tokens_per_s = Math.round(tokens / ps);
              row.peer_step_ms = +(ps * 1000).toFixed(1);
              row.peer_peak_rss_mb = Math.max(...peer.map((r) => r['peak_rss_mb']!));
              row.ratio = +(ps / s).toFixed(3);
            }
            rows.push(row);
            if (opts.json) console.log(JSON.stringify(row));
          }
          if (!opts.json)
            console.log(
              table(
                [
                  'preset',
                  'tokens/step',
                  'moekit tok/s',
                  'torch tok/s',
                  'ratio',
                  'moekit ms/step',
                  'torch ms/step',
                  'moekit peak MB',
                  'torch peak MB',
                ],
                rows.map((r) => [
                  r.preset,
                  String(r.tokens_per_step),
                  String(r.tokens_per_s),
                  String(r.peer_tokens_per_s ?? '-'),
                  r.ratio === undefined ? '-' : `${r.ratio.toFixed(2)}x`,
                  r.step_ms.toFixed(1),
                  r.peer_step_ms?.toFixed(1) ?? '-',
                  String(r.peak_rss_mb),
                  String(r.peer_peak_rss_mb ?? '-'),
                ]),
              ),
            );
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
}
