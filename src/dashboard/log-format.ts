// The per-variant training log the dashboard reads: <run>/<variant>/log.jsonl, one JSON object a
// line, appended while a variant trains (src/experiments/ctmoe/dashboard-log.ts). Types and the
// fold of lines into a variant's state only: no Node imports, the page bundles this file too.
import type { CtMoeLogEntry } from '../experiments/ctmoe/train.js';

export const LOG_JSONL = 'log.jsonl';

/** Written when training starts or resumes (a resume at step s drops later lines: they were redone). */
export interface LogStart {
  kind: 'start';
  variant: string;
  label: string;
  color: string;
  step: number;
  steps: number;
  numLayers: number;
  numExperts: number;
  topK: number;
  /** The validation sample whose routing each log point records: token texts (code first, then prose). */
  tokens: string[];
}

/** Every optimiser step: its loss and the slots each expert got, per layer [layer][expert] (with --on-nonfinite skip, a skipped step's slots count in the next step's). */
export interface LogStep {
  kind: 'step';
  step: number;
  loss: number;
  ce: number;
  load: number[][];
}

/** Every log point: the trainer's log entry, S per layer (null: Standard MoE), the sample's routing. */
export interface LogPoint {
  kind: 'log';
  step: number;
  entry: CtMoeLogEntry;
  s: number[][][] | null;
  /** Per layer, per sample token: the top-k expert ids and their weights, in selection order. */
  routing: { ids: number[][][]; weights: number[][][] };
}

export type LogLine = LogStart | LogStep | LogPoint;

export interface VariantLog {
  start: LogStart | null;
  steps: LogStep[];
  points: LogPoint[];
}

export const emptyVariantLog = (): VariantLog => ({ start: null, steps: [], points: [] });

/** Add lines to a variant's state, in file order. */
export function foldLog(state: VariantLog, lines: readonly LogLine[]): VariantLog {
  for (const line of lines) {
    if (line.kind === 'start') {
      state.start = line;
      state.steps = state.steps.filter((s) => s.step <= line.step);
      state.points = state.points.filter((p) => p.step <= line.step);
    } else if (line.kind === 'step') state.steps.push(line);
    else if (line.kind === 'log') state.points.push(line);
  }
  return state;
}

/** Complete lines of a JSONL text (a partly written last line is left for later), and the characters consumed. */
export function parseJsonl(text: string): { lines: LogLine[]; consumed: number } {
  const end = text.lastIndexOf('\n') + 1;
  const lines = text
    .slice(0, end)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogLine);
  return { lines, consumed: end };
}

/** An expert is dead in a step when it got no slot, overloaded when it got more than this times its uniform share. */
export const OVERLOAD_FACTOR = 2;
