// How experts are split over a group of ranks.
import type { ExpertShard } from '../moe/layer.js';

/** E / size experts per rank; a one-line error when E is not divisible by the group size. */
export function localExpertCount(numExperts: number, groupSize: number, kind: string): number {
  if (numExperts % groupSize !== 0) {
    throw new RangeError(`${kind} MoE block: numExperts ${numExperts} is not divisible by the ${kind.toUpperCase()} group size ${groupSize}; choose a group size that divides the experts`);
  }
  return numExperts / groupSize;
}

/** The experts rank `rank` of `groupSize` holds: E / size of them, contiguous (MoELayerOptions.expertShard). */
export function expertShardFor(numExperts: number, group: { rank: number; size: number }, kind = 'ep'): ExpertShard {
  const count = localExpertCount(numExperts, group.size, kind);
  return { first: group.rank * count, count };
}

/** [S] local expert of each row, from E+1 segment offsets. */
export function expertOfRows(segOffsets: Int32Array): Int32Array {
  const out = new Int32Array(segOffsets[segOffsets.length - 1]!);
  for (let e = 0; e + 1 < segOffsets.length; e++) out.fill(e, segOffsets[e]!, segOffsets[e + 1]!);
  return out;
}
