// How experts are split over a group of ranks.

/** E / size experts per rank; a one-line error when E is not divisible by the group size. */
export function localExpertCount(numExperts: number, groupSize: number, kind: string): number {
  if (numExperts % groupSize !== 0) {
    throw new RangeError(`${kind} MoE block: numExperts ${numExperts} is not divisible by the ${kind.toUpperCase()} group size ${groupSize}; choose a group size that divides the experts`);
  }
  return numExperts / groupSize;
}
