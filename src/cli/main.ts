#!/usr/bin/env node
// The `moekit` command.
import { Command } from 'commander';
import { initBackend } from '../backend/registry.js';
import { registerAblateCommand } from './ablate.js';
import { registerDashboardCommand } from './dashboard.js';
import { registerDemoCommand } from './demo.js';
import { DEBUG_FLAG, USAGE_HINT, reportFatal, takeDebugFlag, unknownCommand } from './errors.js';
import { registerInfoCommand } from './info.js';
import { registerInspectCommand } from './inspect.js';
import { useThroughputGc } from '../tensor/gc-policy.js';

/** The commands that train: they run under useThroughputGc (gc-policy.ts; docs/performance.md). */
const TRAINING_COMMANDS = new Set(['ablate', 'demo']);

const program = new Command();
program.name('moekit').description('Mixture-of-Experts for TypeScript').showHelpAfterError(USAGE_HINT);
program.option(DEBUG_FLAG, 'print the stack trace of an error');
// After the options parsed (a bad option never gets here), before the command runs.
program.hook('preAction', (_program, command) => {
  if (TRAINING_COMMANDS.has(command.name())) useThroughputGc();
});

registerInfoCommand(program);
registerDemoCommand(program);
registerAblateCommand(program);
registerDashboardCommand(program);
registerInspectCommand(program);

const { argv, debug } = takeDebugFlag(process.argv);
const unknown = unknownCommand(program, argv.slice(2));
if (unknown) {
  process.stderr.write(`${unknown}\n`);
  process.exit(1);
}
try {
  await initBackend();
  await program.parseAsync(argv);
} catch (err) {
  reportFatal(err, debug);
}
