// Matrix views into expert weight tensors of any layout (per-expert, stacked, fused gate/up,
// interleaved, either orientation), so loaders and exporters copy between layouts element by
// element without materialising transposes.
import type { GateUpLayout, Orientation } from '../config.js';

// A matrix view: element (o, i) of expert e's [out, in] weight lives at base + o·so + i·si.
export interface View {
  base: number;
  so: number;
  si: number;
}
export type Which = 'gate' | 'up';

export function plainView(e: number, O: number, In: number, orient: Orientation): View {
  return orient === 'out-in' ? { base: e * O * In, so: In, si: 1 } : { base: e * In * O, so: 1, si: O };
}

/** Gate or up half of a stacked [E, 2I, H] ('out-in') or [E, H, 2I] ('in-out') projection. */
export function gateUpView(e: number, which: Which, layout: 'fused' | 'interleaved', orient: Orientation, I: number, H: number): View {
  const r0 = layout === 'fused' ? (which === 'gate' ? 0 : I) : which === 'gate' ? 0 : 1;
  const step = layout === 'fused' ? 1 : 2;
  return orient === 'out-in' ? { base: e * 2 * I * H + r0 * H, so: step * H, si: 1 } : { base: e * H * 2 * I + r0, so: step, si: 2 * I };
}

export function gateUpBiasOffset(e: number, which: Which, o: number, layout: 'fused' | 'interleaved', I: number): number {
  return layout === 'fused' ? e * 2 * I + (which === 'gate' ? 0 : I) + o : e * 2 * I + 2 * o + (which === 'gate' ? 0 : 1);
}

export function copyMat(
  src: ArrayLike<number>,
  sv: View,
  dst: Float32Array | Float64Array | Uint16Array,
  dv: View,
  O: number,
  In: number,
): void {
  for (let o = 0; o < O; o++) {
    let s = sv.base + o * sv.so;
    let d = dv.base + o * dv.so;
    for (let i = 0; i < In; i++, s += sv.si, d += dv.si) dst[d] = src[s]!;
  }
}

/** Where each expert matrix lives in a bank with config (layout, orientation). */
export interface ExpertsLayout {
  layout: GateUpLayout;
  orientation: Orientation;
}

/** The bank's tensors by role: gate/up views into gateProj/upProj or gateUpProj. */
export function bankView(
  which: Which | 'down',
  e: number,
  L: ExpertsLayout,
  I: number,
  H: number,
): { tensor: 'gateProj' | 'upProj' | 'gateUpProj' | 'downProj'; view: View } {
  if (which === 'down') return { tensor: 'downProj', view: plainView(e, H, I, L.orientation) };
  if (L.layout === 'separate') return { tensor: which === 'gate' ? 'gateProj' : 'upProj', view: plainView(e, I, H, L.orientation) };
  return { tensor: 'gateUpProj', view: gateUpView(e, which, L.layout, L.orientation, I, H) };
}
