// kml report's progress line (host/report/progress.ts) and what analyzeRun reports to it.
import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Writable } from 'node:stream';
import { analyzeRun, type AnalyzeProgress } from '../../host/analyze/index.js';
import { ProgressLine, progressText } from '../../host/report/progress.js';
import { FIXTURES } from '../helpers/paths.js';

const STORE = path.join(FIXTURES, 'runs', 'store-slab-leak', '127.0.0.1_5555', '20251124T160000Z-ab12');

test('progressText: snapshot n of N, MB read of the total, percent', () => {
  assert.equal(progressText({ snapshotsDone: 36, snapshotsTotal: 144, bytesDone: 52 * 1048576, bytesTotal: 200 * 1048576 }), 'reading kmemleak snapshots: 37/144, 52/200 MB (26%)');
  assert.equal(progressText({ snapshotsDone: 0, snapshotsTotal: 1, bytesDone: 0, bytesTotal: 0 }), 'reading kmemleak snapshots: 0/0 MB (0%)');
  assert.equal(progressText({ snapshotsDone: 5, snapshotsTotal: 5, bytesDone: 10, bytesTotal: 10 }), 'reading kmemleak snapshots: 5/5, 0/0 MB (100%)');
});

test('ProgressLine: nothing in the first interval, then at most one redraw per interval, erased at the end', () => {
  let now = 1000;
  let written = '';
  const text = (): string => written; // read through a function: the asserts narrow `written` otherwise
  const out = new Writable({ write(chunk, _enc, cb) { written += String(chunk); cb(); } });
  const line = new ProgressLine(out, 200, () => now);
  const p: AnalyzeProgress = { snapshotsDone: 0, snapshotsTotal: 3, bytesDone: 1048576, bytesTotal: 3 * 1048576 };
  line.update(p);
  assert.equal(text(), '', 'not drawn before 200 ms');
  now += 250;
  line.update(p);
  assert.equal(text(), '\r\x1b[Kreading kmemleak snapshots: 1/3, 1/3 MB (33%)');
  now += 50;
  line.update({ ...p, bytesDone: 2 * 1048576 });
  assert.equal(text().split('\r').length, 2, 'no redraw within the interval');
  line.done();
  assert.ok(text().endsWith('\r\x1b[K'), 'erased');
  const quiet = new ProgressLine(out, 200, () => now);
  const before = text();
  quiet.done();
  assert.equal(text(), before, 'nothing to erase when nothing was drawn');
});

test('analyzeRun reports progress: bytes grow to the total, snapshots to their count', async () => {
  const seen: AnalyzeProgress[] = [];
  const run = await analyzeRun(STORE, { onProgress: (p) => seen.push({ ...p }) });
  assert.ok(seen.length >= 2, `${seen.length} progress calls`);
  const last = seen[seen.length - 1];
  assert.equal(last.snapshotsDone, run.snapshots.length);
  assert.equal(last.snapshotsTotal, run.snapshots.length);
  assert.equal(last.bytesDone, run.parseStats.bytes);
  assert.equal(last.bytesTotal, run.parseStats.bytes);
  for (let i = 1; i < seen.length; i++) {
    assert.ok(seen[i].bytesDone >= seen[i - 1].bytesDone);
    assert.ok(seen[i].snapshotsDone >= seen[i - 1].snapshotsDone);
  }
});
