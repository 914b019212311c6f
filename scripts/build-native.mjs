#!/usr/bin/env node
// The package's `install` script. When a prebuilt binary in prebuilds/ loads
// here, there is nothing to do; otherwise it builds the native addon
// (build/Release/moekit_native.node) with node-gyp. A failed build is not an
// install failure: moekit then runs on the reference (TypeScript) backend, so
// this script prints one clear line and exits 0.
//
// Env: MOEKIT_SKIP_NATIVE_BUILD=1 skips the build; npm_config_build_from_source
// (`npm install --build-from-source`) compiles even when a prebuild loads.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNodeGyp, localNodeDir } from './node-gyp-locate.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const FALLBACK = 'the reference backend will be used';

if (process.env.MOEKIT_SKIP_NATIVE_BUILD === '1') {
  console.log(`moekit: MOEKIT_SKIP_NATIVE_BUILD=1, native addon not built; ${FALLBACK}`);
  process.exit(0);
}

/** The prebuild node-gyp-build picks for this platform, loaded: its path and ISA, or why not. */
function loadPrebuild() {
  const require = createRequire(join(root, 'package.json'));
  process.env.PREBUILDS_ONLY = '1'; // read when node-gyp-build loads: ignore any build/ here
  try {
    const file = require('node-gyp-build').resolve(root);
    const addon = require(file);
    return { file: relative(root, file), isa: addon.cpuInfo().isa };
  } catch (err) {
    return { error: err.message.split('\n')[0] };
  } finally {
    delete process.env.PREBUILDS_ONLY;
  }
}

const fromSource = ['true', '1'].includes(process.env.npm_config_build_from_source ?? '');
if (!fromSource) {
  const prebuild = loadPrebuild();
  if (prebuild.file) {
    console.log(`moekit: using the prebuilt native addon ${prebuild.file} (${prebuild.isa}); nothing to compile`);
    process.exit(0);
  }
  console.log(`moekit: no prebuilt native addon loads here (${prebuild.error}); compiling it`);
}

const gyp = findNodeGyp(root);
if (!gyp) {
  console.log(`moekit: native addon build failed (node-gyp not found); ${FALLBACK}`);
  process.exit(0);
}

const args = [gyp, 'rebuild'];
const nodeDir = localNodeDir();
if (nodeDir) args.push(`--nodedir=${nodeDir}`);
const res = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (res.error || res.status !== 0) {
  const why = res.error ? res.error.message : res.signal ? `node-gyp killed by ${res.signal}` : `node-gyp exited with code ${res.status}`;
  console.log(`moekit: native addon build failed (${why}); ${FALLBACK}`);
  process.exit(0);
}
console.log('moekit: native addon built (build/Release/moekit_native.node)');
