#!/usr/bin/env node
// The `moekit` command.
import { Command } from 'commander';
import { initBackend } from '../backend/registry.js';
import { registerAblateCommand } from './ablate.js';
import { registerDemoCommand } from './demo.js';
import { registerInfoCommand } from './info.js';
import { useThroughputGc } from '../tensor/gc-policy.js';

// training runs: see gc-policy.ts (docs/performance.md: src/tensor/gc-policy.ts: useThroughputGc)
useThroughputGc();

const program = new Command();
program.name('moekit').description('Mixture-of-Experts for TypeScript').showHelpAfterError();

registerInfoCommand(program);
registerDemoCommand(program);
registerAblateCommand(program);

await initBackend();
await program.parseAsync(process.argv);
