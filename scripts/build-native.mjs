#!/usr/bin/env node
// Builds the native addon (build/Release/moekit_native.node) with node-gyp.
// Runs as the package's `install` script. A failed build is not an install
// failure: moekit then runs on the reference (TypeScript) backend, so this
// script prints one clear line and exits 0.
//
// Env: MOEKIT_SKIP_NATIVE_BUILD=1 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const FALLBACK = 'the reference backend will be used';

if (process.env.MOEKIT_SKIP_NATIVE_BUILD === '1') {
  console.log(`moekit: MOEKIT_SKIP_NATIVE_BUILD=1, native addon not built; ${FALLBACK}`);
  process.exit(0);
}

/** node-gyp's JS entry: the project's devDependency, else the one bundled with npm. */
function findNodeGyp() {
  const local = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(local)) return local;
  try {
    return createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    /* not resolvable from here */
  }
  // npm sets npm_execpath to its own cli.js; node-gyp ships inside npm.
  const npmCli = process.env.npm_execpath;
  if (npmCli) {
    const bundled = join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(bundled)) return bundled;
  }
  const beside = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules',
    'node-gyp', 'bin', 'node-gyp.js');
  return existsSync(beside) ? beside : null;
}

const gyp = findNodeGyp();
if (!gyp) {
  console.log(`moekit: native addon build failed (node-gyp not found); ${FALLBACK}`);
  process.exit(0);
}

// Offline-friendly: when npm passes no nodedir and this Node install ships its
// headers (e.g. /usr/include/node), build against them instead of downloading.
const args = [gyp, 'rebuild'];
const prefix = join(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'common.gypi'))) {
  args.push(`--nodedir=${prefix}`);
}
const res = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (res.error || res.status !== 0) {
  const why = res.error ? res.error.message
    : res.signal ? `node-gyp killed by ${res.signal}` : `node-gyp exited with code ${res.status}`;
  console.log(`moekit: native addon build failed (${why}); ${FALLBACK}`);
  process.exit(0);
}
console.log('moekit: native addon built (build/Release/moekit_native.node)');
