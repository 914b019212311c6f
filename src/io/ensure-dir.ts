// Create a directory and its missing parents, one mkdir at a time. Node 20's
// mkdirSync(recursive) loops forever at 100% CPU where the file system answers ENOENT for a
// directory that can never exist (e.g. /proc/x); here every failure is one clear error.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export class DirectoryError extends Error {
  override name = 'DirectoryError';
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** Make `dir` exist as a directory; returns its absolute path. */
export function ensureDirSync(dir: string): string {
  const target = resolve(dir);
  const missing: string[] = [];
  for (let at = target; ; at = dirname(at)) {
    try {
      if (!statSync(at).isDirectory()) throw new DirectoryError(`cannot create ${target}: ${at} exists and is not a directory`);
      break;
    } catch (err) {
      if (err instanceof DirectoryError) throw err;
      if (code(err) !== 'ENOENT' || dirname(at) === at) throw new DirectoryError(`cannot create ${target}: ${(err as Error).message}`);
      missing.push(at);
    }
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (err) {
      if (code(err) === 'EEXIST' && statSync(d).isDirectory()) continue; // made meanwhile by someone else
      const why = code(err) === 'ENOENT' ? 'the file system does not allow a directory there' : (err as Error).message;
      throw new DirectoryError(`cannot create ${target}: ${why}`);
    }
  }
  return target;
}
