// Per-layer routing metrics from one forward pass (plain numbers, for logs).

export interface MoEMetrics {
  tokensPerExpert: Int32Array;
  /** max(c) / mean(c) over the slot counts (1 = perfect balance). */
  loadImbalance: number;
  /** Experts that received no slot. */
  deadExperts: number;
  /** Mean over tokens of the entropy of the router's (normalised) scores, in nats. */
  routerEntropy: number;
  /** Entropy of the slot-count distribution over experts (log E at balance). */
  usageEntropy: number;
  /** Dropped slots / all slots (0 when dropless). */
  droppedFraction: number;
  lbLoss: number | null;
  lbLossScaled: number | null;
  zLoss: number | null;
  zLossScaled: number | null;
}

export function countMetrics(counts: ArrayLike<number>): Pick<MoEMetrics, 'loadImbalance' | 'deadExperts' | 'usageEntropy'> {
  const n = counts.length;
  let total = 0;
  let max = 0;
  let dead = 0;
  for (let e = 0; e < n; e++) {
    total += counts[e]!;
    max = Math.max(max, counts[e]!);
    if (counts[e] === 0) dead++;
  }
  let h = 0;
  for (let e = 0; e < n; e++) {
    const p = total > 0 ? counts[e]! / total : 0;
    if (p > 0) h -= p * Math.log(p);
  }
  return { loadImbalance: total > 0 ? max / (total / n) : 0, deadExperts: dead, usageEntropy: h };
}

/** scores [T, E] row-major; each row is normalised to sum 1 first (sigmoid rows do not). */
export function meanRowEntropy(scores: ArrayLike<number>, T: number, E: number): number {
  if (T === 0) return 0;
  let acc = 0;
  for (let t = 0; t < T; t++) {
    let z = 0;
    for (let e = 0; e < E; e++) z += scores[t * E + e]!;
    for (let e = 0; e < E; e++) {
      const p = scores[t * E + e]! / z;
      if (p > 0) acc -= p * Math.log(p);
    }
  }
  return acc / T;
}
