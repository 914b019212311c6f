// `npm run bench -- moe --dtype bf16`: the MoE layer's forward+backward in bf16 (the layer built
// in bf16 through MoELayer's `dtype` option, never held in f32; its input cast with .to('bf16'):
// bf16 weights, activations and gradients, routing in f32)
// against moekit f32 and against PyTorch's layer in bf16 on the CPU (bench/peer_bf16.py, Debian's
// python3-torch), in the same command: throughput (tokens/s) and each process's peak RSS. Each
// number is the median over --repeats fresh processes per side, taking turns as bench/moe.ts does.
// Memory twice: peak RSS (memory_vs_f32), and its growth above the RSS the process had before it
// built the layer (growth_vs_f32): Node's own ~105 MB is in both peaks, and hides how much of the
// layer's own memory bf16 saves. --autocast adds the f32 layer under withAutocast('bf16').
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Row } from './moe.js';
import { PEER_PYTHON, median, torchPeerMissing } from './util.js';

interface PeerRow {
  tokens_per_s: number;
  peak_rss_mb: number;
}

interface Bf16Options {
  json: boolean;
  peer: boolean;
  /** Also the f32 layer under withAutocast('bf16'). */
  autocast: boolean;
  v8DefaultGc: boolean;
  peerDir: string;
  runChild: <T extends { isa: string }>(spec: string, v8DefaultGc: boolean) => T;
}

const PEER_NAMES: Record<string, string> = {
  small: 'small',
  'ct-moe': 'ct-moe-paper',
  'olmoe-like': 'olmoe-like',
  'mixtral-like': 'mixtral-like',
};

/** The peer in bf16: best of its two dispatch styles, one fresh process each. */
function peerOnce(name: string, peerDir: string): PeerRow {
  const script = new URL('./peer_bf16.py', import.meta.url).pathname;
  const rows = ['naive', 'sorted'].map((style) => {
    const out = execFileSync(PEER_PYTHON, [script, peerDir, PEER_NAMES[name]!, style], {
      encoding: 'utf8',
      cwd: new URL('.', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return JSON.parse(out.trim().split('\n').pop()!) as PeerRow;
  });
  return { tokens_per_s: Math.max(...rows.map((r) => r.tokens_per_s)), peak_rss_mb: Math.min(...rows.map((r) => r.peak_rss_mb)) };
}

export function bf16Comparison(names: string[], repeats: number, o: Bf16Options): void {
  const missing = !o.peer
    ? 'skipped (--no-peer)'
    : existsSync(join(o.peerDir, 'moe_ref.py'))
      ? torchPeerMissing()
      : `the peer's moe_ref.py is not in ${o.peerDir}`;
  const lines: Record<string, unknown>[] = [];
  for (const name of names) {
    const f32: Row[] = [];
    const bf16: Row[] = [];
    const autocast: Row[] = [];
    const peer: PeerRow[] = [];
    for (let rep = 0; rep < repeats; rep++) {
      const turns = [
        () => f32.push(o.runChild<Row>(`${name}:fwd+bwd:f32`, o.v8DefaultGc)),
        () => bf16.push(o.runChild<Row>(`${name}:fwd+bwd:bf16`, o.v8DefaultGc)),
      ];
      if (o.autocast) turns.push(() => autocast.push(o.runChild<Row>(`${name}:fwd+bwd:autocast`, o.v8DefaultGc)));
      if (missing === null) turns.push(() => peer.push(peerOnce(name, o.peerDir)));
      if (rep % 2 === 1) turns.reverse(); // drift hits every side alike
      for (const t of turns) t();
    }
    const tps = (rows: { tokens_per_s: number }[]) => median(rows.map((r) => r.tokens_per_s));
    const mb = (rows: { peak_rss_mb: number }[]) => Math.max(...rows.map((r) => r.peak_rss_mb));
    // the peak's growth above the process's RSS before the layer existed (its own start, each process)
    const grown = (rows: Row[]) => Math.max(...rows.map((r) => r.peak_rss_mb - (r.start_rss_mb ?? 0)));
    const line: Record<string, unknown> = {
      bench: 'moe-bf16',
      config: name,
      mode: 'fwd+bwd',
      f32_tokens_per_s: tps(f32),
      bf16_tokens_per_s: tps(bf16),
      speed_vs_f32: +(tps(bf16) / tps(f32)).toFixed(3),
      f32_peak_rss_mb: mb(f32),
      bf16_peak_rss_mb: mb(bf16),
      memory_vs_f32: +(mb(bf16) / mb(f32)).toFixed(3),
      f32_growth_mb: grown(f32),
      bf16_growth_mb: grown(bf16),
      growth_vs_f32: +(grown(bf16) / grown(f32)).toFixed(3),
    };
    if (autocast.length > 0) {
      line['autocast_tokens_per_s'] = tps(autocast);
      line['autocast_speed_vs_f32'] = +(tps(autocast) / tps(f32)).toFixed(3);
      line['autocast_peak_rss_mb'] = mb(autocast);
    }
    if (peer.length > 0) {
      line['torch_bf16_tokens_per_s'] = tps(peer);
      line['speed_vs_torch_bf16'] = +(tps(bf16) / tps(peer)).toFixed(3);
      line['torch_bf16_peak_rss_mb'] = mb(peer);
    }
    lines.push(line);
  }
  if (o.json) {
    for (const l of lines) console.log(JSON.stringify(l));
    return;
  }
  if (missing !== null) console.log(`PyTorch bf16 peer not run: ${missing}`);
  console.table(lines.map(({ bench: _b, ...rest }) => rest));
}
