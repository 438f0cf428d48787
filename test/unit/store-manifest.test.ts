import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { appendManifest, parseManifest, readManifest, repairManifest, type ManifestEntry } from '../../host/store/manifest.js';
import { SnapshotIndex, snapshotDigest } from '../../host/store/dedup.js';
import { tempDir } from '../helpers/tmp.js';

const BOOT = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

function entry(seq: number, sha = 'a'.repeat(64)): ManifestEntry {
  const files = [{ name: 'kmemleak.txt', path: `boot-${BOOT}/kmemleak_log_${seq}.txt`, bytes: 10, sha256: sha }];
  return {
    schemaVersion: 1, serial: 'S', bootId: BOOT, seq, wallTime: 1700000000 + seq, uptimeS: seq, files,
    pulledAt: new Date(0).toISOString(), digest: snapshotDigest([{ name: 'kmemleak.txt', sha256: sha }]), runId: 'r',
  };
}

async function tmpdir(): Promise<string> {
  return tempDir('kml-manifest-');
}

test('a torn last line is ignored, reported, and cut before the next append', async () => {
  const dir = await tmpdir();
  const file = path.join(dir, 'manifest.jsonl');
  await appendManifest(file, entry(1));
  await appendManifest(file, entry(2));
  const full = JSON.stringify(entry(3));
  await fs.appendFile(file, full.slice(0, 37)); // crash mid-append
  const read = await readManifest(file);
  assert.deepEqual(read.entries.map((e) => e.seq), [1, 2]);
  assert.equal(read.torn?.line, 3);
  assert.equal(read.torn?.text, full.slice(0, 37));
  const cut = await repairManifest(file);
  assert.equal(cut?.text, full.slice(0, 37));
  await appendManifest(file, entry(3));
  const after = await readManifest(file);
  assert.deepEqual(after.entries.map((e) => e.seq), [1, 2, 3]);
  assert.equal(after.torn, undefined);
  assert.equal(after.bad.length, 0);
  assert.ok((await fs.readFile(file, 'utf8')).endsWith('}\n'));
});

test('a complete JSON line without its newline still counts as torn (its fsync never returned)', () => {
  const text = JSON.stringify(entry(1)) + '\n' + JSON.stringify(entry(2));
  const r = parseManifest(text);
  assert.deepEqual(r.entries.map((e) => e.seq), [1]);
  assert.ok(r.torn);
});

test('corrupt lines in the middle are skipped and reported, the rest is read', () => {
  const text = [JSON.stringify(entry(1)), 'garbage{', JSON.stringify({ schemaVersion: 9 }), JSON.stringify(entry(4)), ''].join('\n');
  const r = parseManifest(text);
  assert.deepEqual(r.entries.map((e) => e.seq), [1, 4]);
  assert.deepEqual(r.bad.map((b) => b.line), [2, 3]);
  assert.equal(r.torn, undefined);
  assert.deepEqual(parseManifest('').entries, []);
});

test('the index says stored / conflict / new by bootId + seq + digest', () => {
  const idx = new SnapshotIndex([entry(1), entry(2)]);
  const d1 = entry(1).digest;
  assert.equal(idx.classify(BOOT, 1, d1).kind, 'stored');
  assert.equal(idx.classify(BOOT, 1, 'f'.repeat(64)).kind, 'conflict');
  assert.equal(idx.classify(BOOT, 3, d1).kind, 'new');
  assert.equal(idx.classify('00000000-0000-4000-8000-000000000000', 1, d1).kind, 'new');
  assert.deepEqual([...idx.lastSeqByBoot()], [[BOOT, 2]]);
  // digest ignores order and store naming
  assert.equal(snapshotDigest([{ name: 'a', sha256: '1' }, { name: 'b', sha256: '2' }]), snapshotDigest([{ name: 'b', sha256: '2' }, { name: 'a', sha256: '1' }]));
  assert.notEqual(snapshotDigest([{ name: 'a', sha256: '1' }]), snapshotDigest([{ name: 'a', sha256: '2' }]));
});
