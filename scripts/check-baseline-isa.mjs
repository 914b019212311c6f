#!/usr/bin/env node
// Proof that the native addon runs on a baseline x86-64 CPU (SSE2, no AVX): runs an MoE layer
// forward and a GEMM on the native backend inside qemu-x86_64 emulating `-cpu qemu64`, logs every
// instruction block qemu translates (`-d in_asm`), and fails if any executed instruction needs
// more than SSE2 (VEX/EVEX-encoded, SSE3+, BMI, ...) or if cpuid-based dispatch did not pick
// the scalar kernels. qemu executes AVX even when its CPU model lacks it, hence the log scan.
// A manual check (qemu-user-static is ~380 MB installed, too much for CI); npm test checks the
// other half: no translation unit is compiled with ISA flags (test/package-install.test.ts).
//
// Usage: node scripts/check-baseline-isa.mjs [--cpu MODEL]   (after `npm ci`; needs Debian's
//   qemu-user-static). --cpu max (AVX2) must fail: it shows the scan catches what it looks for.
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const cpu = parseArgs({ options: { cpu: { type: 'string', default: 'qemu64' } } }).values.cpu;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'moekit-isa-'));
const log = join(work, 'in_asm.log');
const workload = join(work, 'workload.mjs');
writeFileSync(
  workload,
  `
  import { MoELayer, moeConfig, Generator, fromArray, matmul, noGrad, setBackend, backendInfo } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
  setBackend('native');
  const H = 24, g = new Generator(9);
  const layer = new MoELayer(moeConfig({ hiddenSize: H, router: { numExperts: 6, topK: 2 }, experts: { intermediateSize: 20 }, shared: { intermediateSize: 8, gate: 'sigmoid' } }), { dtype: 'f32', generator: new Generator(7) }).eval();
  const x = fromArray(Float32Array.from({ length: 40 * H }, () => 2 * g.uniform() - 1), [40, H]);
  noGrad(() => layer.forward(x)).dataSync();
  const a = fromArray(Float64Array.from({ length: 96 * 80 }, () => g.uniform()), [96, 80]);
  matmul(a, a, { transB: true }).dataSync();
  console.log(backendInfo().reason);
`,
);

const qemu = ['qemu-x86_64-static', 'qemu-x86_64'].find((q) => spawnSync(q, ['--version']).status === 0);
if (!qemu) {
  console.error('check-baseline-isa: qemu-x86_64 not found (apt-get install qemu-user-static)');
  process.exit(2);
}
const res = spawnSync(qemu, ['-cpu', cpu, '-d', 'in_asm', '-D', log, process.execPath, workload], { encoding: 'utf8' });
if (res.status !== 0) {
  console.error(`check-baseline-isa: the workload failed under ${qemu}:\n${res.stdout}${res.stderr}`);
  process.exit(1);
}
const reason = res.stdout.trim();

// Beyond SSE2: anything VEX/EVEX-encoded (mnemonics v*, mask registers k*), SSE3/SSSE3/SSE4, BMI,
// POPCNT/LZCNT/MOVBE/CRC32. tzcnt is left out: it runs as bsf on older CPUs and compilers and
// glibc emit it on purpose (node itself does).
const beyond = new RegExp(
  '^(v[a-z0-9]+|k(mov|and|or|xor|not|shift|test|unpck|add)[a-z]*|andn[lq]?$|bextr|blsr|blsi|blsmsk|shlx|shrx|sarx|rorx|pdep|pext' +
    '|popcnt|lzcnt|movbe|crc32|pshufb|pmulld|ptest|pextr[bdq]|pinsr[bdq]|rounds[sd]|roundp[sd]|blendv?p[sd]|pblend(vb|w)|insertps|extractps' +
    '|dpp[sd]|hadd|hsub|pmins[bd]|pmaxs[bd]|pminu[wd]|pmaxu[wd]|pcmpeqq|pcmpgtq|pcmp[ei]str|packusdw|pmov[sz]x|lddqu|movddup|movs[hl]dup' +
    '|addsubp|palignr|pabs|psign|pmaddubsw|pmulhrsw|phadd|phsub|movntdqa|mpsadbw|phminposuw)',
);
const found = new Map();
let executed = 0;
for await (const line of createInterface({ input: createReadStream(log) })) {
  const m = /^0x([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*(\S+)/.exec(line);
  if (!m) continue;
  executed++;
  if (beyond.test(m[2])) found.set(m[2], (found.get(m[2]) ?? 0) + 1);
}
rmSync(work, { recursive: true, force: true });

console.log(`${reason}\n${executed} translated instructions scanned (node, V8, glibc and the addon)`);
if (found.size > 0) {
  console.error(`check-baseline-isa: instructions beyond SSE2 ran: ${[...found].map(([k, n]) => `${k} x${n}`).join(', ')}`);
  process.exit(1);
}
if (!/native backend, scalar/.test(reason)) {
  console.error('check-baseline-isa: on a baseline CPU the native backend should run its scalar kernels');
  process.exit(1);
}
console.log('check-baseline-isa: no instruction beyond x86-64 baseline (SSE2) ran');
