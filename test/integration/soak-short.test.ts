// The short soak (scripts/soak) inside the test suite: 2 lab devices (one faulted, a userdebug phone whose adbd is not root; one steady),
// 40 cycles at --interval 2, every fault kind once (adb server killed, unplug, reboot, adbd killed,
// kml SIGKILLed and rerun, device /data full, host store full), then the independent accounting:
// nothing lost, nothing duplicated, every hash equal, every gap explained, the skipped cycles in
// kml status and kml report. The long one is `npm run soak` (scripts/soak/RESULTS.md).
//
// KML_SOAK_SEED=N replays another schedule; the seed and the schedule are in the diagnostics.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureLabArtifacts } from '../helpers/lab.js';
import { canMount } from '../../scripts/soak/hostfs.js';
import { FAULT_KINDS, type FaultKind } from '../../scripts/soak/schedule.js';
import { runSoak } from '../../scripts/soak/soak.js';
import { renderSchedule, renderSummary } from '../../scripts/soak/table.js';

const SEED = Number(process.env.KML_SOAK_SEED ?? 20261127);
let out: string;

before(async () => {
  await ensureLabArtifacts();
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-soak-short-'));
}, { timeout: 45 * 60_000 });

after(() => {
  if (out && !process.env.KML_TEST_KEEP_SOAK) fs.rmSync(out, { recursive: true, force: true });
});

test('short soak: 2 devices, 40 cycles, every fault kind: 0 lost, 0 duplicated, every check passes', { timeout: 20 * 60_000 }, async (t) => {
  // host-full mounts a tmpfs: root only (CI and the lab machine are root)
  const faults: FaultKind[] = FAULT_KINDS.filter((k) => k !== 'host-full' || canMount());
  if (faults.length < FAULT_KINDS.length) t.diagnostic('not root: the host-full fault is left out');
  const lines: string[] = [];
  const t0 = Date.now();
  const r = await runSoak({
    // The heavy device plays a userdebug phone: adbd not root, each reboot undoes adb root.
    devices: 2, cycles: 40, intervalS: 2, scanWaitS: 5, seed: SEED, faults, perKind: 1, heavy: 0, heavyBuild: 'userdebug', out,
    leakRate: 20, dataSizeMb: 256, memMb: 512, storeMb: 1024, keepStore: false,
    say: (l) => lines.push(l), replay: `KML_SOAK_SEED=${SEED} node --test dist/test/integration/soak-short.test.js`,
  });
  const text = renderSummary(r) + '\n' + renderSchedule(r);
  for (const l of text.split('\n')) t.diagnostic(l);
  t.diagnostic(`soak took ${Math.round((Date.now() - t0) / 1000)} s`);
  if (!r.ok) for (const l of lines) t.diagnostic(`log: ${l}`);
  assert.equal(r.totals.lost, 0, 'nothing lost');
  assert.equal(r.totals.duplicated, 0, 'nothing duplicated');
  assert.equal(r.totals.mismatched, 0, 'every stored file has the device\'s sha256');
  assert.equal(r.totals.unexplained, 0, 'every sequence number is published, skipped or the cycle an agent died in');
  for (const k of faults) {
    assert.ok(r.faultsByKind[k].fired >= 1, `${k} fired`);
    assert.equal(r.faultsByKind[k].failed, 0, `${k} ran without a harness error`);
  }
  assert.ok(r.totals.written >= 2 * 30, `snapshots written: ${r.totals.written}`);
  assert.deepEqual(r.problems, []);
  assert.equal(r.ok, true);
});
