// Running a native check under every instruction set the CPU offers: the kernels pick their
// code per ISA (native/runtime/cpu.h), so a test covers each by lowering the ISA in turn.
import assert from 'node:assert/strict';
import type { NativeAddon, NativeIsa } from '../../src/backend/native/addon.js';

/** The ISA the addon runs now and every lower one it can be set to, best first. */
export function isasFromCurrent(addon: NativeAddon): NativeIsa[] {
  const best = addon.cpuInfo().isa;
  const all: NativeIsa[] = best === 'neon' ? ['neon', 'scalar'] : ['avx512', 'avx2', 'scalar'];
  return all.slice(all.indexOf(best));
}

/** Runs fn under each of isasFromCurrent, then restores the ISA in use before. */
export function onEachIsa(addon: NativeAddon, fn: (isa: NativeIsa) => void): void {
  const start = addon.cpuInfo().isa;
  try {
    for (const isa of isasFromCurrent(addon)) {
      assert.equal(addon.setIsa(isa), isa);
      fn(isa);
    }
  } finally {
    addon.setIsa(start);
  }
}
