// `npm run bench -- ab <treeA> <treeB>`: paired A/B of one MoE layer's fwd+bwd step between two
// checkouts of moekit (each with its own built addon, e.g. a `git worktree` of the base commit)
// in ONE process, alternating A and B step by step. On a shared machine whose speed drifts over
// seconds, separate runs cannot resolve a change of a few percent; the median of the per-pair
// ratios B/A can (docs/performance.md: bench/ab.ts). --experts picks the bank (SwiGLU, GELU, or
// the CT-MoE block: GELU D -> D -> D with its topology); --path-a / --path-b set MOEKIT_MOE_PATH
// around each side's steps, so one checkout against itself compares two execution paths.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { MOE_CONFIGS } from './moe.js';
import { median, warmUp } from './util.js';

type Step = () => number;

const EXPERTS = ['swiglu', 'gelu', 'ct-moe'] as const;
type Experts = (typeof EXPERTS)[number];

/** A timed fwd+bwd step of config `name`, built from the moekit sources under `root`, with MOEKIT_MOE_PATH = path ('': as set). */
async function loadStep(label: string, root: string, name: string, experts: Experts, path: string): Promise<Step> {
  const entry = resolve(root, 'src/moe/index.ts');
  if (!existsSync(entry)) throw new Error(`${label}: no moekit checkout at '${root}' (${entry} is missing)`);
  const moe = await import(entry);
  const core = await import(resolve(root, 'src/index.ts'));
  const backends = await import(resolve(root, 'src/backend/index.ts'));
  console.log(`${label} (${root}): ${backends.backendInfo().reason}`);
  const c = MOE_CONFIGS[name]!;
  core.manualSeed(1234);
  const cfg =
    experts === 'ct-moe'
      ? core.ctMoePreset(c.dModel, c.experts, c.topK)
      : moe.moeConfig({
          hiddenSize: c.dModel,
          router: { numExperts: c.experts, topK: c.topK, scoreFunc: 'softmax', renormalize: 'sum' },
          experts: { kind: experts, intermediateSize: c.dFf },
          losses: { lbWeight: 0.01, zLossWeight: 0.001, lbConvention: 'one' },
        });
  const layer = withPath(path, () => new moe.MoELayer(cfg));
  console.log(`${label}: ${withPath(path, () => layer.executionPlan.summary)}`);
  const x = core.randn([c.tokens, c.dModel]);
  const dy = core.randn([c.tokens, c.dModel]);
  return () =>
    withPath(path, () => {
      const t0 = performance.now();
      layer.zeroGrad();
      layer.forward(x.detach().requiresGrad_()).backward(dy);
      return performance.now() - t0;
    });
}

/** fn() with MOEKIT_MOE_PATH = path ('': left as it is); the plan reads it through src/env.ts, this only sets and restores it. */
function withPath<T>(path: string, fn: () => T): T {
  if (!path) return fn();
  const name = 'MOEKIT_MOE_PATH';
  const prev = process.env[name];
  process.env[name] = path;
  try {
    return fn();
  } finally {
    if (prev === undefined) delete process.env[name];
    else process.env[name] = prev;
  }
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

export function register(program: Command): void {
  program
    .command('ab <treeA> <treeB>')
    .description('paired A/B of the MoE fwd+bwd step between two moekit checkouts, in one process')
    .option('--config <name>', `one of ${Object.keys(MOE_CONFIGS).join(', ')}`, 'small')
    .option('--steps <n>', 'timed pairs', '250')
    .option('--experts <kind>', `the bank: ${EXPERTS.join(', ')}`, 'swiglu')
    .option('--path-a <setting>', "MOEKIT_MOE_PATH for A's steps (auto, reference, kernels, layer; '': as set)", '')
    .option('--path-b <setting>', "MOEKIT_MOE_PATH for B's steps", '')
    .option(
      '--block <n>',
      'steps per side before switching (> 1 when A and B differ in the thread pool: each addon has its own pool, whose workers spin for a while after a call; the first step of each block is not timed)',
      '1',
    )
    .action(
      async (
        treeA: string,
        treeB: string,
        opts: { config: string; steps: string; block: string; experts: string; pathA: string; pathB: string },
      ) => {
        if (!MOE_CONFIGS[opts.config])
          throw new Error(`--config: unknown config '${opts.config}' (allowed: ${Object.keys(MOE_CONFIGS).join(', ')})`);
        const steps = Number(opts.steps);
        if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps: '${opts.steps}' is not a positive integer`);
        const block = Number(opts.block);
        if (!Number.isInteger(block) || block < 1) throw new Error(`--block: '${opts.block}' is not a positive integer`);
        const experts = opts.experts as Experts;
        if (!EXPERTS.includes(experts)) throw new Error(`--experts: unknown bank '${opts.experts}' (allowed: ${EXPERTS.join(', ')})`);
        const a = await loadStep('treeA', treeA, opts.config, experts, opts.pathA);
        const b = await loadStep('treeB', treeB, opts.config, experts, opts.pathB);
        warmUp(a);
        warmUp(b);
        const ta: number[] = [],
          tb: number[] = [],
          ratio: number[] = [];
        // one side's block: its median step time (the first step untimed when block > 1)
        const run = (side: Step) => {
          if (block === 1) return side();
          side();
          return median(Array.from({ length: block - 1 }, side));
        };
        for (let i = 0; i < steps; i++) {
          // alternate which side goes first, so neither always follows the other
          const [x, y] = i % 2 === 0 ? [run(a), run(b)] : (([q, p]) => [p, q])([run(b), run(a)]);
          ta.push(x);
          tb.push(y);
          ratio.push(y / x);
        }
        const ms = (v: number) => v.toFixed(2);
        console.log(
          `${opts.config} (${experts}) fwd+bwd, ${steps} pairs${block > 1 ? ` of ${block}-step blocks` : ''}: A ${ms(median(ta))} ms (p10 ${ms(quantile(ta, 0.1))}), B ${ms(median(tb))} ms (p10 ${ms(quantile(tb, 0.1))})`,
        );
        console.log(
          `B/A per pair: median ${median(ratio).toFixed(3)} (p25 ${quantile(ratio, 0.25).toFixed(3)}, p75 ${quantile(ratio, 0.75).toFixed(3)})`,
        );
      },
    );
}
