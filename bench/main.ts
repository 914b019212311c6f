// Benchmarks: `npm run bench -- <name> [options]`. Each benchmark is a module
// bench/<name>.ts exporting register(program) that adds its subcommand; list it below.
import { Command } from 'commander';

import { register as registerAb } from './ab.js';
import { register as registerGemm } from './gemm.js';
import { register as registerMoe } from './moe.js';
import { register as registerDist } from './dist.js';
import { register as registerCtmoeTrain } from './ctmoe-train.js';

const benches: Array<(program: Command) => void> = [registerGemm, registerMoe, registerAb, registerDist, registerCtmoeTrain];

const program = new Command('bench').description('moekit benchmarks');
for (const register of benches) register(program);
await program.parseAsync(process.argv);
