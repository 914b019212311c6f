// The published package, end to end: `npm pack` of this checkout, the host's prebuild made by
// scripts/prebuild.mjs (what prepack runs) inside the unpacked package, packed again, then
// installed with --ignore-scripts into an empty directory whose PATH has node and nothing else
// (no cc, make, python3). There: the native backend loads from prebuilds/, `moekit info` says so,
// the install script would not compile, and an MoE layer forward on it matches the reference
// backend. publint and @arethetypeswrong/cli lint the same tarball. Also: no translation unit of
// the checkout's build is compiled with ISA flags (the kernels pick AVX2 / AVX-512 at run time).
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';

const ROOT = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'moekit-pkg-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** npm's own CLI, run by this node: the one running `npm test`, else the one beside node. */
const NPM_CLI = process.env['npm_execpath']?.endsWith('.js')
  ? process.env['npm_execpath']
  : join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
/** The environment minus the npm_* variables an outer `npm test` sets (they would steer the inner npm), but its cache and user config. */
const KEEP = new Set(['npm_config_cache', 'npm_config_userconfig']);
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') || KEEP.has(k)));
const bin = (name: string) => join(ROOT, 'node_modules', '.bin', name);

function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: cleanEnv, timeout: 300_000, ...opts });
  const out = `${String(r.stdout)}${String(r.stderr)}`;
  assert.equal(r.status, 0, `${[cmd, ...args].join(' ')} failed (${r.status ?? r.signal ?? r.error?.message}):\n${out.slice(-3000)}`);
  return String(r.stdout);
}
const npm = (args: string[], opts: SpawnSyncOptions = {}) => run(process.execPath, [NPM_CLI, ...args], opts);
const pack = (dir: string, dest: string): string =>
  join(
    dest,
    (JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dest], { cwd: dir })) as { filename: string }[])[0]!
      .filename,
  );

test('the packed package installs without compilers, loads its prebuild and matches the reference backend', { timeout: 600_000 }, () => {
  assert.ok(existsSync(join(ROOT, 'dist', 'index.js')), 'dist/ is missing: `npm ci` (prepare) or `npm run build` makes it');
  // 1. the checkout as a package, unpacked; prepack's work (the host prebuild) done there
  const stage = join(tmp, 'stage');
  mkdirSync(stage);
  run('tar', ['xzf', pack(ROOT, tmp), '-C', stage]);
  const pkgDir = join(stage, 'package');
  run(process.execPath, [join(ROOT, 'scripts', 'prebuild.mjs'), '--host-only', '--package', pkgDir], { env: process.env });
  const final = join(tmp, 'final');
  mkdirSync(final);
  const tarball = pack(pkgDir, final);

  // 2. the tarball passes publint and arethetypeswrong (ESM-only: the CommonJS resolution is not a goal)
  run(bin('publint'), ['run', tarball, '--strict']);
  run(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'ascii']);

  // 3. an empty project, a PATH with node only, dependencies from the npm cache when there
  const pathDir = join(tmp, 'bin');
  mkdirSync(pathDir);
  symlinkSync(process.execPath, join(pathDir, 'node'));
  for (const tool of ['cc', 'gcc', 'g++', 'clang', 'make', 'python3']) {
    assert.ok(!existsSync(join(pathDir, tool)), `${tool} is reachable on the hidden PATH`);
  }
  const hidden = { ...cleanEnv, PATH: pathDir };
  const app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  npm(['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: app, env: hidden });
  const installed = join(app, 'node_modules', 'moekit');
  assert.ok(!existsSync(join(installed, 'build')), 'nothing may be compiled in the installed package');
  const prebuildDir = join(installed, 'prebuilds', `${process.platform}-${process.arch}`);
  assert.ok(existsSync(prebuildDir) && readdirSync(prebuildDir).some((f) => f.endsWith('.node')), `no prebuild in ${prebuildDir}`);
  const glibcBinary = join(prebuildDir, 'moekit.glibc.node');
  if (existsSync(glibcBinary)) {
    // it runs on glibc 2.28 (Node 20's floor): objdump lists every versioned symbol it needs
    const needs = run('objdump', ['-T', glibcBinary], { env: process.env }).match(/GLIBC_2\.[\d.]+/g) ?? [];
    const newest = needs.map((v) => v.slice(6).split('.').map(Number)).sort((a, b) => b[0]! - a[0]! || b[1]! - a[1]!)[0];
    assert.ok(newest && (newest[0]! < 2 || (newest[0] === 2 && newest[1]! <= 28)), `needs glibc ${newest?.join('.')}`);
  }

  // 4. `moekit info` names the prebuild; the install script would load it rather than compile
  const info = run(join(app, 'node_modules', '.bin', 'moekit'), ['info'], { cwd: app, env: hidden });
  assert.match(info, /^moekit: native backend, (avx512|avx2|scalar), \d+ threads/m, info);
  assert.ok(info.includes(`native binary: prebuilt ${prebuildDir}`), info);
  const install = run(process.execPath, [join(installed, 'scripts', 'build-native.mjs')], { cwd: installed, env: hidden });
  assert.match(install, /moekit: using the prebuilt native addon prebuilds\/.+; nothing to compile/, install);
  assert.ok(!existsSync(join(installed, 'build')), 'the install script compiled although a prebuild loads');

  // 5. an MoE layer (routed + shared expert) forward on the prebuild against the reference backend
  writeFileSync(
    join(app, 'forward.mjs'),
    `
    import { MoELayer, moeConfig, Generator, fromArray, noGrad, setBackend, backendInfo } from 'moekit';
    const H = 24;
    const cfg = moeConfig({ hiddenSize: H, router: { numExperts: 6, topK: 2 }, experts: { intermediateSize: 20 }, shared: { intermediateSize: 8, gate: 'sigmoid' } });
    const forward = (name) => {
      setBackend(name);
      const layer = new MoELayer(cfg, { dtype: 'f32', generator: new Generator(7) }).eval();
      const g = new Generator(9);
      const x = fromArray(Float32Array.from({ length: 40 * H }, () => 2 * g.uniform() - 1), [40, H]);
      return { backend: backendInfo().name, y: Array.from(noGrad(() => layer.forward(x)).dataSync()) };
    };
    console.log(JSON.stringify({ native: forward('native'), reference: forward('reference') }));
  `,
  );
  const { native, reference } = JSON.parse(run(process.execPath, ['forward.mjs'], { cwd: app, env: hidden })) as Record<
    string,
    { backend: string; y: number[] }
  >;
  assert.equal(native!.backend, 'native');
  assert.equal(reference!.backend, 'reference');
  assert.equal(native!.y.length, 40 * 24);
  const scale = Math.max(...reference!.y.map(Math.abs));
  assert.ok(scale > 1e-3, `the reference output is ~0 (max |y| = ${scale}): the comparison would prove nothing`);
  native!.y.forEach((v, i) =>
    assert.ok(Math.abs(v - reference!.y[i]!) <= 1e-5 * (1 + scale), `y[${i}]: native ${v}, reference ${reference!.y[i]}`),
  );
});

test('no translation unit of the native build is compiled with ISA flags (one binary for every x86-64)', () => {
  // node-gyp's make records each object's compile command in build/Release/.deps/**/*.o.d
  const depsDir = join(ROOT, 'build', 'Release', '.deps');
  assert.ok(existsSync(depsDir), `${depsDir} is missing: the native build did not run`);
  const commands = (readdirSync(depsDir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.o.d'))
    .map((f) => readFileSync(join(depsDir, f), 'utf8').split('\n')[0]!)
    .filter((line) => line.startsWith('cmd_') && /\.c\b/.test(line));
  assert.ok(commands.length >= 10, `only ${commands.length} C compile commands found in ${depsDir}`);
  const isaFlag = /\s'?-m(arch|cpu)=|\s'?-m(avx|sse[34]|ssse3|fma|bmi|f16c|popcnt|lzcnt|movbe)|\s'?-mtune=native/;
  for (const cmd of commands) assert.doesNotMatch(cmd, isaFlag, cmd);
});
