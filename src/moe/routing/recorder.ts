// RoutingRecorder: attached to a model, it keeps each MoE layer's routing per forward (top-k ids
// and weights per token, counts, drops, entropies, imbalance, selection bias) in bounded memory:
// a ring of the latest `capacity` records per layer, one forward in `every`, and at most
// `maxTokens` tokens' choices per record. save() writes a recording (recording-file.ts) that
// RoutingReplay can force onto a later forward.
import type { Module } from '../../nn/module.js';
import { MoELayer } from '../layer.js';
import type { RoutingHook } from './hook.js';
import type { RoutingRecord } from './record.js';
import { writeRoutingRecording } from './recording-file.js';

export interface RoutingRecorderOptions {
  /** Records kept per layer, the latest ones (default 1024). */
  capacity?: number;
  /** Record one forward in this many, per layer (default 1: all). */
  every?: number;
  /** Keep the choices of at most this many tokens per record, the first ones (default: all; such records do not replay). */
  maxTokens?: number;
}

/** A model's MoE layers with their module names. */
export function moeLayersOf(model: Module): [string, MoELayer][] {
  return [...model.namedModules()].filter((e): e is [string, MoELayer] => e[1] instanceof MoELayer);
}

function positiveInt(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`RoutingRecorder: ${name} must be an integer >= 1 (got ${v})`);
  return v;
}

export class RoutingRecorder {
  /** The current training step, stamped on each record (the training loop sets it). */
  step: number | null = null;
  private readonly capacity: number;
  private readonly every: number;
  private readonly maxTokens: number;
  private readonly layers: [string, MoELayer][];
  /** Per layer: a ring of records, its next write position, and the layer's forward count. */
  private readonly rings = new Map<MoELayer, { name: string; ring: RoutingRecord[]; next: number; calls: number }>();

  constructor(model: Module, options: RoutingRecorderOptions = {}) {
    this.capacity = positiveInt('capacity', options.capacity, 1024);
    this.every = positiveInt('every', options.every, 1);
    this.maxTokens = positiveInt('maxTokens', options.maxTokens, Number.MAX_SAFE_INTEGER);
    this.layers = moeLayersOf(model);
    if (this.layers.length === 0) throw new RangeError('RoutingRecorder: the model has no MoELayer');
  }

  /** Start recording (counts forwards from 0). A layer holds one hook at a time. */
  attach(): this {
    const hook: RoutingHook = { observe: (layer, d) => this.observe(layer, d) };
    for (const [name, layer] of this.layers) {
      if (layer.routingHook)
        throw new Error(`RoutingRecorder: layer '${name}' already has a routing hook (a recorder or a replay); detach it first`);
      layer.routingHook = hook;
      this.rings.set(layer, { name, ring: [], next: 0, calls: 0 });
    }
    return this;
  }

  detach(): void {
    for (const [, layer] of this.layers) layer.routingHook = null;
  }

  /** The kept records, by layer in model order, each layer's oldest first. */
  records(): RoutingRecord[] {
    const out: RoutingRecord[] = [];
    for (const [, layer] of this.layers) {
      const r = this.rings.get(layer);
      if (r) out.push(...r.ring.slice(r.next), ...r.ring.slice(0, r.next));
    }
    return out;
  }

  /** Write <path>.safetensors and <path>.json (atomically); returns the index's path. */
  save(path: string): string {
    return writeRoutingRecording(path, this.records());
  }

  private observe(layer: MoELayer, d: Parameters<NonNullable<RoutingHook['observe']>>[1]): void {
    const state = this.rings.get(layer)!;
    const call = state.calls++;
    if (call % this.every !== 0) return;
    const r = d.routing;
    const m = d.metrics;
    if (!m) throw new Error(`RoutingRecorder: layer ${state.name} keeps its routing on the device (webgpu); record on a CPU backend`);
    const [T, K] = r.topkIds.shape as [number, number];
    const kept = Math.min(T, this.maxTokens);
    const ids = r.topkIds.dataSync() as Int32Array;
    const w = r.topkWeights.dataSync();
    const record: RoutingRecord = {
      layer: state.name,
      call,
      step: this.step,
      numTokens: T,
      topK: K,
      numExperts: layer.cfg.router.numExperts,
      tokensKept: kept,
      ids: ids.slice(0, kept * K),
      weights: w instanceof Float64Array ? w.slice(0, kept * K) : Float32Array.from(w.subarray(0, kept * K)),
      counts: Int32Array.from(r.counts.dataSync()),
      droppedSlots: d.droppedSlots,
      routerEntropy: m.routerEntropy,
      usageEntropy: m.usageEntropy,
      loadImbalance: m.loadImbalance,
      deadExperts: m.deadExperts,
      bias: layer.selectionBias ? Float32Array.from(layer.selectionBias.bias.dataSync()) : null,
    };
    if (state.ring.length < this.capacity) state.ring.push(record);
    else {
      state.ring[state.next] = record; // over the oldest
      state.next = (state.next + 1) % this.capacity;
    }
  }
}
