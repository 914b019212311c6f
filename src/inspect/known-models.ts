// Config.json files of well-known MoE models, shipped in models/ (written from their public
// model cards; test/inspect-params.test.ts holds each to its published total / active size), so
// `moekit inspect deepseek-v3` works without a download.
import * as fs from 'node:fs';
import type { HfConfig } from '../moe/hf-config.js';

// the same relative path from src/inspect/ and dist/inspect/
const MODELS_DIR = new URL('../../models/', import.meta.url);

/** The names of the shipped configs (file names without .json). */
export function knownModels(): string[] {
  return fs
    .readdirSync(MODELS_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/** A shipped config by name, or null. */
export function knownModelConfig(name: string): HfConfig | null {
  if (!knownModels().includes(name)) return null;
  return JSON.parse(fs.readFileSync(new URL(`${name}.json`, MODELS_DIR), 'utf8')) as HfConfig;
}
