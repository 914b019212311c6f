// `moekit info`: which backend runs, which native binary (prebuilt or compiled, its path) and the
// ISA its kernels picked, each with why; with --layer, how an MoE layer of a preset or an HF
// config.json would execute on it (its execution plan, src/moe/execution/plan.ts), with --ep N /
// --tp N as the N-rank expert- / tensor-parallel plan.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { readEnv } from '../env.js';
import { loadNativeAddon } from '../backend/native/addon.js';
import { backendInfo, getBackend } from '../backend/registry.js';
import { openWebGPUBackend } from '../backend/webgpu/index.js';
import type { MoEConfig } from '../moe/config.js';
import { planForConfig } from '../moe/execution/plan.js';
import type { ParallelSpec } from '../moe/execution/parallel.js';
import { localExpertCount } from '../dist/partition.js';
import { parsePositiveInt } from './args.js';
import type { HfConfig } from '../moe/hf-config.js';
import { OLMO_CORE_PRESETS, type OlmoCorePresetName, moeConfigFromHf, olmoCorePreset } from '../moe/presets.js';
import { ctMoePreset } from '../moe/topology/preset.js';
import { mpiInfoLine } from '../dist/cli-parallel.js';

const LAYER_PRESETS = [...OLMO_CORE_PRESETS, 'ct-moe'] as const;

/** An MoE block's config from a preset name or the path of an HF config.json. */
function layerConfig(spec: string): MoEConfig {
  if ((OLMO_CORE_PRESETS as readonly string[]).includes(spec)) return olmoCorePreset(spec as OlmoCorePresetName);
  if (spec === 'ct-moe') return ctMoePreset(256, 8, 2);
  if (!spec.endsWith('.json'))
    throw new Error(`--layer: '${spec}' is neither a preset (${LAYER_PRESETS.join(', ')}) nor an HF config.json`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(spec, 'utf8'));
  } catch (err) {
    throw new Error(`--layer: cannot read ${spec}: ${(err as Error).message}`);
  }
  return moeConfigFromHf(json as HfConfig);
}

/** Why the kernels run the ISA they do: MOEKIT_ISA caps the one cpuid found. */
function isaWhy(isa: string): string {
  const cap = readEnv('MOEKIT_ISA');
  if (cap) return `cpuid's best, capped by MOEKIT_ISA=${cap}`;
  if (isa === 'neon') return "aarch64's baseline ASIMD";
  return isa === 'scalar' && process.arch !== 'x64' ? `no SIMD kernels for ${process.arch} yet` : "the best this CPU's cpuid reports";
}

/** The native binary's lines: prebuilt or compiled, its path and ISA, and why; or why there is none. */
function nativeLines(): string[] {
  const loaded = loadNativeAddon();
  if (!loaded.addon) return [`native binary: none: ${loaded.reason}`];
  const { origin, file, why } = loaded.binary;
  const isa = loaded.addon.cpuInfo().isa;
  return [`native binary: ${origin} ${file}: ${why}`, `native ISA: ${isa}: ${isaWhy(isa)}`];
}

export function registerInfoCommand(program: Command): void {
  program
    .command('info')
    .description('print which backend, native binary and ISA run, and why, whether MPI was found, and whether a WebGPU device opens')
    .option('--layer <preset|config.json>', `also how an MoE layer would execute (${LAYER_PRESETS.join(', ')}, or an HF config.json)`)
    .option('--ep <ranks>', "with --layer: the layer's plan under expert parallelism over this many ranks", parsePositiveInt('--ep'))
    .option('--tp <ranks>', "with --layer: the layer's plan under tensor parallelism over this many ranks", parsePositiveInt('--tp'))
    .action(async (opts: { layer?: string; ep?: number; tp?: number }) => {
      if ((opts.ep || opts.tp) && !opts.layer)
        throw new Error(`--${opts.ep ? 'ep' : 'tp'} needs --layer (the layer whose parallel plan to print)`);
      if (opts.ep && opts.tp) throw new Error('--ep and --tp: give one (a layer runs expert or tensor parallel)');
      console.log(backendInfo().reason);
      if (opts.layer) {
        const cfg = layerConfig(opts.layer);
        const kind = opts.ep ? 'ep' : opts.tp ? 'tp' : null;
        const ranks = opts.ep ?? opts.tp ?? 1;
        const parallel: ParallelSpec | null = kind && { kind, ranks, localExperts: localExpertCount(cfg.router.numExperts, ranks, kind) };
        console.log(`moekit: MoE layer '${opts.layer}': ${planForConfig(cfg, getBackend(), 'f32', parallel).summary}`);
      }
      for (const line of nativeLines()) console.log(line);
      console.log(mpiInfoLine());
      const gpu = await openWebGPUBackend();
      const chosen = backendInfo().name === 'webgpu' ? 'chosen' : 'not chosen: MOEKIT_BACKEND=webgpu selects it';
      console.log(gpu.backend ? `webgpu: ${gpu.description} (${chosen})` : `webgpu: unavailable: ${gpu.reason}`);
    });
}
