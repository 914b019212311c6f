// --out: not empty, a directory that exists or can be created (without Node 20's recursive
// mkdir, which loops forever under /proc), and writable: checked by writing a probe file,
// since access(W_OK) says yes to root on read-only places.
import { closeSync, openSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DirectoryError, ensureDirSync } from '../io/ensure-dir.js';

export function prepareOutDir(flag: string, value: string, opts: { create: boolean }): string {
  if (value.trim() === '') throw new DirectoryError(`${flag} must name a directory (got an empty string)`);
  let dir = resolve(value);
  if (opts.create) dir = ensureDirSync(dir);
  else if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new DirectoryError(`${flag} ${dir} is not a directory`);
  if (!opts.create) return dir;
  const probe = join(dir, `.moekit-write-probe-${process.pid}`);
  try {
    closeSync(openSync(probe, 'wx'));
    rmSync(probe, { force: true });
  } catch (err) {
    throw new DirectoryError(`${flag} ${dir} is not writable (${(err as Error).message})`);
  }
  return dir;
}
