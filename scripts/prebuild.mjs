#!/usr/bin/env node
// Makes the package's prebuilt Node-API binaries, prebuilds/<platform>-<arch>/moekit.<libc>.node,
// with prebuildify: the host's, and on a linux-x64 host also linux-x64 musl (musl-gcc, Debian's
// musl-tools) and linux-arm64 glibc (aarch64-linux-gnu-gcc, Debian's gcc-aarch64-linux-gnu) when
// those compilers are on PATH; a missing one is skipped with a line saying what to install.
// Runs at `npm pack` / `npm publish` (prepack); `--clean` (postpack) removes prebuilds/ again so a
// developer checkout keeps compiling at `npm ci`. No ISA flags: one x86-64 binary serves every CPU
// (the kernels pick AVX-512 / AVX2 / scalar at run time; the arm64 one runs NEON kernels, aarch64's baseline).
// The glibc ones run on glibc >= 2.28 whatever the build machine's (native/runtime/glibc_floor.h).
//
// It compiles in a staging copy of native/ and binding.gyp, never in the package's own build/
// (prebuildify moves the binary out of build/Release, and tests load that one).
//
// Usage: node scripts/prebuild.mjs [--host-only] [--package DIR] | --clean
//   --package DIR  the unpacked package to build from and write prebuilds/ into (default: this repo)
import { spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, cpSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { findNodeGyp, localNodeDir } from './node-gyp-locate.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  options: { 'host-only': { type: 'boolean' }, package: { type: 'string' }, clean: { type: 'boolean' } },
});
const pkgDir = resolve(opts.package ?? root);

if (opts.clean) {
  rmSync(join(pkgDir, 'prebuilds'), { recursive: true, force: true });
  process.exit(0);
}

/** ELF e_machine of each arch we build (a cross compile that silently built for the host fails the check). */
const ELF_MACHINE = { x64: 62, arm64: 183 };
const hostLibc = process.platform !== 'linux' ? null : process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl';
const host = { arch: process.arch, libc: hostLibc, cc: null };
const cross = [
  { arch: 'x64', libc: 'musl', cc: 'musl-gcc', apt: 'musl-tools' },
  { arch: 'arm64', libc: 'glibc', cc: 'aarch64-linux-gnu-gcc', strip: 'aarch64-linux-gnu-strip', apt: 'gcc-aarch64-linux-gnu' },
];
const targets = [host];
if (!opts['host-only'] && process.platform === 'linux' && process.arch === 'x64' && hostLibc === 'glibc') targets.push(...cross);

const onPath = (cmd) =>
  (process.env.PATH ?? '').split(delimiter).some((d) => {
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });

const nodeGyp = findNodeGyp(root);
if (!nodeGyp) throw new Error('prebuild: node-gyp not found (run `npm ci` in the moekit checkout)');
const prebuildify = createRequire(join(root, 'package.json')).resolve('prebuildify/bin.js');
const stage = mkdtempSync(join(tmpdir(), 'moekit-prebuild-'));
for (const part of ['native', 'binding.gyp', 'package.json']) cpSync(join(pkgDir, part), join(stage, part), { recursive: true });

/** The oldest glibc the glibc binaries run on (Node 20's floor); native/runtime/glibc_floor.h binds the newer symbols. */
const GLIBC_FLOOR = [2, 28];
const GLIBC_FLOOR_HEADER = join(stage, 'native', 'runtime', 'glibc_floor.h');

/** The glibc versions above GLIBC_FLOOR that `file` needs (the names of its version needs sit in .dynstr). */
function glibcAboveFloor(file) {
  const names = new Set(
    readFileSync(file)
      .toString('latin1')
      .match(/GLIBC_2\.[0-9]+(\.[0-9]+)?/g) ?? [],
  );
  const above = ([maj, min]) => maj > GLIBC_FLOOR[0] || (maj === GLIBC_FLOOR[0] && min > GLIBC_FLOOR[1]);
  return [...names].filter((n) => above(n.slice(6).split('.').map(Number))).sort();
}

/** Reads the ELF header: the machine, and whether the binary links glibc (libc.so.6) or not. */
function elfFacts(file) {
  const head = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  readSync(fd, head, 0, 20, 0);
  closeSync(fd);
  if (head.readUInt32BE(0) !== 0x7f454c46) return { machine: -1, glibc: false };
  return { machine: head.readUInt16LE(18), glibc: readFileSync(file).includes('libc.so.6') };
}

let failed = false;
try {
  for (const t of targets) {
    const label = `${process.platform}-${t.arch}${t.libc ? ` ${t.libc}` : ''}`;
    if (t.cc && !onPath(t.cc)) {
      console.log(`prebuild: ${label} skipped (${t.cc} not on PATH; apt-get install ${t.apt})`);
      continue;
    }
    const env = { ...process.env, JOBS: process.env.JOBS ?? 'max' };
    const nodeDir = localNodeDir();
    if (nodeDir) env.npm_config_nodedir = nodeDir;
    // gyp's make files link with CXX: a C-only addon links fine with the C compiler
    if (t.cc) Object.assign(env, { CC: t.cc, CXX: t.cc, LINK: t.cc });
    if (t.libc === 'glibc') env.CFLAGS = `${env.CFLAGS ?? ''} -include ${GLIBC_FLOOR_HEADER}`.trim();
    const args = [
      prebuildify,
      '--napi',
      '--strip',
      '--target',
      process.versions.node,
      '--arch',
      t.arch,
      '--cwd',
      stage,
      '--out',
      pkgDir,
      '--node-gyp',
      nodeGyp,
    ];
    if (t.libc) args.push('--tag-libc', '--libc', t.libc);
    if (t.strip) args.push('--strip-bin', t.strip);
    console.log(`prebuild: ${label}${t.cc ? ` with ${t.cc}` : ''}`);
    const res = spawnSync(process.execPath, args, { cwd: stage, env, stdio: ['ignore', 'ignore', 'inherit'] });
    const file = join(pkgDir, 'prebuilds', `${process.platform}-${t.arch}`, `moekit${t.libc ? `.${t.libc}` : ''}.node`);
    if (res.status !== 0) {
      console.error(`prebuild: ${label} failed (prebuildify exited with ${res.status ?? res.signal})`);
      failed = true;
      continue;
    }
    const elf = process.platform === 'linux' ? elfFacts(file) : null;
    if (elf && (elf.machine !== ELF_MACHINE[t.arch] || elf.glibc !== (t.libc === 'glibc'))) {
      console.error(`prebuild: ${file} is not a ${label} binary (ELF machine ${elf.machine}, links glibc: ${elf.glibc})`);
      rmSync(file);
      failed = true;
      continue;
    }
    const tooNew = elf?.glibc ? glibcAboveFloor(file) : [];
    if (tooNew.length > 0) {
      console.error(
        `prebuild: ${file} needs ${tooNew.join(', ')}, above glibc ${GLIBC_FLOOR.join('.')}: bind the symbol in native/runtime/glibc_floor.h (objdump -T names it)`,
      );
      rmSync(file);
      failed = true;
      continue;
    }
    console.log(`prebuild: wrote ${file}`);
  }
} finally {
  rmSync(stage, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
