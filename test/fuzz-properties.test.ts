// Property-based tests (fast-check, seeded; issue 27): the safetensors reader, the config
// validators, the CLI number parsers, and checkpoint resume after a SIGKILL at random points.
// The larger fuzz run (>= 10,000 files, >= 1,000 configs) is scripts/fuzz-readers.ts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import fc from 'fast-check';
import { parseFloatStrict, parseIntStrict } from '../src/cli/args.js';
import { runAblation } from '../src/experiments/ctmoe/ablation.js';
import { parseSafetensors, serializeSafetensors } from '../src/io/safetensors.js';
import { ConfigError } from '../src/moe/validate.js';
import { arbContents, arbMutatedFile, judge } from './helpers/safetensors-fuzz.js';
import { arbConfigCase, arbMoeInput, judgeConfig, judgeMoe } from './helpers/config-fuzz.js';
import { KILL_TEST_CONFIG, KILL_TEST_VARIANT, killTestData } from './helpers/ctmoe-kill-setup.js';

const SEED = 27;
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

test('safetensors: random valid files round-trip (dtype, shape, data bits, metadata)', () => {
  fc.assert(
    fc.property(arbContents, ({ tensors, metadata }) => {
      const back = parseSafetensors(serializeSafetensors(tensors, metadata));
      assert.deepEqual(back.metadata, metadata && Object.keys(metadata).length > 0 ? { ...metadata } : {});
      assert.deepEqual([...back.tensors.keys()].sort(), Object.keys(tensors).sort());
      for (const [name, t] of Object.entries(tensors)) {
        const b = back.tensors.get(name)!;
        assert.equal(b.dtype, t.dtype);
        assert.deepEqual(b.shape, t.shape);
        if (t.dtype === 'F16' || t.dtype === 'BF16') assert.equal(b.data.length, t.data.length);
        else assert.deepEqual([...b.data], [...t.data]);
      }
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test('safetensors: 3,000 mutated files give a SafetensorsError (short message) or a valid file, never anything else', () => {
  const counts: Record<string, number> = {};
  fc.assert(
    fc.property(arbMutatedFile, (m) => {
      const o = judge(m);
      counts[o.kind] = (counts[o.kind] ?? 0) + 1;
      assert.ok(
        o.kind === 'accepted' || o.kind === 'typed-error',
        `${m.op}: ${JSON.stringify(o, (_, v) => (v instanceof Error ? `${v.name}: ${v.message}` : v))}`,
      );
    }),
    { seed: SEED, numRuns: 3000 },
  );
  assert.ok((counts['typed-error'] ?? 0) > 1000 && (counts['accepted'] ?? 0) > 100, JSON.stringify(counts));
});

test('config validators: random overrides of every CT-MoE field and random MoE configs: ConfigError exactly when invalid', () => {
  fc.assert(
    fc.property(arbConfigCase, (c) => assert.equal(judgeConfig(c), 'ok')),
    { seed: SEED, numRuns: 1500 },
  );
  fc.assert(
    fc.property(arbMoeInput, (input) => assert.equal(judgeMoe(input), 'ok')),
    { seed: SEED, numRuns: 1000 },
  );
});

test('CLI number parsers: decimal integers / numbers in range, else an InvalidArgumentError naming the flag', () => {
  const text = fc.oneof(
    fc.integer({ min: -1e6, max: 1e6 }).map(String),
    fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }).map(String),
    fc.double().map(String),
    fc.double({ noNaN: true }).map((d) => d.toExponential(3)),
    fc.stringMatching(/^[-+0-9.eExX _]{0,10}$/),
    fc.string({ maxLength: 8 }),
  );
  fc.assert(
    fc.property(text, fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: 0, max: 1e9 }), (s, min, span) => {
      const max = min + span;
      const intOk = /^[+-]?[0-9]+$/.test(s) && BigInt(s) >= BigInt(min) && BigInt(s) <= BigInt(max);
      try {
        const n = parseIntStrict('--n', s, min, max);
        assert.ok(intOk, `accepted '${s}'`);
        assert.equal(BigInt(n), BigInt(s));
      } catch (e) {
        assert.ok(e instanceof InvalidArgumentError && e.message.includes('--n') && e.message.includes(`[${min}, ${max}]`), String(e));
        assert.ok(!intOk, `rejected '${s}'`);
      }
      // floats: only digits, sign, point and exponent, and a finite value (oracle independent of the regex)
      const floatOk = /^[-+0-9.eE]+$/.test(s) && Number.isFinite(Number(s));
      try {
        assert.equal(parseFloatStrict('--x', s), Number(s));
        assert.ok(floatOk, `accepted '${s}'`);
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assert.ok(e instanceof InvalidArgumentError && e.message.includes('--x'), String(e));
        assert.ok(!floatOk, `rejected '${s}'`);
      }
    }),
    { seed: SEED, numRuns: 3000 },
  );
});

/** Start the child, SIGKILL it `delayMs` after its `afterCheckpoints`-th checkpoint line (or when it ends). */
function killChildAt(out: string, afterCheckpoints: number, delayMs: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'helpers', 'ctmoe-kill-child.ts'), out], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve) => {
    let seen = 0;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      seen += chunk.split('\n').filter((l) => l.startsWith('checkpoint')).length;
      if (seen >= afterCheckpoints) setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.on('exit', () => resolve());
  });
}

test('checkpoint resume after SIGKILL at random points (child process) is bit-identical to an uninterrupted run', async () => {
  const reference = runAblation({ preset: KILL_TEST_CONFIG, outDir: mkdtemp(), variants: [KILL_TEST_VARIANT], data: killTestData() })
    .variants[KILL_TEST_VARIANT]!.result!;
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 8 }), async (afterCheckpoints, delayMs) => {
      const out = mkdtemp();
      await killChildAt(out, afterCheckpoints, delayMs);
      const resumed = runAblation({ preset: KILL_TEST_CONFIG, outDir: out, variants: [KILL_TEST_VARIANT], data: killTestData() }).variants[
        KILL_TEST_VARIANT
      ]!.result!;
      assert.deepEqual(resumed.trainLoss, reference.trainLoss);
      assert.deepEqual(resumed.domainPpl, reference.domainPpl);
      assert.deepEqual(resumed.finalS, reference.finalS);
      const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
      assert.deepEqual(saved.variants[KILL_TEST_VARIANT].result.trainLoss, reference.trainLoss);
    }),
    { seed: SEED, numRuns: 3 },
  );
});

function mkdtemp(): string {
  const d = mkdtempSync(join(tmpdir(), 'moekit-fuzz-'));
  dirs.push(d);
  return d;
}

test('olmoCorePreset and moeConfigFromHf reject what they do not know with a ConfigError', async () => {
  const { olmoCorePreset, moeConfigFromHf } = await import('../src/moe/presets.js');
  fc.assert(
    fc.property(fc.string(), (name) => {
      if (name === 'smallmoe' || name === 'olmoe_1B_7B') return;
      assert.throws(() => olmoCorePreset(name as 'smallmoe'), ConfigError);
    }),
    { seed: SEED, numRuns: 200 },
  );
  fc.assert(
    fc.property(fc.anything(), (c) => {
      try {
        moeConfigFromHf(c as Record<string, unknown>);
      } catch (e) {
        assert.ok(e instanceof ConfigError, `${String(e)}`);
      }
    }),
    { seed: SEED, numRuns: 500 },
  );
});
