// Cycles the device agent skipped (device storage low) must show in the run and in `kml report`
// (issue 5): SkipRecorder copies the agent's skipped.log into <run>/skipped.jsonl, only this
// run's lines, once each; the analysis lists them. Found missing by the soak (scripts/soak): the
// store had no trace of skipped cycles, so the report could not tell a hole from a loss.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SkipRecorder } from '../../host/collect/skipped.js';
import type { DevicePort } from '../../host/collect/port.js';
import { createLogger } from '../../host/log.js';
import { createRun, readRunJson } from '../../host/store/run.js';
import { SKIPPED, appendSkippedRecords, readSkippedRecords } from '../../host/store/skipped.js';
import { analyzeRun } from '../../host/analyze/index.js';
import { agentSkippedLine, inputProblems } from '../../host/report/common.js';

const BOOT = '0f6c2b1e-8a4d-4c39-9f0e-2d7b5a1c3e90';
const log = createLogger({ level: 'silent' });

function fakePort(lines: Array<{ seq: number; bootId: string; wallTime: number; reason: string }>, reads: { n: number }): DevicePort {
  return {
    serial: 'fake-skip',
    async readSkipped() { reads.n++; return lines.map((l) => ({ ...l })); },
  } as unknown as DevicePort;
}

test('SkipRecorder: only lines after the run began, each once; unchanged heartbeat totals read nothing', async (t) => {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-skipped-'));
  t.after(() => fs.rm(out, { recursive: true, force: true }));
  const run = await createRun(out, 'fake-skip', { intervalS: 2 });
  const lines = [{ seq: 3, bootId: BOOT, wallTime: 1_795_000_000, reason: 'low_space' }]; // an earlier run's
  const reads = { n: 0 };
  const rec = new SkipRecorder(fakePort(lines, reads), run, log);
  await rec.init();
  assert.equal((await readRunJson(run.dir)).agentSkippedBaseline, 1, 'baseline recorded in run.json');
  assert.equal(await rec.sync(1), 0, 'nothing new');
  lines.push({ seq: 12, bootId: BOOT, wallTime: 1_795_000_100, reason: 'low_space' }, { seq: 13, bootId: BOOT.toUpperCase(), wallTime: 1_795_000_102, reason: 'no_space' });
  const before = reads.n;
  assert.equal(await rec.sync(1), 0, 'same heartbeat total: skipped.log not read');
  assert.equal(reads.n, before);
  assert.equal(await rec.sync(3), 2);
  assert.equal(await rec.sync(4, true), 0, 'copied once');
  const recs = await readSkippedRecords(run.dir);
  assert.deepEqual(recs.map((r) => [r.seq, r.bootId, r.reason, r.runId]), [[12, BOOT, 'low_space', run.json.runId], [13, BOOT, 'no_space', run.json.runId]]);
  // a second recorder on the same run (kml restarted) keeps the baseline and adds nothing twice
  const again = new SkipRecorder(fakePort(lines, reads), await openAgain(run.dir), log);
  assert.equal(await again.sync(3, true), 0);
  // the report sees them
  const a = await analyzeRun(run.dir);
  assert.deepEqual(a.inputStats.agentSkipped?.map((s) => s.seq), [12, 13]);
  assert.ok(inputProblems(a).some((p) => /2 cycle\(s\) skipped by the device agent.*seq 12-13/.test(p)), inputProblems(a).join('; '));
});

async function openAgain(dir: string) {
  const { openRun } = await import('../../host/store/run.js');
  return openRun(dir);
}

test('skipped.jsonl: a torn last line is ended before the next append; bad lines are ignored', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-skipped-torn-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const r = { schemaVersion: 1 as const, serial: 's', runId: 'r', bootId: BOOT, seq: 5, wallTime: null, reason: 'low_space', recordedAt: 'x' };
  await fs.writeFile(path.join(dir, SKIPPED), JSON.stringify(r) + '\n{"schemaVersion":1,"seq":');
  await appendSkippedRecords(dir, [{ ...r, seq: 6 }]);
  assert.deepEqual((await readSkippedRecords(dir)).map((x) => x.seq), [5, 6]);
});

test('agentSkippedLine: ranges, reasons in words', () => {
  const line = agentSkippedLine([3, 4, 5, 9].map((seq) => ({ seq, reason: seq === 9 ? 'no_space' : 'low_space' })));
  assert.equal(line, '4 cycle(s) skipped by the device agent, not collected (device storage low ×3, snapshot did not fit ×1): seq 3-5, 9');
});
