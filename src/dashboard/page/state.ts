// The page's model of a run: results.json (when written) and each variant's log, from the
// server's event stream or from files dropped on the page.
import type { CtMoeAblationResults } from '../../experiments/ctmoe/ablation.js';
import type { CtMoeVariantResult } from '../../experiments/ctmoe/train.js';
import type { RoutingRecordingIndex } from '../../moe/routing/record.js';
import { type LogLine, type VariantLog, emptyVariantLog, foldLog } from '../log-format.js';

export interface RunState {
  name: string;
  results: CtMoeAblationResults | null;
  logs: Map<string, VariantLog>;
}

export const emptyRun = (name = ''): RunState => ({ name, results: null, logs: new Map() });

export function addLines(run: RunState, variant: string, lines: readonly LogLine[]): void {
  run.logs.set(variant, foldLog(run.logs.get(variant) ?? emptyVariantLog(), lines));
}

export interface VariantInfo {
  key: string;
  label: string;
  color: string;
}

/** Variants in results order, then any others with a log. */
export function variantsOf(run: RunState): VariantInfo[] {
  const keys = [...(run.results?.order ?? [])];
  for (const k of [...run.logs.keys()].sort()) if (!keys.includes(k)) keys.push(k);
  return keys.map((key) => {
    const r = run.results?.variants[key];
    const s = run.logs.get(key)?.start;
    return { key, label: r?.label ?? s?.label ?? key, color: r?.color ?? s?.color ?? '#444441' };
  });
}

/**
 * A variant's log: the one written while training, or, for a run without logs (a results.json
 * dropped on the page), what its result holds: losses per step, log entries, the final S.
 */
export function variantLog(run: RunState, key: string): VariantLog | null {
  const log = run.logs.get(key);
  if (log && (log.steps.length > 0 || log.points.length > 0)) return log;
  const r = run.results?.variants[key]?.result;
  return r ? logFromResult(r) : (log ?? null);
}

function logFromResult(r: CtMoeVariantResult): VariantLog {
  const L = r.config.nLayer;
  const last = r.logs[r.logs.length - 1];
  return {
    start: {
      kind: 'start',
      variant: r.key,
      label: r.label,
      color: r.color,
      step: 0,
      steps: r.steps,
      numLayers: L,
      numExperts: r.config.numExperts,
      topK: r.config.topK,
      tokens: [],
    },
    steps: r.trainLoss.map((loss, i) => ({ kind: 'step', step: i + 1, loss, ce: r.trainCe[i]!, load: [] })),
    points: r.logs.map((entry) => ({
      kind: 'log',
      step: entry.step,
      entry,
      s: entry === last ? r.finalS : null,
      routing: { ids: [], weights: [] },
    })),
  };
}

/** The latest step trained, per variant. */
export function lastStep(log: VariantLog | null): number {
  return log && log.steps.length > 0 ? log.steps[log.steps.length - 1]!.step : 0;
}

/**
 * A routing recording's index (RoutingRecorder.save's .json) as a variant log: one step per
 * forward (its recorder step when set, else the forward's number), the counts of every layer.
 */
export function logFromRecording(name: string, index: RoutingRecordingIndex): VariantLog {
  const layers = [...new Set(index.records.map((r) => r.layer))];
  const byCall = new Map<number, (number[] | undefined)[]>();
  const stepOf = new Map<number, number>();
  for (const r of index.records) {
    const row = byCall.get(r.call) ?? new Array<number[] | undefined>(layers.length);
    row[layers.indexOf(r.layer)] = r.counts;
    byCall.set(r.call, row);
    stepOf.set(r.call, r.step ?? r.call);
  }
  const first = index.records[0];
  const calls = [...byCall.keys()].sort((a, b) => a - b).filter((c) => byCall.get(c)!.every((x) => x !== undefined)); // forwards every layer kept
  return {
    start: {
      kind: 'start',
      variant: name,
      label: name,
      color: '#4e79a7',
      step: 0,
      steps: calls.length,
      numLayers: layers.length,
      numExperts: first?.numExperts ?? 0,
      topK: first?.topK ?? 1,
      tokens: [],
    },
    steps: calls.map((c) => ({ kind: 'step', step: stepOf.get(c)!, loss: NaN, ce: NaN, load: byCall.get(c) as number[][] })),
    points: [],
  };
}
