import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, SHARED_FIXTURES } from '../helpers/paths.js';
import { SnapshotIndex } from '../../host/store/dedup.js';
import { writeFileAtomic, removeStaleTemps } from '../../host/store/durable.js';
import { TEMP_PREFIX } from '../../host/store/layout.js';
import { readManifest } from '../../host/store/manifest.js';
import { createRun, endRun, entriesOfAllRuns, findResumableRun, listRuns, openRun, readRunJson } from '../../host/store/run.js';
import { SnapshotWriter } from '../../host/store/snapshot.js';
import { hasRoom, freeSpace } from '../../host/store/space.js';
import { tempDir } from '../helpers/tmp.js';

const BOOT = 'b7e3a1c4-2f5d-4e6a-9b8c-0d1e2f3a4b5c';
const tmp = () => tempDir('kml-run-');

test('resume rule: the latest run of the serial continues unless it ended cleanly', async () => {
  const out = await tmp();
  assert.equal(await findResumableRun(out, '127.0.0.1:5555'), undefined);
  const a = await createRun(out, '127.0.0.1:5555', { intervalS: 600 }, new Date('2026-11-27T00:00:00Z'));
  assert.equal(path.basename(path.dirname(a.dir)), '127.0.0.1_5555');
  assert.equal(await findResumableRun(out, '127.0.0.1:5555'), a.dir, 'killed collector: same run continues');
  await endRun(a, { reason: 'signal', clean: false, message: 'final pull failed: device offline' });
  assert.equal(await findResumableRun(out, '127.0.0.1:5555'), a.dir, 'unclean end stays resumable');
  await endRun(a, { reason: 'stop', clean: true });
  assert.equal(await findResumableRun(out, '127.0.0.1:5555'), undefined, 'kml stop closes the run');
  const b = await createRun(out, '127.0.0.1:5555', { intervalS: 600 }, new Date('2026-11-27T01:00:00Z'));
  assert.equal(await findResumableRun(out, '127.0.0.1:5555'), b.dir);
  assert.equal(await findResumableRun(out, 'other'), undefined);
  assert.deepEqual(await listRuns(out, '127.0.0.1:5555'), [path.basename(a.dir), path.basename(b.dir)]);
  // a run folder whose run.json never became durable is skipped, the one before it is used
  await fs.mkdir(path.join(path.dirname(b.dir), '20261127T020000Z-dead'));
  assert.equal(await findResumableRun(out, '127.0.0.1:5555'), b.dir);
  const reopened = await openRun(b.dir, { intervalS: 5 });
  assert.equal(reopened.json.intervalS, 5);
  assert.equal(reopened.json.sessions.length, 2);
  assert.equal(reopened.json.sessions[1].resumed, true);
  assert.equal((await readRunJson(b.dir)).schemaVersion, 1);
});

test('reopening a run removes temp files and cuts a torn manifest line', async () => {
  const out = await tmp();
  const r = await createRun(out, 'S', {});
  await fs.mkdir(path.join(r.dir, `boot-${BOOT}`, 'mem_3'), { recursive: true });
  const t1 = path.join(r.dir, `${TEMP_PREFIX}aaaa-kmemleak.txt`);
  const t2 = path.join(r.dir, `boot-${BOOT}`, 'mem_3', `${TEMP_PREFIX}bbbb-meminfo.txt`);
  await fs.writeFile(t1, 'partial');
  await fs.writeFile(t2, 'partial');
  await fs.writeFile(r.manifestPath, '{"schemaVersion":1,"ser');
  const re = await openRun(r.dir);
  assert.deepEqual(re.recovered.tempsRemoved.sort(), [t1, t2].sort());
  assert.equal(re.recovered.tornManifestLine?.text, '{"schemaVersion":1,"ser');
  assert.equal((await fs.readFile(r.manifestPath, 'utf8')), '');
  assert.deepEqual(await removeStaleTemps(r.dir), []);
});

test('same boot_id + seq with different content: both kept, second flagged as conflict', async () => {
  const out = await tmp();
  const r = await createRun(out, 'S', {});
  const index = new SnapshotIndex();
  const report = await fs.readFile(path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-insmod.txt'));
  async function store(text: Buffer, meta: string) {
    const w = new SnapshotWriter({ runDir: r.dir, manifestPath: r.manifestPath, runId: r.json.runId, serial: 'S', bootId: BOOT, seq: 4, index });
    await w.stageStream('kmemleak.txt', [text]);
    await w.stageConverted('meta.txt', JSON.stringify({ meta }), Buffer.from(meta));
    return w.commit({ wallTime: 1, uptimeS: 2 });
  }
  const first = await store(report, 'seq=4\nwall_time=1\n');
  assert.equal(first.status, 'stored');
  const again = await store(report, 'seq=4\nwall_time=1\n');
  assert.equal(again.status, 'already-stored');
  const other = await store(Buffer.from(''), 'seq=4\nwall_time=99\n'); // e.g. the device lost its seq file
  assert.equal(other.status, 'conflict');
  const m = await readManifest(r.manifestPath);
  assert.equal(m.entries.length, 2);
  assert.equal(m.entries[1].conflict, true);
  assert.match(m.entries[1].files.find((f) => f.name === 'kmemleak.txt')!.path, /^boot-[^/]+\/conflict-[0-9a-f]{12}\/kmemleak_log_4\.txt$/);
  assert.deepEqual(await fs.readFile(path.join(r.dir, `boot-${BOOT}`, 'kmemleak_log_4.txt')), report, 'first copy never overwritten');
  assert.equal(index.storedByMeta(BOOT, 4, m.entries[1].files.find((f) => f.name === 'meta.txt')!.source!.sha256)?.conflict, true);
  assert.equal((await entriesOfAllRuns(out, 'S')).length, 2);
});

test('a verification mismatch stores nothing and leaves no temp file', async () => {
  const out = await tmp();
  const r = await createRun(out, 'S', {});
  const w = new SnapshotWriter({ runDir: r.dir, manifestPath: r.manifestPath, runId: r.json.runId, serial: 'S', bootId: BOOT, seq: 1, index: new SnapshotIndex() });
  await assert.rejects(w.stageStream('kmemleak.txt', [Buffer.from('abc')], { bytes: 4 }), /size 3 ≠ 4/);
  await assert.rejects(w.stageStream('meminfo.txt', [Buffer.from('abc')], { sha256: '0'.repeat(64) }), /sha256/);
  await assert.rejects(w.stageStream('vmstat.txt', [Buffer.from('abc')], { md5: '0'.repeat(32) }), /md5/);
  await assert.rejects(w.stageStream('../../etc/passwd', [Buffer.from('abc')]), /unknown device file/);
  const left = (await fs.readdir(r.dir)).filter((n) => n.startsWith(TEMP_PREFIX));
  assert.deepEqual(left, []);
});

test('atomic write: a crash before the rename leaves the old content, never a mix', async () => {
  const dir = await tmp();
  const file = path.join(dir, 'run.json');
  await writeFileAtomic(file, 'old\n');
  for (const step of ['temp-written', 'temp-synced'] as const) {
    await assert.rejects(writeFileAtomic(file, 'new\n', { onStep: (s) => { if (s === step) throw new Error('crash'); } }));
    assert.equal(await fs.readFile(file, 'utf8'), 'old\n', step);
  }
  await writeFileAtomic(file, 'new\n');
  assert.equal(await fs.readFile(file, 'utf8'), 'new\n');
  assert.deepEqual(await fs.readdir(dir), ['run.json']);
});

test('the store is created with the user umask', { skip: process.platform === 'win32' }, async () => {
  const out = await tmp();
  const script = `
    import { createRun } from ${JSON.stringify(path.join(REPO_ROOT, 'dist/host/store/run.js'))};
    process.umask(0o027);
    const r = await createRun(${JSON.stringify(out)}, 'S', {});
    console.log(r.dir);`;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: REPO_ROOT });
  assert.equal(res.status, 0, res.stderr);
  const dir = res.stdout.trim();
  assert.equal((await fs.stat(dir)).mode & 0o777, 0o750);
  assert.equal((await fs.stat(path.join(dir, 'run.json'))).mode & 0o777, 0o640);
});

test('free space: room needs the snapshot plus a reserve', async () => {
  const fsp = await freeSpace(os.tmpdir());
  assert.ok(fsp.freeBytes > 0 && fsp.totalBytes >= fsp.freeBytes);
  assert.equal(hasRoom({ freeBytes: 10_000_000, totalBytes: 1 }, 1_000_000, 8_000_000), true);
  assert.equal(hasRoom({ freeBytes: 8_500_000, totalBytes: 1 }, 1_000_000, 8_000_000), false);
});
