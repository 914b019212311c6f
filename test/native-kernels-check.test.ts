// The native kernels without Node: native/test/kernels_check.c (GEMM, grouped MoE GEMMs, router
// pass against plain C references) built for this host and run for every ISA its CPU has, and
// built with Debian's aarch64 cross compiler and run under qemu-aarch64 for the NEON kernels;
// then every source of the addon compiled for aarch64 (no x86-only code path). The cross tools
// (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user) are required in CI (.ci/run
// installs them); elsewhere those tests skip with a message when they are missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, test } from 'node:test';

const ROOT = join(import.meta.dirname, '..');
const NATIVE = join(ROOT, 'native');
const ADDON_DIRS = ['runtime', 'gemm', 'moe', 'ops', 'dist']; // binding.gyp's folders
const CI = !!process.env.CI;
const out = mkdtempSync(join(tmpdir(), 'moekit-kernels-check-'));
after(() => rmSync(out, { recursive: true, force: true }));

const onPath = (cmd: string) => (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, cmd)));

/** Node's C headers (node_api.h): beside this Node, else node-gyp's download of them. */
function nodeHeaders(): string | undefined {
  const candidates = [
    join(dirname(process.execPath), '..', 'include', 'node'),
    join(homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ];
  return candidates.find((d) => existsSync(join(d, 'node_api.h')));
}
const headers = nodeHeaders();

const cSources = (dir: string) =>
  readdirSync(join(NATIVE, dir))
    .filter((f) => f.endsWith('.c'))
    .sort()
    .map((f) => join(NATIVE, dir, f));

// binding.gyp's C flags (no FP contraction: the router's bit-identity check relies on it)
const CFLAGS = ['-std=c11', '-O3', '-fno-math-errno', '-ffp-contract=off', '-pthread', '-Wall', '-Wextra', '-Wno-unused-parameter'];
const INCLUDES = [...ADDON_DIRS.map((d) => `-I${join(NATIVE, d)}`), `-I${headers}`];

/** Builds the driver with `cc`: its files and the kernel sources (the GEMM and MoE folders, the
 * runtime's CPU detection, pool and helpers; moe.c and router.c the driver includes itself). Their
 * N-API functions are unreferenced and dropped by --gc-sections, so nothing links against Node. */
function buildDriver(cc: string, exe: string): void {
  const includedByDriver = ['moe.c', 'router.c'].map((f) => join(NATIVE, 'moe', f));
  const kernels = [
    ...['cpu.c', 'threadpool.c', 'kernel_util.c'].map((f) => join(NATIVE, 'runtime', f)),
    ...cSources('gemm'),
    ...cSources('moe').filter((f) => !includedByDriver.includes(f)),
    ...cSources('ops').filter((f) => /\/vec_f32\w*\.c$/.test(f)), // the moe activations call them
  ];
  const args = [
    ...CFLAGS,
    '-Wno-unused-function',
    '-ffunction-sections',
    '-fdata-sections',
    '-Wl,--gc-sections',
    `-I${join(NATIVE, 'test')}`,
    ...INCLUDES,
    ...cSources('test'),
    ...kernels,
    '-lm',
    '-o',
    exe,
  ];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cc} failed to build the kernel check:\n${r.stderr}`);
}

/** Runs the driver; it must pass, and say ok for every ISA in `isas`. */
function runDriver(cmd: string, args: string[], isas: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `kernels_check failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  for (const isa of isas) assert.match(r.stdout, new RegExp(`^${isa}: .*: ok$`, 'm'), r.stdout);
}

/** What is missing to run a test here (undefined: nothing). */
function missing(tools: string[]): string | undefined {
  const gone = tools.filter((t) => !onPath(t));
  if (!headers) gone.push("Node's headers (node_api.h)");
  return gone.length ? `${gone.join(', ')} not found (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)` : undefined;
}
/** Skips where tools are missing, except in CI, where the test runs and fails on them. */
const skipUnless = (tools: string[]) => (CI ? false : missing(tools));
const requireTools = (tools: string[]) => assert.equal(missing(tools), undefined);

// the ISAs the driver runs by default on this host: the best one its CPU has, the x86 ones below it, scalar
const HOST_ISAS: Record<string, string[]> = { x64: ['avx512', 'avx2', 'scalar'], arm64: ['neon', 'scalar'] };

test('kernel check on this host: every ISA its CPU runs against the C references', { skip: skipUnless(['cc']) }, () => {
  requireTools(['cc']);
  const exe = join(out, 'kernels_check_host');
  buildDriver('cc', exe);
  const r = spawnSync(exe, [], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `kernels_check failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  const ran = [...r.stdout.matchAll(/^(\w+): gemm .*: ok$/gm)].map((m) => m[1]);
  const all = HOST_ISAS[process.arch] ?? ['scalar'];
  assert.deepEqual(ran, all.slice(all.length - ran.length), r.stdout);
  assert.ok(ran.includes('scalar'), r.stdout);
});

const CROSS = ['aarch64-linux-gnu-gcc', 'qemu-aarch64'];

test('kernel check for aarch64 under qemu-aarch64: the NEON kernels against the C references', { skip: skipUnless(CROSS) }, () => {
  requireTools(CROSS);
  const exe = join(out, 'kernels_check_aarch64');
  buildDriver('aarch64-linux-gnu-gcc', exe);
  // qemu-user emulates every ASIMD instruction; the sysroot holds the aarch64 libc
  runDriver('qemu-aarch64', ['-L', '/usr/aarch64-linux-gnu', exe, 'neon'], ['neon']);
});

test('the whole addon compiles for aarch64 (no x86-only code outside __x86_64__ guards)', { skip: skipUnless(CROSS) }, () => {
  requireTools(CROSS);
  const sources = ADDON_DIRS.flatMap(cSources);
  const r = spawnSync('aarch64-linux-gnu-gcc', [...CFLAGS, '-fsyntax-only', '-DNAPI_VERSION=8', ...INCLUDES, ...sources], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `aarch64-linux-gnu-gcc rejected the addon's sources:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /warning/, r.stderr);
});
