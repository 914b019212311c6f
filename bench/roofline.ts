// The f32 FMA roofline a bench row is read against: the machine's measured peak GFLOP/s on the
// ISA each side runs (moekit's kernels; the peer's OpenBLAS kernel family), and from it the
// highest ratio moekit could reach against that peer at all (its peak over the peer's rate).
// A ratio target above that ceiling cannot be met by kernels on this host, only by a peer that
// wastes time (docs/performance.md "The FMA roofline").
import { loadNativeAddon } from '../src/backend/native/addon.js';
import type { NativeIsa } from '../src/backend/native/addon.js';

type VectorIsa = Exclude<NativeIsa, 'scalar'>;

/** OpenBLAS kernel families by the widest vector FMA they issue (OpenBLAS's kernel/ tree); Zen runs the Haswell kernels. */
const OPENBLAS_CORE_ISA: Array<[RegExp, VectorIsa]> = [
  [/^(skylakex|cooperlake|sapphirerapids)$/i, 'avx512'],
  [/^(haswell|zen)$/i, 'avx2'],
  [/^(armv8|cortexa\d+|neoverse\w*|thunderx\w*|vortex|a64fx|emag8180|falkor|tsv110)$/i, 'neon'],
];

const VECTOR_ISAS: readonly string[] = ['avx512', 'avx2', 'neon'] satisfies VectorIsa[];

function isVectorIsa(isa: string | null): isa is VectorIsa {
  return isa !== null && VECTOR_ISAS.includes(isa);
}

export function openblasCoreIsa(core: string): VectorIsa | null {
  return OPENBLAS_CORE_ISA.find(([re]) => re.test(core))?.[1] ?? null;
}

export interface Roofline {
  /** Measured f32 FMA peak (GFLOP/s, all kernel threads) per ISA this CPU runs. */
  peaks: Partial<Record<VectorIsa, number>>;
  threads: number;
}

/**
 * Measures the peak of each ISA asked for (~ms each, best of 8 rounds; run it before the
 * timed work, on a quiet machine: a loaded core reads low). Names that are not vector ISAs
 * ('scalar', '-') and ISAs the CPU cannot run are left out.
 */
export function measureRoofline(isas: Array<string | null>, ms = 400): Roofline | null {
  const addon = loadNativeAddon().addon;
  if (!addon) return null;
  const peaks: Roofline['peaks'] = {};
  let threads = 0;
  for (const isa of new Set(isas)) {
    if (!isVectorIsa(isa)) continue;
    const p = addon.fmaPeak(isa, ms);
    if (p) {
      peaks[isa] = +p.gflops.toFixed(1);
      threads = p.threads;
    }
  }
  return Object.keys(peaks).length ? { peaks, threads } : null;
}

/** A row's place under the roofline: each side's share of its ISA's peak and the ratio ceiling. */
export function rooflineColumns(
  r: Roofline | null,
  ours: { isa: string; gflops: number },
  peer?: { isa: VectorIsa | null; gflops: number },
): { peak_fraction?: number; peer_peak_fraction?: number; ratio_ceiling?: number } {
  const mine = r?.peaks[ours.isa as VectorIsa];
  if (!mine) return {};
  const out: ReturnType<typeof rooflineColumns> = { peak_fraction: +(ours.gflops / mine).toFixed(3) };
  if (!peer || !(peer.gflops > 0)) return out;
  const theirs = peer.isa ? r!.peaks[peer.isa] : undefined;
  if (theirs) out.peer_peak_fraction = +(peer.gflops / theirs).toFixed(3);
  out.ratio_ceiling = +(mine / peer.gflops).toFixed(3);
  return out;
}

export function describeRoofline(r: Roofline | null): string {
  if (!r) return 'FMA roofline: not measured (no native addon)';
  const parts = Object.entries(r.peaks).map(([isa, g]) => `${isa} ${g} GFLOP/s`);
  return `FMA roofline (f32, ${r.threads} threads, measured now): ${parts.join(', ')}`;
}
