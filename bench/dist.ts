// `npm run bench -- dist`: starts bench/dist-worker.ts under mpirun at each --np and prints
// allToAllV latency / bandwidth by message size (against an in-memory copy of the same bytes)
// and the EP MoE layer's fwd+bwd (tokens/s, compute vs communication, against the
// single-process MoELayer on one rank's tokens).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Command } from 'commander';

interface Row {
  np: number;
  bench: string;
  [k: string]: number | string | null;
}

export function register(program: Command): void {
  program
    .command('dist')
    .description('allToAllV and the expert-parallel MoE layer across MPI ranks (needs mpirun)')
    .option('--np <list>', 'comma-separated process counts', '1,2')
    .option('--json', 'print one JSON object per line instead of a table')
    .action((opts: { np: string; json?: boolean }) => {
      const nps = opts.np.split(',').map(Number);
      if (nps.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--np: '${opts.np}' is not a list of positive integers`);
      const rows: Row[] = [];
      for (const np of nps) {
        const r = spawnSync(
          'mpirun',
          [
            '--allow-run-as-root',
            '--oversubscribe',
            '-np',
            String(np),
            process.execPath,
            '--import',
            'tsx',
            join(import.meta.dirname, 'dist-worker.ts'),
          ],
          { encoding: 'utf8', timeout: 600_000 },
        );
        if (r.error) throw new Error(`mpirun: ${r.error.message} (install openmpi-bin libopenmpi3)`);
        if (r.status !== 0)
          throw new Error(`mpirun -np ${np} failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
        for (const line of r.stdout.split('\n')) if (line.startsWith('BENCH ')) rows.push(JSON.parse(line.slice(6)) as Row);
      }
      if (opts.json) {
        for (const row of rows) console.log(JSON.stringify(row));
        return;
      }
      const fmt = (v: number) => (v >= 1 ? v.toFixed(2) : v.toPrecision(3));
      console.log('allToAllV (f32 rows; bytes to every rank; copy ratio = time / an in-memory copy of the same send buffer)');
      console.log('np  bytes/peer     time (ms)  remote GB/s  copy ratio');
      for (const r of rows.filter((x) => x.bench === 'allToAllV')) {
        console.log(
          `${String(r.np).padEnd(3)} ${String(r['bytesPerPeer']).padEnd(13)} ${fmt(Number(r['seconds']) * 1e3).padStart(9)}  ${r['remoteBytesPerSec'] === null ? '        -' : (Number(r['remoteBytesPerSec']) / 1e9).toFixed(3).padStart(9)}  ${Number(r['copyRatio']).toFixed(1).padStart(10)}`,
        );
      }
      console.log(
        '\nEP MoE layer fwd+bwd (1024 tokens per rank, H 256, 8 experts top-2, I 512; slowest rank; communication includes waiting for other ranks)',
      );
      console.log('np  step (ms)  compute (ms)  comm (ms)  tokens/s  single-process layer step (ms)');
      for (const r of rows.filter((x) => x.bench === 'epLayer')) {
        console.log(
          `${String(r.np).padEnd(3)} ${fmt(Number(r['stepSeconds']) * 1e3).padStart(9)}  ${fmt(Number(r['computeSeconds']) * 1e3).padStart(12)}  ${fmt(Number(r['commSeconds']) * 1e3).padStart(9)}  ${Math.round(Number(r['tokensPerSec'])).toString().padStart(8)}  ${fmt(Number(r['singleLayerStepSeconds']) * 1e3).padStart(10)}`,
        );
      }
    });
}
