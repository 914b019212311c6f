// Where node-gyp and the Node headers are, for the scripts that compile the addon
// (build-native.mjs at install, prebuild.mjs at pack).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** node-gyp's JS entry: the project's devDependency, else the one bundled with npm; null if none. */
export function findNodeGyp(root) {
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
  const beside = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  return existsSync(beside) ? beside : null;
}

/**
 * Offline-friendly: when npm passes no nodedir and this Node install ships its headers
 * (e.g. /usr/include/node), the prefix to build against instead of downloading; else null.
 */
export function localNodeDir() {
  const prefix = join(dirname(process.execPath), '..');
  if (process.env.npm_config_nodedir || !existsSync(join(prefix, 'include', 'node', 'common.gypi'))) return null;
  return prefix;
}
