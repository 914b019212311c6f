// OLMo-core's post_batch(dry_run): after the last backward of a batch, before the optimiser
// step, each MoE router with bias_gamma moves its selection bias by γ·sign(mean(c) − c) over the
// counts c gathered since the last call, then resets c; dry_run computes and resets without
// moving the bias. Routers in eval mode are left alone (they gather no counts). postBatch walks
// a whole model (OLMo-core's Transformer.post_batch over its MoE blocks).
import type { Module } from '../../nn/module.js';
import { MoELayer } from '../layer.js';

export interface PostBatchOptions {
  dryRun?: boolean;
}

/** One layer: the bias delta (applied unless dryRun), or null when it has no selection bias, is in eval mode, or updated its bias on a device (webgpu). */
export function moePostBatch(layer: MoELayer, opts: PostBatchOptions = {}): Float64Array | null {
  if (!layer.selectionBias || !layer.training) return null;
  return layer.selectionBias.update({ dryRun: opts.dryRun ?? false });
}

/** Every MoELayer under `model` (itself included); returns the deltas by the layers' module paths. */
export function postBatch(model: Module, opts: PostBatchOptions = {}): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const [path, m] of model.namedModules()) {
    const d = m instanceof MoELayer ? moePostBatch(m, opts) : null;
    if (d) out.set(path, d);
  }
  return out;
}
