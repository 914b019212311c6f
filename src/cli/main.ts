#!/usr/bin/env node
// The `moekit` command.
import { Command } from 'commander';
import { backendInfo, initBackend } from '../backend/registry.js';
import { openWebGPUBackend } from '../backend/webgpu/index.js';
import { registerAblateCommand } from './ablate.js';
import { registerDemoCommand } from './demo.js';
import { useThroughputGc } from '../tensor/gc-policy.js';

// training runs: see gc-policy.ts (CT-MoE tiny training 17-20% faster)
useThroughputGc();

const program = new Command();
program.name('moekit').description('Mixture-of-Experts for TypeScript').showHelpAfterError();

program
  .command('info')
  .description('print which backend runs and why, and whether a WebGPU device opens here')
  .action(async () => {
    console.log(backendInfo().reason);
    const gpu = await openWebGPUBackend();
    const chosen = backendInfo().name === 'webgpu' ? 'chosen' : 'not chosen: MOEKIT_BACKEND=webgpu selects it';
    console.log(gpu.backend ? `webgpu: ${gpu.description} (${chosen})` : `webgpu: unavailable: ${gpu.reason}`);
  });

registerDemoCommand(program);
registerAblateCommand(program);

await initBackend();
await program.parseAsync(process.argv);
