import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeFileAtomic, writeFileAtomicSync, writeJsonAtomic, writeJsonAtomicSync } from '../src/io/index.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'moekit-atomic-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function freshDir(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

test('writes bytes and strings, creating parent directories, leaving no temp files', async () => {
  const dir = freshDir('basic');
  const a = path.join(dir, 'deep', 'er', 'a.bin');
  await writeFileAtomic(a, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...fs.readFileSync(a)], [1, 2, 3]);
  await writeFileAtomic(a, 'replaced');
  assert.equal(fs.readFileSync(a, 'utf8'), 'replaced');

  const b = path.join(dir, 'sync', 'b.txt');
  writeFileAtomicSync(b, 'héllo');
  writeFileAtomicSync(b, new Uint8Array([0x6f, 0x6b]));
  assert.equal(fs.readFileSync(b, 'utf8'), 'ok');

  assert.deepEqual(fs.readdirSync(path.join(dir, 'deep', 'er')), ['a.bin']);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'sync')), ['b.txt']);
});

test('writeJsonAtomic writes pretty JSON with a trailing newline', async () => {
  const dir = freshDir('json');
  const value = { name: 'moe', experts: [1, 2], nested: { ok: true } };
  await writeJsonAtomic(path.join(dir, 'a.json'), value);
  writeJsonAtomicSync(path.join(dir, 'b.json'), value);
  const expected = `${JSON.stringify(value, null, 2)}\n`;
  assert.equal(fs.readFileSync(path.join(dir, 'a.json'), 'utf8'), expected);
  assert.equal(fs.readFileSync(path.join(dir, 'b.json'), 'utf8'), expected);
  await assert.rejects(writeJsonAtomic(path.join(dir, 'c.json'), undefined), /not JSON-serializable/);
});

test('a value that fails to serialize leaves the old target untouched', async () => {
  const dir = freshDir('json-fail');
  const file = path.join(dir, 'state.json');
  fs.writeFileSync(file, 'old');
  const poisoned = {
    toJSON() {
      throw new Error('boom');
    },
  };
  await assert.rejects(writeJsonAtomic(file, poisoned), /boom/);
  assert.throws(() => writeJsonAtomicSync(file, poisoned), /boom/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'old');
  assert.deepEqual(fs.readdirSync(dir), ['state.json']);
});

test('failure at the rename step removes the fully written temp file', async () => {
  // A non-empty directory cannot be replaced by rename(2), even as root.
  const dir = freshDir('rename-fail');
  const target = path.join(dir, 'target');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'keep'), 'x');
  await assert.rejects(writeFileAtomic(target, 'data'), (e: NodeJS.ErrnoException) =>
    ['EISDIR', 'ENOTEMPTY', 'EEXIST', 'EPERM'].includes(e.code!),
  );
  assert.throws(
    () => writeFileAtomicSync(target, 'data'),
    (e: NodeJS.ErrnoException) => ['EISDIR', 'ENOTEMPTY', 'EEXIST', 'EPERM'].includes(e.code!),
  );
  assert.deepEqual(fs.readdirSync(dir), ['target']);
  assert.deepEqual(fs.readdirSync(target), ['keep']);
});

// Fail genuinely mid-write: a child process with a file-size limit (ulimit -f)
// gets EFBIG part way through the temp file (Node ignores SIGXFSZ).
test('failure mid-write (EFBIG) never leaves a partial target or a temp file', { skip: process.platform === 'win32' }, () => {
  const dir = freshDir('efbig');
  const target = path.join(dir, 'model.bin');
  fs.writeFileSync(target, 'previous contents');
  const script = path.join(tmp, 'efbig-child.mts');
  const atomicUrl = pathToFileURL(path.join(repoRoot, 'src', 'io', 'atomic.ts')).href;
  fs.writeFileSync(
    script,
    `
    import { writeFileAtomic, writeFileAtomicSync } from ${JSON.stringify(atomicUrl)};
    const data = new Uint8Array(8 * 1024 * 1024).fill(0x61);
    const codes = [];
    try { writeFileAtomicSync(process.argv[2], data); codes.push('ok'); } catch (e) { codes.push(e.code); }
    try { await writeFileAtomic(process.argv[2], data); codes.push('ok'); } catch (e) { codes.push(e.code); }
    console.log(JSON.stringify(codes));
  `,
  );
  // 2048 KiB limit: far below the 8 MiB payload, far above what tsx needs to cache.
  const child = spawnSync('bash', ['-c', 'ulimit -f 2048 && exec "$0" --import tsx "$1" "$2"', process.execPath, script, target], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  assert.equal(child.status, 0, child.stderr);
  assert.deepEqual(JSON.parse(child.stdout.trim().split('\n').pop()!), ['EFBIG', 'EFBIG']);
  assert.equal(fs.readFileSync(target, 'utf8'), 'previous contents');
  assert.deepEqual(fs.readdirSync(dir), ['model.bin']);
});

test('concurrent readers only ever see a complete old or new version', async () => {
  const dir = freshDir('concurrent');
  const file = path.join(dir, 'blob');
  const size = 1 << 21;
  const versions = [0x61, 0x62, 0x63].map((byte) => new Uint8Array(size).fill(byte));
  await writeFileAtomic(file, versions[0]!);

  let writing = true;
  let reads = 0;
  const reader = (async () => {
    while (writing) {
      const got = await fs.promises.readFile(file);
      assert.equal(got.length, size, 'partial file observed');
      assert.ok(
        got.every((b) => b === got[0]),
        'mixed contents observed',
      );
      reads++;
    }
  })();
  for (let i = 0; i < 30; i++) await writeFileAtomic(file, versions[i % 3]!);
  writing = false;
  await reader;
  assert.ok(reads > 0);
  assert.deepEqual(fs.readdirSync(dir), ['blob']);
});
