// `moekit ablate`: the CT-MoE ablation (pingBenM/CT-MoE's four variants) end to end: train and
// evaluate every variant with a progress bar each (resuming unfinished ones, skipping finished
// ones), then write DIR/figures/*.svg|png and DIR/report.html and print the table.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type BackendName, backendInfo, initBackend, setBackend } from '../backend/registry.js';
import { type AblationProgress, type CtMoeAblationResults, RESULTS_JSON, runAblationAsync } from '../experiments/ctmoe/ablation.js';
import {
  type CtMoeExperimentConfig,
  INTEGER_FIELDS,
  PAPER_PRESET,
  PRESETS,
  type PresetName,
  VARIANTS,
  type VariantName,
  experimentConfig,
} from '../experiments/ctmoe/config.js';
import { FIGURES_DIR, writeAllFigures } from '../experiments/ctmoe/figures/index.js';
import { tableText, writeReport } from '../experiments/ctmoe/report.js';
import { checkTrainingMemory } from '../experiments/ctmoe/memory.js';
import { PRECISIONS, type Precision } from '../experiments/ctmoe/precision.js';
import { NONFINITE_POLICIES, type NonFinitePolicy } from '../experiments/nonfinite.js';
import { readJsonObjectSync } from '../io/json-file.js';
import { MAX_COUNT, parseFloatStrict, parseIntStrict, parsePositiveInt } from './args.js';
import { prepareOutDir } from './out-dir.js';
import { type ParallelMode, parallelLayout, startParallel } from '../dist/cli-parallel.js';
import type { DataParallel } from '../dist/data-parallel.js';
import type { ExpertParallel } from '../dist/expert-parallel.js';
import { DEFAULT_DASHBOARD_PORT, dashboardChild } from './dashboard.js';

/** Short names accepted by --variants besides the keys (case-insensitive). */
const VARIANT_ALIASES: Record<string, VariantName> = {
  full: 'CT-MoE-Full',
  standard: 'StandardMoE',
  nocollab: 'CT-MoE-NoCollab',
  norouting: 'CT-MoE-NoRouting',
};

/** '--variants a,b': keys or aliases, comma-separated, no repeats. */
export function parseVariants(value: string): VariantName[] {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new InvalidArgumentError(`--variants must name at least one variant (got '${value}')`);
  const out: VariantName[] = [];
  for (const n of names) {
    const key = VARIANTS.find((v) => v.key.toLowerCase() === n.toLowerCase())?.key ?? VARIANT_ALIASES[n.toLowerCase()];
    if (!key) {
      throw new InvalidArgumentError(
        `--variants: unknown variant '${n}'; allowed: ${VARIANTS.map((v) => v.key).join(', ')} (or ${Object.keys(VARIANT_ALIASES).join(', ')}), comma-separated`,
      );
    }
    if (out.includes(key as VariantName)) throw new InvalidArgumentError(`--variants: '${key}' is named twice (got '${value}')`);
    out.push(key as VariantName);
  }
  return out;
}

const CONFIG_KEYS = Object.keys(PAPER_PRESET) as (keyof CtMoeExperimentConfig)[];

/**
 * A --set value as the field's type: decimal integers for integer fields, decimal numbers for
 * the others, 'null' for steps, two numbers ('0.9,0.95' or '[0.9,0.95]') for betas, text for
 * strings. The ranges are the config validator's (it names the field, the value and the range).
 */
function parseConfigValue(key: keyof CtMoeExperimentConfig, raw: string): unknown {
  const flag = `--set ${key}`;
  const example = PAPER_PRESET[key];
  if (key === 'steps' && raw === 'null') return null;
  if (Array.isArray(example)) {
    const parts = raw.replace(/^\[(.*)\]$/, '$1').split(',');
    if (parts.length !== example.length) {
      throw new InvalidArgumentError(
        `${flag} expects ${example.length} comma-separated numbers, e.g. ${key}=${example.join(',')} (got '${raw}')`,
      );
    }
    return parts.map((p, i) => parseFloatStrict(`${flag}[${i}]`, p.trim()));
  }
  if (typeof example === 'string') return raw;
  if (INTEGER_FIELDS.includes(key)) return parseIntStrict(flag, raw, -MAX_COUNT, Number.MAX_SAFE_INTEGER);
  return parseFloatStrict(flag, raw);
}

/** '--set key=value' (repeatable): a config field and its value (see parseConfigValue). */
export function parseSet(value: string, previous: Partial<CtMoeExperimentConfig> = {}): Partial<CtMoeExperimentConfig> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`--set expects key=value (got '${value}')`);
  const key = value.slice(0, eq).trim();
  const raw = value.slice(eq + 1).trim();
  if (!(CONFIG_KEYS as string[]).includes(key))
    throw new InvalidArgumentError(`--set: unknown config field '${key}'; allowed: ${CONFIG_KEYS.join(', ')}`);
  return { ...previous, [key]: parseConfigValue(key as keyof CtMoeExperimentConfig, raw) };
}

/** Most seeds one run takes (each seed trains every variant once). */
export const MAX_SEEDS = 100;

/** '--seed-list 42,43,44': distinct decimal integers >= 0, comma-separated; the first is the config's seed. */
export function parseSeedList(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => p === ''))
    throw new InvalidArgumentError(`--seed-list expects comma-separated integers, e.g. 42,43,44 (got '${value}')`);
  if (parts.length > MAX_SEEDS) throw new InvalidArgumentError(`--seed-list: at most ${MAX_SEEDS} seeds (got ${parts.length})`);
  const seeds = parts.map((p) => parseIntStrict('--seed-list', p, 0, Number.MAX_SAFE_INTEGER));
  const dup = seeds.find((s, i) => seeds.indexOf(s) !== i);
  if (dup !== undefined) throw new InvalidArgumentError(`--seed-list: seed ${dup} is named twice (got '${value}')`);
  return seeds;
}

/** The run's seeds: --seed-list, or --seeds N consecutive seeds from the config's seed, or that seed alone. */
export function runSeeds(configSeed: number, opts: { seeds?: number; seedList?: number[] }): number[] {
  if (opts.seedList) return opts.seedList;
  return Array.from({ length: opts.seeds ?? 1 }, (_, i) => configSeed + i);
}

interface AblateOptions {
  preset: PresetName;
  out?: string;
  variants?: VariantName[];
  steps?: number;
  set?: Partial<CtMoeExperimentConfig>;
  seeds?: number;
  seedList?: number[];
  figuresOnly?: boolean;
  onNonfinite: NonFinitePolicy;
  parallel?: ParallelMode;
  dashboard?: number | true;
  precision: Precision;
  backend?: BackendName;
}

/** Progress: one bar per variant, in turn (a TTY), or one line per log point (anything else). */
function progressPrinter(batchTokens: number, multiSeed: boolean): { onProgress: (p: AblationProgress) => void; stop: () => void } {
  const tty = Boolean(process.stderr.isTTY);
  let bar: cliProgress.SingleBar | null = null;
  const stopBar = () => {
    bar?.stop();
    bar = null;
  };
  const onProgress = (event: AblationProgress) => {
    // with several seeds every line names the seed of the run
    const p = multiSeed ? { ...event, variant: `${event.variant} seed ${event.seed}` } : event;
    switch (p.phase) {
      case 'skip':
        console.log(`${p.variant}: finished in an earlier run, skipped (result.json kept)`);
        break;
      case 'start':
      case 'resume':
        if (p.phase === 'resume') console.log(`${p.variant}: resuming from its checkpoint at step ${p.step}/${p.steps}`);
        else console.log(`${p.variant}: training ${p.steps} steps`);
        if (tty) {
          bar = new cliProgress.SingleBar(
            {
              format: `${p.variant.padEnd(multiSeed ? 24 : 16)} |{bar}| {value}/{total} steps | loss {loss} | val PPL {ppl} | {tps} tok/s | ETA {eta_formatted} {phase}`,
              hideCursor: true,
              etaBuffer: 4,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(p.steps, p.step, { loss: '-', ppl: '-', tps: '-', phase: '' });
        }
        break;
      case 'log': {
        const tps = p.log.elapsedSec > 0 ? Math.round((p.step * batchTokens) / p.log.elapsedSec) : 0;
        if (bar) bar.update(p.step, { loss: p.log.loss.toFixed(3), ppl: p.log.valPpl.toFixed(1), tps });
        else
          console.log(
            `  ${p.variant} step ${p.step}/${p.steps}  loss ${p.log.loss.toFixed(4)}  val PPL ${p.log.valPpl.toFixed(2)}  ${tps} tok/s`,
          );
        break;
      }
      case 'checkpoint':
        bar?.update(p.step);
        break;
      case 'eval':
        if (bar) bar.update(p.steps, { phase: '(evaluating)' });
        else console.log(`  ${p.variant}: evaluating`);
        break;
      case 'done':
        bar?.update({ phase: '' });
        stopBar();
        console.log(
          `${p.variant}: done — PPL code ${p.result.domainPpl.code.toFixed(2)}, prose ${p.result.domainPpl.prose.toFixed(2)}, mixed ${p.result.domainPpl.mixed.toFixed(2)}; ` +
            `${p.result.timing.trainSec.toFixed(1)} s training, ${p.result.timing.evalSec.toFixed(1)} s evaluation`,
        );
        break;
      case 'warning':
        stopBar();
        console.warn(`warning: ${p.message}`);
        break;
      case 'interrupted':
        stopBar();
        console.log(`${p.variant}: stopped at step ${p.step}/${p.steps}; rerun the same command to resume`);
        break;
    }
  };
  return { onProgress, stop: stopBar };
}

async function writeOutputs(results: CtMoeAblationResults, out: string): Promise<void> {
  console.log('rendering figures and report…');
  const figures = await writeAllFigures(results, out);
  const report = await writeReport(results, out, { figures });
  console.log('');
  console.log(tableText(results));
  console.log('');
  console.log(`results:  ${join(out, RESULTS_JSON)}`);
  console.log(`figures:  ${join(out, FIGURES_DIR)}/ (${figures.length} figures, .svg and .png)`);
  console.log(`report:   ${report}`);
}

export function registerAblateCommand(program: Command): void {
  program
    .command('ablate')
    .description('run the CT-MoE ablation (Full, Standard, NoCollab, NoRouting), then write figures and report.html; rerun to resume')
    .addOption(new Option('--preset <name>', 'config preset').choices(Object.keys(PRESETS)).default('tiny'))
    .option('--out <dir>', 'output directory: results.json, <variant>/ checkpoints, figures/, report.html (default: runs/<preset>)')
    .option(
      '--variants <list>',
      `comma-separated variants (default: all four): ${VARIANTS.map((v) => v.key).join(', ')} or ${Object.keys(VARIANT_ALIASES).join(', ')}`,
      parseVariants,
    )
    .option('--steps <n>', 'training steps per variant (overrides the preset)', parsePositiveInt('--steps', 1, MAX_COUNT))
    .option('--set <key=value>', 'override one config field (repeatable), e.g. --set dModel=64 --set topK=2', parseSet)
    .option(
      '--seeds <n>',
      `train every variant under n seeds: the config's seed and the next n-1 (init, dropout, data order); the report gives means, 95% intervals and paired differences (1..${MAX_SEEDS})`,
      parsePositiveInt('--seeds', 1, MAX_SEEDS),
    )
    .option('--seed-list <list>', "the seeds, comma-separated (e.g. 42,43,44); the first becomes the config's seed", parseSeedList)
    .option('--figures-only', 'only re-render figures and report.html from DIR/results.json')
    .addOption(
      new Option(
        '--on-nonfinite <policy>',
        'a NaN / inf loss or gradient norm: stop (naming the first bad parameter or gradient) or skip the step (counted in results.json)',
      )
        .choices(NONFINITE_POLICIES)
        .default('stop'),
    )
    .addOption(
      new Option(
        '--precision <mode>',
        'fp32; bf16 (bf16 model, f32 master weights); f16-amp (autocast to f16 and a GradScaler, as the seed)',
      )
        .choices(PRECISIONS)
        .default('fp32'),
    )
    .addOption(
      new Option(
        '--parallel <mode>',
        'across MPI ranks started by mpirun: dp = data parallel, ep = expert parallel MoE layers (rank 0 writes)',
      ).choices(['dp', 'ep']),
    )
    .addOption(
      new Option(
        '--backend <name>',
        'the backend to train on (default: MOEKIT_BACKEND, else native when it loads); webgpu: a WebGPU device',
      ).choices(['native', 'reference', 'webgpu']),
    )
    .option(
      '--dashboard [port]',
      `serve the live dashboard of this run on 127.0.0.1 (port default ${DEFAULT_DASHBOARD_PORT}) while it trains and after, until Ctrl-C`,
      parsePositiveInt('--dashboard', 0),
    )
    .action(async (opts: AblateOptions, cmd: Command) => {
      const outArg = opts.out ?? join('runs', opts.preset);
      if (opts.figuresOnly) {
        const out = prepareOutDir('--out', outArg, { create: false });
        const file = join(out, RESULTS_JSON);
        if (!existsSync(file)) cmd.error(`error: --figures-only: ${file} does not exist (run the ablation into --out ${out} first)`);
        await writeOutputs(readJsonObjectSync(file, 'format', 'moekit-ctmoe-ablation') as unknown as CtMoeAblationResults, out);
        return;
      }
      if (opts.seeds !== undefined && opts.seedList) cmd.error('error: --seeds and --seed-list exclude each other: give one');
      if (opts.seedList && opts.set?.seed !== undefined && opts.set.seed !== opts.seedList[0])
        cmd.error(
          `error: --set seed=${opts.set.seed} and --seed-list ${opts.seedList.join(',')} disagree: the list's first seed is the config's seed`,
        );
      const overrides: Partial<CtMoeExperimentConfig> = {
        ...(opts.set ?? {}),
        ...(opts.steps !== undefined ? { steps: opts.steps } : {}),
        ...(opts.seedList ? { seed: opts.seedList[0] } : {}),
        ...(opts.precision !== 'fp32' ? { precision: opts.precision } : {}),
      };
      let cfg: CtMoeExperimentConfig;
      try {
        cfg = experimentConfig(opts.preset, overrides);
      } catch (e) {
        cmd.error(`error: ${(e as Error).message}`);
      }
      let dataParallel: DataParallel | ExpertParallel | undefined;
      try {
        dataParallel = opts.parallel ? startParallel(opts.parallel, 'ablate') : undefined;
      } catch (e) {
        cmd.error(`error: ${(e as Error).message}`);
      }
      // one rank's share under --parallel (each rank holds its part), times the ranks on this machine
      checkTrainingMemory(cfg, undefined, undefined, dataParallel && dataParallel.size > 1 ? parallelLayout(dataParallel) : undefined);
      if (opts.backend) {
        try {
          if (opts.backend === 'webgpu') await initBackend('webgpu');
          setBackend(opts.backend);
        } catch (e) {
          cmd.error(`error: --backend ${opts.backend}: ${(e as Error).message}`);
        }
      }
      const out = prepareOutDir('--out', outArg, { create: true });
      const variants = opts.variants ?? VARIANTS.map((v) => v.key as VariantName);
      const seeds = runSeeds(cfg.seed, opts);
      // other ranks train silently; rank 0 prints and writes
      if (dataParallel && !dataParallel.isWriter) console.log = () => {};
      if (dataParallel) console.log(dataParallel.describe(cfg.batchSize));
      console.log(backendInfo().reason);
      console.log(
        `CT-MoE ablation, preset '${opts.preset}'${Object.keys(overrides).length ? ` with ${JSON.stringify(overrides)}` : ''}: ` +
          `${cfg.nLayer} layers, d_model ${cfg.dModel}, ${cfg.numExperts} experts, top-${cfg.topK}, seq ${cfg.seqLen}, batch ${cfg.batchSize}, ` +
          `${cfg.steps ?? `${cfg.epochs} epochs of`} steps; variants ${variants.join(', ')}; ` +
          `${seeds.length === 1 ? `seed ${seeds[0]}` : `${seeds.length} seeds (${seeds.join(', ')}): ${seeds.length * variants.length} runs`}`,
      );
      console.log(
        `output: ${out} (interrupt at any time: rerun the same command to resume from the last checkpoint, every ${cfg.checkpointEvery} steps)`,
      );
      let dashboard: ReturnType<typeof dashboardChild> | null = null;
      if (opts.dashboard !== undefined) {
        dashboard = dashboardChild(out, opts.dashboard === true ? DEFAULT_DASHBOARD_PORT : opts.dashboard);
      }
      const progress = progressPrinter(cfg.batchSize * cfg.seqLen, seeds.length > 1);
      let results: CtMoeAblationResults;
      try {
        console.log(`loading and tokenising the data (vocab ${cfg.vocabSize}; cached after the first run)…`);
        results = await runAblationAsync({
          preset: opts.preset,
          overrides,
          outDir: out,
          variants,
          seeds,
          onProgress: dataParallel?.isWriter === false ? undefined : progress.onProgress,
          onNonFinite: opts.onNonfinite,
          dataParallel,
        });
      } catch (e) {
        progress.stop();
        cmd.error(`error: ${(e as Error).message}`);
      }
      progress.stop();
      if (!dataParallel || dataParallel.isWriter) await writeOutputs(results, out);
      if (dashboard) {
        console.log('the dashboard keeps serving this run (Ctrl-C to stop)');
        await new Promise((done) => dashboard.once('exit', done));
      }
    });
}
