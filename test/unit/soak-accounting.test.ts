// The soak's pure parts: its schedule is a function of the seed (a failing run can be replayed),
// and its accounting tells lost, duplicated, corrupted, skipped, interrupted and unexplained apart.
import test from 'node:test';
import assert from 'node:assert/strict';
import { accountDevice, parseLedger, parseSkippedLog, type StoredSnapshot } from '../../scripts/soak/accounting.js';
import { FAULT_KINDS, makeSchedule, parseFaultList } from '../../scripts/soak/schedule.js';

const B = '3a6772a1-00da-4918-a2c4-8c94ea401aee';
const H = (n: number) => n.toString(16).padStart(64, '0');

test('schedule: same seed, same schedule; every kind the asked number of times; device faults on the heavy device', () => {
  const o = { seed: 42, kinds: FAULT_KINDS, perKind: 3, cycles: 300, firstCycle: 3, cycleS: 7.5, minGapCycles: 1, heavy: 1 };
  const a = makeSchedule(o);
  assert.deepEqual(makeSchedule(o), a);
  assert.notDeepEqual(makeSchedule({ ...o, seed: 43 }), a);
  for (const k of FAULT_KINDS) assert.equal(a.filter((e) => e.kind === k).length, 3, k);
  for (const e of a) {
    if (['unplug', 'reboot', 'adbd-kill', 'device-full'].includes(e.kind)) assert.equal(e.device, 1);
    else assert.equal(e.device, undefined);
    if (e.kind === 'unplug') assert.ok(e.holdS >= 5 && e.holdS <= 40, `unplug ${e.holdS}`);
  }
  for (let i = 1; i < a.length; i++) assert.ok(a[i].atCycle - a[i - 1].atCycle >= 2, 'gaps');
  assert.ok(a[0].atCycle >= 3 && a[a.length - 1].atCycle <= 270, `within the run: ${a.map((e) => e.atCycle).join(',')}`);
  assert.deepEqual(parseFaultList('unplug, reboot,unplug'), ['unplug', 'reboot']);
  assert.throws(() => parseFaultList('unplug,meteor'), /unknown fault kind "meteor"/);
});

function stored(seq: number, hashes: Record<string, string>, extra: Partial<StoredSnapshot> = {}): StoredSnapshot {
  const files: StoredSnapshot['files'] = {};
  for (const [n, h] of Object.entries(hashes)) files[n] = { manifest: h, disk: h, converted: false };
  return { bootId: B, seq, wallTime: 1000 + seq * 7, pulledAt: (1000 + seq * 7 + 2) * 1000, conflict: false, runId: 'r1', files, ...extra };
}

test('accounting: lost, duplicated, mismatched, unledgered, skipped, interrupted and unexplained', () => {
  const ledgerText = [
    `start seq=0 boot_id=${B} wall_time=990 pid=10`,
    ...[1, 2, 3, 4, 6, 9].map((s) => `seq=${s} boot_id=${B} wall_time=${1000 + s * 7} leak_count=5 sha256.kmemleak.txt=${H(s)}`),
    `seq=4 boot_id=${B} wall_time=1028 leak_count=5 sha256.kmemleak.txt=${H(4)}`, // a retried append
    `seq=9 boot_id=${B} wall_ti`, // torn
    `start seq=7 boot_id=${B} wall_time=1060 pid=11`, // 7 was in flight when the agent died
  ].join('\n') + '\n';
  const led = parseLedger(ledgerText);
  assert.equal(led.published.length, 6);
  assert.equal(led.repeats, 1);
  assert.equal(led.torn, 1);
  const skipped = parseSkippedLog(`seq=5 boot_id=${B} wall_time=1035 reason=low_space\n\nseq=8 boot_id=${B} wall_time=1056 reason=no_space\n`);
  const st = [
    stored(1, { 'kmemleak.txt': H(1) }),
    stored(2, { 'kmemleak.txt': H(2) }), stored(2, { 'kmemleak.txt': H(2) }), // duplicated
    stored(3, { 'kmemleak.txt': H(99) }), // hash differs
    stored(6, { 'kmemleak.txt': H(6) }),
    stored(9, { 'kmemleak.txt': H(9) }),
    stored(11, { 'kmemleak.txt': H(11) }), // not in the ledger
  ];
  // 4 is lost; 10 is nowhere (unexplained)
  const acc = accountDevice({ serial: 'x', ledger: led, skipped, stored: st, leftOnDevice: [], expectedCycleS: 7 });
  assert.equal(acc.written, 6);
  assert.equal(acc.pulled, 5);
  assert.deepEqual(acc.lost, [`${B}#4`]);
  assert.deepEqual(acc.duplicated, [`${B}#2`]);
  assert.equal(acc.mismatched.length, 1);
  assert.match(acc.mismatched[0], /#3 \(kmemleak.txt manifest\)/);
  assert.deepEqual(acc.unledgered, [`${B}#11`]);
  assert.equal(acc.skipped, 2);
  assert.deepEqual(acc.skippedReasons, { low_space: 1, no_space: 1 });
  assert.deepEqual(acc.interrupted, [7]);
  assert.deepEqual(acc.unexplained, [10]);
  assert.equal(acc.ok, false);

  // a clean device: everything accounted for
  const good = accountDevice({
    serial: 'y', ledger: parseLedger(ledgerText), skipped, leftOnDevice: [], expectedCycleS: 7,
    stored: [1, 2, 3, 4, 6, 9].map((s) => stored(s, { 'kmemleak.txt': H(s) })).concat([]),
  });
  assert.deepEqual(good.unexplained, []);
  assert.equal(good.ok, true);
  assert.equal(good.pullLagS.max, 2);
  assert.equal(good.cadence.maxGapS, 21);
});

test('accounting: a file changed on disk after it was stored is a mismatch', () => {
  const led = parseLedger(`seq=1 boot_id=${B} wall_time=1 sha256.kmemleak.txt=${H(1)} sha256.meminfo.txt=${H(2)}\n`);
  const s = stored(1, { 'kmemleak.txt': H(1), 'meminfo.txt': H(2) });
  s.files['meminfo.txt'].disk = H(3);
  const acc = accountDevice({ serial: 'z', ledger: led, skipped: [], stored: [s], leftOnDevice: [], expectedCycleS: 7 });
  assert.deepEqual(acc.mismatched, [`${B}#1 (meminfo.txt disk)`]);
});
