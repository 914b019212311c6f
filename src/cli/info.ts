// `moekit info`: which backend runs and why; with --layer, how an MoE layer of a preset or an
// HF config.json would execute on it (its execution plan, src/moe/execution/plan.ts).
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { backendInfo, getBackend } from '../backend/registry.js';
import { openWebGPUBackend } from '../backend/webgpu/index.js';
import type { MoEConfig } from '../moe/config.js';
import { planForConfig } from '../moe/execution/plan.js';
import type { HfConfig } from '../moe/hf-config.js';
import { OLMO_CORE_PRESETS, type OlmoCorePresetName, moeConfigFromHf, olmoCorePreset } from '../moe/presets.js';
import { ctMoePreset } from '../moe/topology/preset.js';

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

export function registerInfoCommand(program: Command): void {
  program
    .command('info')
    .description('print which backend runs and why, and whether a WebGPU device opens here')
    .option('--layer <preset|config.json>', `also how an MoE layer would execute (${LAYER_PRESETS.join(', ')}, or an HF config.json)`)
    .action(async (opts: { layer?: string }) => {
      console.log(backendInfo().reason);
      if (opts.layer) console.log(`moekit: MoE layer '${opts.layer}': ${planForConfig(layerConfig(opts.layer), getBackend()).summary}`);
      const gpu = await openWebGPUBackend();
      const chosen = backendInfo().name === 'webgpu' ? 'chosen' : 'not chosen: MOEKIT_BACKEND=webgpu selects it';
      console.log(gpu.backend ? `webgpu: ${gpu.description} (${chosen})` : `webgpu: unavailable: ${gpu.reason}`);
    });
}
