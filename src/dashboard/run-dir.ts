// What the dashboard server reads from a run directory: results.json and each variant's
// log.jsonl, by names checked to stay inside the directory (no '..', no separators, no links out).
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { RESULTS_JSON } from '../experiments/ctmoe/ablation.js';
import { LOG_JSONL, type LogLine } from './log-format.js';

/** A user-facing request error: the server answers it with this status and the message, no stack. */
export class RequestError extends Error {
  constructor(
    readonly status: 400 | 404,
    message: string,
  ) {
    super(message);
  }
}

const VARIANT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export class RunDir {
  readonly root: string;

  constructor(dir: string) {
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      throw new RangeError(`run directory '${dir}' does not exist or is not a directory`);
    this.root = realpathSync(dir);
  }

  /** results.json, or null while the first variant trains. */
  results(): unknown {
    const f = join(this.root, RESULTS_JSON);
    if (!existsSync(f)) return null;
    try {
      return JSON.parse(readFileSync(f, 'utf8'));
    } catch {
      return null; // written atomically, so only a foreign file gets here
    }
  }

  /** Variant directories holding a log.jsonl, by name. */
  variants(): string[] {
    return readdirSync(this.root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && VARIANT_NAME.test(d.name) && existsSync(join(this.root, d.name, LOG_JSONL)))
      .map((d) => d.name)
      .sort();
  }

  /** The path of a variant's log.jsonl, after checking the name and that it resolves inside the run. */
  logPath(variant: string): string {
    if (!VARIANT_NAME.test(variant)) {
      throw new RequestError(
        400,
        `variant '${variant.slice(0, 120)}' is not a variant name (letters, digits, '.', '_', '-'; not starting with '.')`,
      );
    }
    const f = join(this.root, variant, LOG_JSONL);
    if (!existsSync(f))
      throw new RequestError(
        404,
        `variant '${variant}' has no ${LOG_JSONL} in this run (variants: ${this.variants().join(', ') || 'none yet'})`,
      );
    const real = realpathSync(f);
    if (!real.startsWith(this.root + sep)) throw new RequestError(400, `variant '${variant}' resolves outside the run directory`);
    return real;
  }

  /** The complete lines of a variant's log from byte `offset` on, and the offset after them. */
  readLog(variant: string, offset = 0): { lines: LogLine[]; offset: number } {
    const f = this.logPath(variant);
    const size = statSync(f).size;
    if (size <= offset) return { lines: [], offset };
    const buf = Buffer.alloc(size - offset);
    const fd = openSync(f, 'r');
    try {
      readSync(fd, buf, 0, buf.length, offset);
    } finally {
      closeSync(fd);
    }
    const end = buf.lastIndexOf(0x0a) + 1; // a partly written last line waits for the next read
    const text = buf.subarray(0, end).toString('utf8');
    const lines = text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as LogLine);
    return { lines, offset: offset + end };
  }
}
