// RoutingReplay: forces a recorded routing onto later forwards of the same model. Each layer's
// n-th forward after attach() takes the layer's n-th kept record: its top-k ids and its combine
// weights, as constants (the router still runs; its scores feed the aux losses, but the experts
// and their weights are the recorded ones, so nothing reaches the router through the combine).
// With the experts unchanged, a replayed forward equals the recorded one bit for bit.
import type { Module } from '../../nn/module.js';
import type { RouterOutput } from '../contracts.js';
import type { MoELayer } from '../layer.js';
import { arrayLike } from '../tensors.js';
import type { RoutingHook } from './hook.js';
import type { RoutingRecord } from './record.js';
import { moeLayersOf } from './recorder.js';

export class RoutingReplay {
  private readonly queues = new Map<MoELayer, { name: string; records: RoutingRecord[]; next: number }>();

  constructor(model: Module, records: readonly RoutingRecord[]) {
    for (const [name, layer] of moeLayersOf(model)) {
      const mine = records.filter((r) => r.layer === name).sort((a, b) => a.call - b.call);
      this.queues.set(layer, { name, records: mine, next: 0 });
    }
    const names = new Set([...this.queues.values()].map((q) => q.name));
    const stray = records.find((r) => !names.has(r.layer));
    if (stray)
      throw new RangeError(
        `RoutingReplay: the recording has layer '${stray.layer}', the model's MoE layers are ${[...names].map((n) => `'${n}'`).join(', ')}`,
      );
  }

  attach(): this {
    const hook: RoutingHook = { force: (layer, routed) => this.force(layer, routed) };
    for (const [layer, q] of this.queues) {
      if (layer.routingHook)
        throw new Error(`RoutingReplay: layer '${q.name}' already has a routing hook (a recorder or a replay); detach it first`);
      layer.routingHook = hook;
      q.next = 0;
    }
    return this;
  }

  detach(): void {
    for (const layer of this.queues.keys()) layer.routingHook = null;
  }

  private force(layer: MoELayer, routed: RouterOutput): RouterOutput {
    const q = this.queues.get(layer)!;
    const r = q.records[q.next];
    const call = q.next++;
    const [T, K] = routed.topkIds.shape as [number, number];
    if (!r)
      throw new RangeError(
        `RoutingReplay: layer '${q.name}' forward ${call}: the recording holds ${q.records.length} forwards of this layer`,
      );
    if (r.tokensKept !== r.numTokens)
      throw new RangeError(
        `RoutingReplay: layer '${q.name}' forward ${call}: the record kept ${r.tokensKept} of ${r.numTokens} tokens (recorded with maxTokens); only whole records replay`,
      );
    if (r.numTokens !== T || r.topK !== K)
      throw new RangeError(
        `RoutingReplay: layer '${q.name}' forward ${call}: recorded [${r.numTokens} tokens, top-${r.topK}], this forward has [${T}, top-${K}]`,
      );
    const w = routed.topkWeights;
    return {
      logits: routed.logits,
      scores: routed.scores,
      topkIds: arrayLike(routed.topkIds, r.ids, [T, K]),
      topkWeights: arrayLike(w, w.dtype === 'f64' ? Float64Array.from(r.weights) : Float32Array.from(r.weights), [T, K]).to(w.dtype),
      counts: arrayLike(routed.counts, r.counts),
    };
  }
}
