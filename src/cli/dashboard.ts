// `moekit dashboard [dir]`: serve the dashboard over a run directory (finished or training),
// on 127.0.0.1 unless --host names another address (then with a warning: anyone who reaches
// it can read the run). `moekit ablate --dashboard` starts it as a child process (training
// holds its own event loop) through dashboardChild.
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { startDashboard } from '../dashboard/server.js';
import { parsePositiveInt } from './args.js';

export const DEFAULT_DASHBOARD_PORT = 7077;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

interface DashboardCliOptions {
  host: string;
  port: number;
}

export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description(
      'serve a live dashboard of a run directory (loss, expert load, routing entropy, S matrices, tokens by expert) on 127.0.0.1',
    )
    .argument('[dir]', 'run directory (moekit ablate --out)', 'runs/tiny')
    .option('--host <address>', 'address to listen on (anything but loopback exposes the run to the network)', '127.0.0.1')
    .option('--port <n>', 'port (0: any free one)', parsePositiveInt('--port', 0), DEFAULT_DASHBOARD_PORT)
    .action(async (dir: string, opts: DashboardCliOptions, cmd: Command) => {
      if (!LOOPBACK.has(opts.host))
        console.warn(
          `warning: --host ${opts.host}: not the loopback address; whoever can reach it can read this run (there is no authentication)`,
        );
      let url: string;
      try {
        ({ url } = await startDashboard({ runDir: resolve(dir), host: opts.host, port: opts.port }));
      } catch (e) {
        cmd.error(`error: ${(e as Error).message}`);
      }
      console.log(`dashboard of ${resolve(dir)}: ${url} (Ctrl-C to stop)`);
      // started by `ablate --dashboard`: the IPC channel closes when that parent ends in any
      // way (a SIGKILL included, which runs no exit handler there), so the server ends with it
      if (process.channel) process.once('disconnect', () => process.exit(0));
    });
}

/** Start `moekit dashboard dir` as a child sharing this terminal (for ablate --dashboard). */
export function dashboardChild(dir: string, port: number): ChildProcess {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'dashboard', dir, '--port', String(port)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'], // the channel tells the child when this process is gone
  });
  child.channel?.unref(); // the channel alone must not keep this process alive
  process.once('exit', () => child.kill()); // also when training fails
  return child;
}
