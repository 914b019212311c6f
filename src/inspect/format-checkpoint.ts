// Terminal rendering of a checkpoint check and of the per-expert weight norms.
import type { CheckpointCheck, ExpertNorms } from './check.js';
import { humanBytes, textTable } from './report.js';

const LIST_MAX = 20;

function list(title: string, items: string[]): string[] {
  if (items.length === 0) return [];
  const shown = items.slice(0, LIST_MAX).map((s) => `  ${s}`);
  if (items.length > LIST_MAX) shown.push(`  ... and ${items.length - LIST_MAX} more (--json lists all)`);
  return [`${title} (${items.length}):`, ...shown];
}

export function formatCheckpointCheck(c: CheckpointCheck): string {
  const out = [
    `checkpoint: ${c.files} file(s), ${c.tensors} tensors, ${humanBytes(c.bytes)}${c.outside ? `, ${c.outside} outside the decoder (not checked)` : ''}: ${c.ok ? 'every tensor matches the config' : 'MISMATCHES'}`,
  ];
  out.push(...list('missing', c.missing));
  out.push(...list('unexpected', c.unexpected));
  out.push(
    ...list(
      'wrong shape',
      c.wrongShape.map((w) => `${w.name}: [${w.actual.join(', ')}], expected [${w.expected.join(', ')}]`),
    ),
  );
  out.push(
    ...list(
      'wrong dtype',
      c.wrongDtype.map((w) => `${w.name}: ${w.actual}, expected ${w.expected}`),
    ),
  );
  out.push(...list('listed in the index but not in its shard', c.listedButAbsent));
  return out.join('\n');
}

/** One row per MoE layer: min / median / max norm, and the experts far from the median (< 0.5x or > 2x). */
export function formatExpertNorms(norms: ExpertNorms[]): string {
  if (norms.length === 0) return 'expert weight norms: none (no readable MoE layer)';
  const rows = [['layer', 'min', 'median', 'max', 'outliers (expert: norm)']];
  for (const l of norms) {
    const sorted = [...l.norms].sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)]!;
    const outliers = l.norms
      .map((n, e) => [e, n] as const)
      .filter(([, n]) => n < 0.5 * med || n > 2 * med)
      .map(([e, n]) => `${e}: ${n.toPrecision(4)}`);
    rows.push([
      String(l.layer),
      sorted[0]!.toPrecision(4),
      med.toPrecision(4),
      sorted[sorted.length - 1]!.toPrecision(4),
      outliers.join(', ') || '-',
    ]);
  }
  return `expert weight norms (Frobenius, gate + up + down):\n${textTable(rows, [1, 2, 3])}`;
}
