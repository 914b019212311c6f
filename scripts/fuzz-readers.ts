// The reliability fuzz run of docs/reliability.md (not part of npm test):
//   node --import tsx scripts/fuzz-readers.ts [--files 20000] [--configs 2000] [--seed 27]
// Mutated safetensors files (test/helpers/safetensors-fuzz.ts: structured mutations with a
// known verdict and random byte damage judged by an independent oracle), every tenth one also
// read from disk (readSafetensorsSync, readSafetensorsHeaderSync: they must agree with the
// in-memory parse), then random CT-MoE experiment configs (judged against an oracle of the
// documented ranges) and random MoE layer configs. The work runs in a child process; the parent
// counts a hang when the child reports no progress for 10 s, and stops there.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { SafetensorsError, readSafetensorsHeaderSync, readSafetensorsSync } from '../src/io/safetensors.js';
import { arbConfigCase, arbMoeInput, judgeConfig, judgeMoe } from '../test/helpers/config-fuzz.js';
import { arbMutatedFile, judge } from '../test/helpers/safetensors-fuzz.js';

interface Job {
  files: number;
  configs: number;
  seed: number;
}
interface Report {
  files: Record<string, number>;
  byOp: Record<string, Record<string, number>>;
  fromDisk: { cases: number; disagreements: string[] };
  configs: Record<string, number>;
  moeConfigs: Record<string, number>;
  failures: string[];
  slowestMs: { op: string; ms: number; bytes: number };
  seconds: number;
}

const HANG_MS = 10_000;
const CHUNK = 500;

/** `total` samples of `arb`, generated 500 at a time (chunk k from seed + k) so progress is reported as they go. */
function* samples<T>(arb: fc.Arbitrary<T>, seed: number, total: number): Generator<T> {
  for (let k = 0; k * CHUNK < total; k++) yield* fc.sample(arb, { seed: seed + k, numRuns: Math.min(CHUNK, total - k * CHUNK) });
}
function bump(r: Record<string, number>, k: string): void {
  r[k] = (r[k] ?? 0) + 1;
}

function outcomeFromDisk(read: () => unknown): string {
  try {
    read();
    return 'accepted';
  } catch (e) {
    return e instanceof SafetensorsError ? 'typed-error' : `untyped ${String(e)}`;
  }
}

function work({ files, configs, seed }: Job): Report {
  const t0 = performance.now();
  const report: Report = {
    files: {},
    byOp: {},
    fromDisk: { cases: 0, disagreements: [] },
    configs: {},
    moeConfigs: {},
    failures: [],
    slowestMs: { op: '', ms: 0, bytes: 0 },
    seconds: 0,
  };
  const dir = mkdtempSync(join(tmpdir(), 'moekit-fuzz-'));
  try {
    let i = -1;
    for (const m of samples(arbMutatedFile, seed, files)) {
      i++;
      const start = performance.now();
      const o = judge(m);
      const ms = performance.now() - start;
      if (ms > report.slowestMs.ms) report.slowestMs = { op: m.op, ms, bytes: m.bytes.length };
      bump(report.files, o.kind);
      const op = m.op.replace(/ \d+$/, '');
      report.byOp[op] ??= {};
      bump(report.byOp[op], o.kind);
      if (o.kind !== 'accepted' && o.kind !== 'typed-error')
        report.failures.push(`file ${i} (${m.op}): ${JSON.stringify(o, (_, v) => (v instanceof Error ? `${v.name}: ${v.message}` : v))}`);
      if (i % 10 === 0) {
        const file = join(dir, `case-${i}.safetensors`);
        writeFileSync(file, m.bytes);
        const memory = o.kind === 'accepted' || o.kind === 'silent-acceptance' ? 'accepted' : 'typed-error';
        const whole = outcomeFromDisk(() => readSafetensorsSync(file));
        const header = outcomeFromDisk(() => readSafetensorsHeaderSync(file));
        report.fromDisk.cases++;
        // the header reader skips the data, so it may accept a file whose I64 data does not fit int32
        if (whole !== memory || (header !== memory && !(header === 'accepted' && memory === 'typed-error'))) {
          report.fromDisk.disagreements.push(
            `file ${i} (${m.op}): memory ${memory}, readSafetensorsSync ${whole}, readSafetensorsHeaderSync ${header}`,
          );
        }
        rmSync(file);
      }
      if (i % 250 === 0) process.send?.({ progress: i });
    }
    fc.sample(arbConfigCase, { seed, numRuns: configs }).forEach((c, i) => {
      const verdict = judgeConfig(c);
      bump(report.configs, verdict === 'ok' ? 'ok' : verdict.split(' ')[0]!);
      if (verdict !== 'ok') report.failures.push(`config ${i}: ${verdict}`);
      if (i % 250 === 0) process.send?.({ progress: files + i });
    });
    fc.sample(arbMoeInput, { seed, numRuns: configs }).forEach((c, i) => {
      const verdict = judgeMoe(c);
      bump(report.moeConfigs, verdict === 'ok' ? 'ok' : 'untyped');
      if (verdict !== 'ok') report.failures.push(`moe config ${i}: ${verdict}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

const WORKER_FLAG = '--worker';
if (!process.argv.includes(WORKER_FLAG)) {
  const { values } = parseArgs({
    options: {
      files: { type: 'string', default: '20000' },
      configs: { type: 'string', default: '2000' },
      seed: { type: 'string', default: '27' },
    },
  });
  const job: Job = { files: Number(values.files), configs: Number(values.configs), seed: Number(values.seed) };
  for (const [k, v] of Object.entries(job))
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${k} must be a non-negative integer (got ${v})`);
  const worker = fork(fileURLToPath(import.meta.url), [WORKER_FLAG, JSON.stringify(job)], { execArgv: ['--import', 'tsx'] });
  let last = { at: performance.now(), progress: -1 };
  const watchdog = setInterval(() => {
    if (performance.now() - last.at > HANG_MS) {
      console.error(`HANG: no progress for ${HANG_MS / 1000} s after case ${last.progress} (seed ${job.seed}); stopping`);
      worker.kill('SIGKILL');
      clearInterval(watchdog);
      process.exitCode = 2;
    }
  }, 1000);
  worker.on('message', (m: { progress?: number; report?: Report }) => {
    last = { at: performance.now(), progress: m.progress ?? last.progress };
    if (!m.report) return;
    clearInterval(watchdog);
    const r = m.report;
    console.log(JSON.stringify({ job, ...r, failures: r.failures.slice(0, 20), failureCount: r.failures.length }, null, 2));
    if (r.failures.length > 0 || r.fromDisk.disagreements.length > 0) process.exitCode = 1;
  });
  worker.on('exit', (code, signal) => {
    clearInterval(watchdog);
    if (code !== 0 && process.exitCode === undefined) {
      console.error(`the fuzz process died (exit ${code}, signal ${signal})`);
      process.exitCode = 3;
    }
  });
} else {
  const job = JSON.parse(process.argv[process.argv.indexOf(WORKER_FLAG) + 1]!) as Job;
  process.send!({ report: work(job) }, () => process.disconnect());
}
