// The dashboard page: follows the server's event stream (live), or shows files dropped on it
// (results.json, log.jsonl) without a server. Every view re-renders from the run state.
import embed from 'vega-embed';
import type { TopLevelSpec } from 'vega-lite';
import type { LogLine, VariantLog } from '../log-format.js';
import { compareSpec, curvesSpec, entropySpec, loadSpec, sSpec, sTrendSpec } from './charts.js';
import { RECORDING_FORMAT, type RoutingRecordingIndex } from '../../moe/routing/record.js';
import { type RunState, addLines, emptyRun, lastStep, logFromRecording, variantLog, variantsOf } from './state.js';

/** Expert colours (Tableau 20), cycled past 20 experts. */
const EXPERT_COLORS = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
  '#a0cbe8',
  '#ffbe7d',
  '#ff9d9a',
  '#86bcb6',
  '#8cd17d',
  '#f1ce63',
  '#d4a6c8',
  '#fabfd2',
  '#d7b5a6',
  '#79706e',
];

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;
let run: RunState = emptyRun();
let events: EventSource | null = null;
let renders = 0;
const ui = { variant: '', layer: 0, point: -1 };

function connect(): void {
  if (!location.protocol.startsWith('http')) return;
  events = new EventSource('api/events');
  events.addEventListener('run', (e) => {
    const m = JSON.parse((e as MessageEvent).data) as { name: string; results: RunState['results'] };
    run.name = m.name;
    run.results = m.results;
    renderStatus();
    scheduleRender();
  });
  events.addEventListener('log', (e) => {
    const m = JSON.parse((e as MessageEvent).data) as { variant: string; lines: LogLine[] };
    addLines(run, m.variant, m.lines);
    renderStatus();
    scheduleRender();
  });
}

let pending = false;
let rendering: Promise<void> = Promise.resolve();
/** Renders at most every 300 ms while lines stream in; body[data-busy] is '1' until a render with nothing pending ends. */
function scheduleRender(): void {
  document.body.dataset['busy'] = '1';
  if (pending) return;
  pending = true;
  setTimeout(() => {
    pending = false;
    rendering = rendering.then(render, render).finally(() => {
      if (!pending) document.body.dataset['busy'] = '0';
    });
  }, 300);
}

async function show(selector: string, spec: TopLevelSpec | null, empty: string): Promise<void> {
  const el = $(selector);
  if (!spec) {
    el.innerHTML = `<p class="empty">${empty}</p>`;
    return;
  }
  await embed(el, spec, { renderer: 'svg', actions: false });
}

/** The controls and the status line for the current state; returns the selected variant's log. */
function syncControls(): VariantLog | null {
  const vs = variantsOf(run);
  if (!vs.some((v) => v.key === ui.variant)) ui.variant = vs[0]?.key ?? '';
  const log = ui.variant ? variantLog(run, ui.variant) : null;
  const sel = $<HTMLSelectElement>('#variant');
  sel.innerHTML = vs.map((v) => `<option value="${v.key}"${v.key === ui.variant ? ' selected' : ''}>${v.label}</option>`).join('');
  const L = log?.start?.numLayers ?? 0;
  ui.layer = Math.min(ui.layer, Math.max(0, L - 1));
  $<HTMLSelectElement>('#layer').innerHTML = Array.from(
    { length: L },
    (_, l) => `<option value="${l}"${l === ui.layer ? ' selected' : ''}>${l}</option>`,
  ).join('');
  const n = log?.points.length ?? 0;
  const point = $<HTMLInputElement>('#point');
  point.max = String(Math.max(0, n - 1));
  point.value = String(ui.point < 0 ? Math.max(0, n - 1) : Math.min(ui.point, n - 1));
  renderStatus();
  return log;
}

/** Each variant's step (cheap: updated on every event, the charts at most every 300 ms). */
function renderStatus(): void {
  $('#status').innerHTML =
    variantsOf(run)
      .map((v) => {
        const l = variantLog(run, v.key);
        const done = run.results?.variants[v.key]?.status === 'done';
        return `<span class="variant" data-variant="${v.key}" data-step="${lastStep(l)}"><b style="background:${v.color}"></b>${v.label}: step ${lastStep(l)}/${l?.start?.steps ?? '?'}${done ? ' (done)' : ''}</span>`;
      })
      .join('') || 'waiting for the first variant to start…';
  $('#run-name').textContent = run.name;
}

/** The selected log point of a variant (the latest unless the slider was moved). */
function selectedPoint(log: VariantLog | null) {
  if (!log || log.points.length === 0) return null;
  return log.points[ui.point < 0 ? log.points.length - 1 : Math.min(ui.point, log.points.length - 1)]!;
}

function renderTokens(log: VariantLog | null): void {
  const box = $('#view-tokens .tokens');
  const p = selectedPoint(log);
  const tokens = log?.start?.tokens ?? [];
  const ids = p?.routing.ids[ui.layer];
  if (!p || !ids || ids.length === 0 || tokens.length === 0) {
    box.innerHTML = '<p class="empty">no routing sample recorded for this variant yet</p>';
    $('#view-tokens .legend').innerHTML = '';
    return;
  }
  const N = log!.start!.numExperts;
  $('#view-tokens .legend').innerHTML =
    `layer ${ui.layer}, step ${p.step}, colour = first choice: ` +
    Array.from({ length: N }, (_, e) => `<span style="background:${EXPERT_COLORS[e % EXPERT_COLORS.length]}">expert ${e}</span>`).join('');
  box.replaceChildren(
    ...tokens.map((text, t) => {
      const span = document.createElement('span');
      span.className = 'tok';
      span.textContent = text.replace(/\n/g, '↵');
      const mine = p.routing.ids[ui.layer]![t] ?? [];
      span.dataset['index'] = String(t);
      span.dataset['experts'] = mine.join(',');
      span.style.background = EXPERT_COLORS[(mine[0] ?? 0) % EXPERT_COLORS.length]!;
      span.title = p.routing.ids
        .map(
          (layerIds, l) =>
            `layer ${l}: ${layerIds[t]!.map((e, k) => `expert ${e} (${p.routing.weights[l]![t]![k]!.toFixed(3)})`).join(', ')}`,
        )
        .join('\n');
      return span;
    }),
  );
}

async function render(): Promise<void> {
  const log = syncControls();
  const label = variantsOf(run).find((v) => v.key === ui.variant)?.label ?? ui.variant;
  const any = variantsOf(run).length > 0;
  const p = selectedPoint(log);
  $('#point-step').textContent = p ? `step ${p.step}` : '';
  const sPoint = p?.s ? p : [...(log?.points ?? [])].reverse().find((q) => q.s);
  renderTokens(log);
  await Promise.all([
    show('#view-curves .chart', any ? curvesSpec(run) : null, 'no variant has started'),
    show('#view-entropy .chart', log?.points.length ? entropySpec(run) : null, 'no log point yet'),
    show(
      '#view-load .chart',
      log?.steps.some((s) => s.load.length > 0) ? loadSpec(log, label) : null,
      'no per-step load recorded for this variant (results.json alone has none)',
    ),
    show(
      '#view-s .chart',
      sPoint?.s ? sSpec(sPoint.s, sPoint.step, label) : null,
      'no S for this variant (Standard MoE has none) or no log point yet',
    ),
    show('#view-s .trend', sTrendSpec(run), 'no variant with S has a log point yet'),
    show('#view-compare .chart', any ? compareSpec(run) : null, 'no variant has started'),
  ]);
  document.body.dataset['renders'] = String(++renders);
}

async function loadDropped(files: FileList): Promise<void> {
  const next = emptyRun([...files].map((f) => f.name).join(', '));
  try {
    for (const f of files) {
      const text = await f.text();
      if (f.name.endsWith('.jsonl')) {
        const lines = text
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => JSON.parse(l) as LogLine);
        const start = lines.find((l) => l.kind === 'start');
        addLines(next, start?.kind === 'start' ? start.variant : f.name.replace(/\.jsonl$/, ''), lines);
      } else {
        const json = JSON.parse(text) as { format?: string };
        if (json.format === 'moekit-ctmoe-ablation') next.results = json as RunState['results'];
        else if (json.format === RECORDING_FORMAT) next.logs.set(f.name, logFromRecording(f.name, json as RoutingRecordingIndex));
        else throw new Error(`${f.name}: neither a moekit results.json nor a routing recording's index (format '${json.format}')`);
      }
    }
  } catch (e) {
    $('#status').textContent = `could not load the dropped files: ${(e as Error).message}`;
    return;
  }
  events?.close();
  events = null;
  run = next;
  scheduleRender();
}

document.addEventListener('dragover', (e) => {
  e.preventDefault();
  document.body.classList.add('dragging');
});
document.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
document.addEventListener('drop', (e) => {
  e.preventDefault();
  document.body.classList.remove('dragging');
  if (e.dataTransfer?.files.length) void loadDropped(e.dataTransfer.files);
});
$('#variant').addEventListener('change', (e) => {
  ui.variant = (e.target as HTMLSelectElement).value;
  ui.point = -1;
  scheduleRender();
});
$('#layer').addEventListener('change', (e) => {
  ui.layer = Number((e.target as HTMLSelectElement).value);
  scheduleRender();
});
$('#point').addEventListener('input', (e) => {
  const el = e.target as HTMLInputElement;
  ui.point = el.value === el.max ? -1 : Number(el.value);
  scheduleRender();
});
connect();
scheduleRender();
