// The dashboard server over a finished micro run: what it serves, that it listens on loopback,
// that requests naming paths outside the run (or bad parameters) get a 4xx with a one-line
// message and never a stack, the event stream (every line, then appended ones), and the CLI's
// one-line error for a missing run directory.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LOG_JSONL } from '../src/dashboard/log-format.js';
import { type DashboardServer, startDashboard } from '../src/dashboard/server.js';
import { runAblation } from '../src/experiments/ctmoe/index.js';
import { runMoekit } from './helpers/cli.js';
import { MICRO, synthData } from './helpers/ctmoe-micro.js';

const out = mkdtempSync(join(tmpdir(), 'moekit-dashsrv-'));
const outside = mkdtempSync(join(tmpdir(), 'moekit-dashsrv-outside-'));
let server: DashboardServer;

before(async () => {
  runAblation({ preset: MICRO, outDir: out, variants: ['CT-MoE-Full', 'StandardMoE'], data: synthData() });
  // a link out of the run directory, to a folder that looks like a variant
  writeFileSync(join(outside, LOG_JSONL), '{"kind":"step","step":1,"loss":0,"ce":0,"load":[]}\n');
  symlinkSync(outside, join(out, 'linked-out'));
  server = await startDashboard({ runDir: out, port: 0, assetsDir: join(out, 'no-page-here'), pollMs: 50 });
});
after(async () => {
  await server?.close();
  for (const d of [out, outside]) rmSync(d, { recursive: true, force: true });
});

const get = async (path: string) => {
  const r = await fetch(new URL(path, server.url));
  const text = await r.text();
  return { status: r.status, type: r.headers.get('content-type') ?? '', text, json: () => JSON.parse(text) as Record<string, unknown> };
};

test('listens on 127.0.0.1 and serves the run: results.json, the variants, a log from a byte offset', async () => {
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const run = (await get('/api/run')).json();
  assert.deepEqual(run['variants'], ['CT-MoE-Full', 'StandardMoE'], 'the linked-out folder is not listed');
  assert.deepEqual((run['results'] as { order: string[] }).order, ['CT-MoE-Full', 'StandardMoE']);
  const file = readFileSync(join(out, 'CT-MoE-Full', LOG_JSONL));
  const all = (await get('/api/log/CT-MoE-Full')).json() as { lines: { kind: string }[]; offset: number };
  assert.equal(all.offset, file.length);
  assert.deepEqual(
    all.lines,
    file
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l)),
  );
  const firstLen = file.indexOf(0x0a) + 1;
  const rest = (await get(`/api/log/CT-MoE-Full?from=${firstLen}`)).json() as { lines: unknown[] };
  assert.deepEqual(rest.lines, all.lines.slice(1));
});

test('bad requests get a 4xx with a message naming the problem, never a stack trace', async () => {
  const cases: [string, number, RegExp][] = [
    ['/api/log/..%2F..%2Fetc', 400, /variant '\.\.\/\.\.\/etc' is not a variant name/],
    ['/api/log/.hidden', 400, /is not a variant name/],
    ['/api/log/linked-out', 400, /variant 'linked-out' resolves outside the run directory/],
    ['/api/log/NoSuchVariant', 404, /variant 'NoSuchVariant' has no log\.jsonl in this run \(variants: CT-MoE-Full, StandardMoE\)/],
    ['/api/log/CT-MoE-Full?from=-1', 400, /from must be a byte offset, a non-negative integer \(got '-1'\)/],
    ['/api/log/CT-MoE-Full?from=abc', 400, /got 'abc'/],
    ['/../../etc/passwd', 404, /no such route: GET \/etc\/passwd/],
    ['/api/nothing', 404, /no such route: GET \/api\/nothing/],
    ['/', 404, /the dashboard page is not built .*no-page-here.*index\.html is missing/],
  ];
  for (const [path, status, re] of cases) {
    const r = await get(path);
    assert.equal(r.status, status, path);
    assert.match(r.type, /application\/json/, path);
    const msg = r.json()['error'] as string;
    assert.match(msg, re, path);
    assert.ok(!/\n|\s+at\s+\S+\s+\(|node:internal|\.ts:\d+/.test(msg), `${path}: no stack in '${msg}'`);
  }
});

test('the event stream sends the run, every line so far, then lines as they are appended', async () => {
  const ac = new AbortController();
  const r = await fetch(new URL('/api/events', server.url), { signal: ac.signal });
  assert.match(r.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  const until = async (cond: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!cond()) {
      assert.ok(Date.now() < deadline, `timed out; received:\n${text.slice(0, 400)}`);
      const { value, done } = await reader.read();
      assert.ok(!done, 'stream ended');
      text += value;
    }
  };
  const events = () =>
    text
      .split('\n\n')
      .filter((e) => e.includes('data:'))
      .map((e) => ({ event: /event: (\w+)/.exec(e)?.[1], data: JSON.parse(e.slice(e.indexOf('data:') + 5).trim()) }));
  const lineCount = (v: string) =>
    events()
      .filter((e) => e.event === 'log' && e.data.variant === v)
      .reduce((n, e) => n + e.data.lines.length, 0);
  const fileLines = (v: string) =>
    readFileSync(join(out, v, LOG_JSONL), 'utf8')
      .trim()
      .split('\n').length;
  await until(() => lineCount('CT-MoE-Full') === fileLines('CT-MoE-Full') && lineCount('StandardMoE') === fileLines('StandardMoE'));
  assert.equal(events()[0]!.event, 'run');
  // a line written in two parts arrives once, whole
  const extra = { kind: 'step', step: 9, loss: 1.5, ce: 1.25, load: [[1, 2, 3, 4]] };
  const json = JSON.stringify(extra);
  appendFileSync(join(out, 'StandardMoE', LOG_JSONL), json.slice(0, 10));
  await new Promise((res) => setTimeout(res, 200));
  appendFileSync(join(out, 'StandardMoE', LOG_JSONL), `${json.slice(10)}\n`);
  await until(() => lineCount('StandardMoE') === fileLines('StandardMoE'));
  const last = events()
    .filter((e) => e.event === 'log')
    .pop()!;
  assert.deepEqual(last.data, { variant: 'StandardMoE', lines: [extra] });
  // a new variant appears in a new 'run' event
  mkdirSync(join(out, 'Another'));
  writeFileSync(join(out, 'Another', LOG_JSONL), '');
  await until(() => events().some((e) => e.event === 'run' && e.data.variants.includes('Another')));
  ac.abort();
});

test('moekit dashboard on a missing directory fails with a one-line error (then the usage)', () => {
  const r = runMoekit(['dashboard', join(out, 'missing')], { timeout: 30_000 });
  assert.equal(r.code, 1, r.why);
  assert.equal(r.stderr.split('\n')[0], `error: run directory '${join(out, 'missing')}' does not exist or is not a directory`);
  assert.ok(!/\s+at\s/.test(r.stderr), 'no stack trace');
});

/** Start a moekit command in its own process group; resolves with its output once it matches every pattern, and a kill for the group. */
function startCli(args: string[], ready: RegExp[]): Promise<{ printed: string; kill: () => void; pid: number }> {
  const p = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'src', 'cli', 'main.ts'), ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = () => {
    try {
      process.kill(-p.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  return new Promise((resolve, reject) => {
    let printed = '';
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`moekit ${args.join(' ')}: not all of ${ready.join(', ')} in 60 s; output:\n${printed}`));
    }, 60_000);
    const onData = (b: Buffer) => {
      printed += b.toString();
      if (ready.every((re) => re.test(printed))) {
        clearTimeout(timer);
        resolve({ printed, kill, pid: p.pid! });
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
  });
}

/** Whether `url` stops accepting connections within 15 s. */
async function stopsAnswering(url: string): Promise<boolean> {
  for (let i = 0; i < 150; i++) {
    try {
      await fetch(url);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

test('--host other than loopback is printed as a warning', async () => {
  const { printed, kill } = await startCli(
    ['dashboard', out, '--host', '127.0.0.2', '--port', '0'],
    [/dashboard of .*: http:\/\/127\.0\.0\.2:\d+\//],
  );
  kill();
  assert.match(printed, /warning: --host 127\.0\.0\.2: not the loopback address; whoever can reach it can read this run/);
});

test('moekit ablate --dashboard serves the run it trains, keeps serving it after, and ends with it even on SIGKILL', async () => {
  const run = join(out, 'ablate-dash');
  const micro = [
    'vocabSize=256',
    'seqLen=16',
    'dModel=16',
    'nHead=2',
    'numExperts=4',
    'batchSize=4',
    'evalBatches=1',
    'freqBatches=1',
    'logEvery=2',
    'warmup=2',
  ];
  const { printed, kill, pid } = await startCli(
    ['ablate', '--dashboard', '0', '--out', run, '--variants', 'full', '--steps', '4', ...micro.flatMap((s) => ['--set', s])],
    [/dashboard of .*: http/, /the dashboard keeps serving this run/],
  );
  try {
    const url = /dashboard of .*: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(printed)?.[1];
    assert.ok(url, printed);
    const r = (await (await fetch(new URL('api/run', url))).json()) as {
      variants: string[];
      results: { variants: Record<string, { status: string }> };
    };
    assert.deepEqual(r.variants, ['CT-MoE-Full']);
    assert.equal(r.results.variants['CT-MoE-Full']!.status, 'done');
    process.kill(pid, 'SIGKILL'); // the ablate process only: no exit handler of its runs
    assert.ok(await stopsAnswering(url), 'the dashboard child outlived its killed parent');
  } finally {
    kill();
  }
});
