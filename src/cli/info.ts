// `moekit info`: which backend runs, which native binary (prebuilt or compiled, its path) and the
// ISA its kernels picked, each with why.
import type { Command } from 'commander';
import { backendInfo } from '../backend/registry.js';
import { loadNativeAddon } from '../backend/native/addon.js';

/** Why the kernels run the ISA they do: MOEKIT_ISA caps the one cpuid found. */
function isaWhy(isa: string): string {
  const cap = process.env['MOEKIT_ISA'];
  if (cap) return `cpuid's best, capped by MOEKIT_ISA=${cap}`;
  return isa === 'scalar' && process.arch !== 'x64' ? `no SIMD kernels for ${process.arch} yet` : "the best this CPU's cpuid reports";
}

export function infoLines(): string[] {
  const lines = [backendInfo().reason];
  const loaded = loadNativeAddon();
  if (!loaded.addon) return [...lines, `native binary: none: ${loaded.reason}`];
  const { origin, file, why } = loaded.binary;
  const isa = loaded.addon.cpuInfo().isa;
  return [...lines, `native binary: ${origin} ${file}: ${why}`, `native ISA: ${isa}: ${isaWhy(isa)}`];
}

export function registerInfoCommand(program: Command): void {
  program
    .command('info')
    .description('print which backend, native binary and ISA run, and why')
    .action(() => {
      for (const line of infoLines()) console.log(line);
    });
}
