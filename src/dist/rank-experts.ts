// Which experts a rank runs and what every rank holds a copy of, for the parallel executions
// (ep-execution.ts, tp-execution.ts), and the capacities they give their experts.
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import { narrow } from '../ops/shape.js';
import type { Parameter } from '../nn/module.js';
import { expertCapacity } from '../moe/dispatch.js';
import { ExpertBank } from '../moe/experts.js';
import type { MoELayer } from '../moe/layer.js';
import { expertShardFor } from './partition.js';

/** The parameters every rank holds a full copy of (router, CT-MoE's S_raw, shared expert and its gate). */
export function replicatedParameters(layer: MoELayer): Parameter[] {
  return [layer.routerWeight, layer.routerBias, ...layer.topologyParameters(), ...(layer.sharedExpert?.parameters() ?? []), layer.sharedGate].filter(
    (p): p is Parameter => p !== null,
  );
}

/**
 * The experts this rank runs, [first, first + E/size): the layer's own bank when the layer was
 * built with this rank's expertShard (or holds all experts and the group is one rank), else a
 * copy of that slice of the layer's full bank (the full bank stays the caller's).
 */
export function rankExperts(layer: MoELayer, group: { rank: number; size: number }, kind: string): { bank: ExpertBank; first: number } {
  const E = layer.cfg.router.numExperts;
  const want = expertShardFor(E, group, kind);
  const held = layer.expertShard;
  if (held) {
    if (held.first !== want.first || held.count !== want.count)
      throw new RangeError(
        `${kind} MoE block: the layer holds experts [${held.first}, ${held.first + held.count}) but rank ${group.rank} of ${group.size} runs [${want.first}, ${want.first + want.count}); build it with expertShard: expertShardFor(${E}, group)`,
      );
    return { bank: layer.experts, first: want.first };
  }
  return { bank: group.size === 1 ? layer.experts : sliceExpertBank(layer, want.first, want.count), first: want.first };
}

/** A new bank of experts [start, start+count) of the layer's bank, with copies of their weights. */
function sliceExpertBank(layer: MoELayer, start: number, count: number): ExpertBank {
  const full = layer.experts;
  // its init draws are overwritten: take them from a generator of its own, so the default stream
  // (dropout) goes on as in a single process
  const local = new ExpertBank(count, full.hiddenSize, full.cfg, { dtype: full.downProj.dtype === 'f64' ? 'f64' : 'f32', generator: new Generator(0) });
  noGrad(() => {
    const fullParams = full.namedParameters();
    const localParams = new Map(local.namedParameters());
    for (const [name, p] of fullParams) {
      const q = localParams.get(name)!;
      q.storage = q.backend.copy(narrow(p, 0, start, count).storage);
    }
  });
  return local;
}

/** Per-expert capacity over T tokens as the single-process layer computes it (null: dropless). */
export function layerCapacity(layer: MoELayer, numTokens: number): number | null {
  const d = layer.cfg.dispatch;
  return d.capacityFactor === null ? null : expertCapacity(d.capacityFactor, layer.cfg.router.topK, numTokens, layer.cfg.router.numExperts, d.capacityMultiple);
}

/** OLMo-core's expert-parallel capacity: ep_world · allowed, allowed from the rank-local token count. */
export function expertParallelCapacity(layer: MoELayer, localTokens: number, epWorld: number): number | null {
  const c = layerCapacity(layer, localTokens);
  return c === null ? null : epWorld * c;
}
