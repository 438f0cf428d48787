// Trend rules and the suppression file format, as pure functions.
import test from 'node:test';
import assert from 'node:assert/strict';
import { leastSquaresSlope, trendOf, rankGroups } from '../../host/analyze/trend.js';
import { BUILTIN_SUPPRESSIONS, compileRule, parseSuppressionConfig } from '../../host/analyze/suppress.js';
import type { GroupPoint, LeakGroup } from '../../host/analyze/model.js';
import { KmlError } from '../../host/errors.js';

function series(newPerSnapshot: Array<number | null>, size = 100): GroupPoint[] {
  const out: GroupPoint[] = [];
  let cum = 0;
  newPerSnapshot.forEach((k, i) => {
    if (k === null) return;
    cum += k;
    out.push({ snapshot: i, objects: k, bytes: k * size, newObjects: k, newBytes: k * size, cumObjects: cum, cumBytes: cum * size });
  });
  return out;
}
const hourly = (n: number): { t: number[]; recent: number; hasData: boolean[] } => ({
  t: Array.from({ length: n }, (_, i) => i * 3600), recent: 2, hasData: new Array(n).fill(true),
});

test('least squares slope', () => {
  assert.equal(leastSquaresSlope([0, 1, 2], [0, 2, 4]), 2);
  assert.equal(leastSquaresSlope([0, 1, 2, 3], [1, 1, 1, 1]), 0);
  assert.equal(leastSquaresSlope([5], [1]), null);
  assert.equal(leastSquaresSlope([2, 2], [1, 5]), null);
});

test('status: growing, steady, one-shot, new', () => {
  assert.equal(trendOf(series([1, 1, 1, 1, 1, 1]), hourly(6)).status, 'growing');
  assert.equal(trendOf(series([3, 2, null, null, null, null]), hourly(6)).status, 'steady');
  assert.equal(trendOf(series([null, 4, null, null, null, null]), hourly(6)).status, 'one-shot');
  assert.equal(trendOf(series([null, null, null, null, null, 1]), hourly(6)).status, 'new');
  assert.equal(trendOf(series([2]), hourly(1)).status, 'new'); // a single snapshot: everything is new
});

test('slope is bytes per hour of cumulative new bytes, from the snapshot before first appearance', () => {
  const tr = trendOf(series([null, null, 1, 1, 1, 1]), hourly(6));
  assert.equal(tr.bytesPerHour, 100);
  assert.equal(tr.objectsPerHour, 1);
  assert.equal(tr.snapshotsWithNew, 4);
  // A one-shot flattens out: its slope shrinks as the run goes on.
  const one = trendOf(series([null, 4, null, null, null, null, null, null, null, null]), hourly(10));
  assert.ok(one.bytesPerHour! > 0 && one.bytesPerHour! < 100);
});

test('snapshots without data neither end the run nor feed the slope', () => {
  const ctx = { ...hourly(4), hasData: [true, true, true, false] };
  assert.equal(trendOf(series([null, null, 2, null]), ctx).status, 'new');
  assert.equal(trendOf(series([1, 1, 1, null]), ctx).bytesPerHour, 100);
});

test('ranking: bytes/hour, then bytes, then fingerprint', () => {
  const g = (fingerprint: string, bytesPerHour: number | null, bytes: number): LeakGroup => ({ fingerprint, bytesPerHour, bytes } as LeakGroup);
  const ranked = rankGroups([g('c', null, 900), g('b', 10, 1), g('a', 10, 1), g('d', 50, 1)]).map((x) => x.fingerprint);
  assert.deepEqual(ranked, ['d', 'a', 'b', 'c']);
});

test('built-in suppressions all carry a reason and never hide growing groups', () => {
  assert.ok(BUILTIN_SUPPRESSIONS.length >= 4);
  for (const r of BUILTIN_SUPPRESSIONS) {
    assert.match(r.id, /^builtin:/);
    assert.ok(r.reason.length > 40, r.id);
    assert.equal(r.unlessGrowing, true, r.id);
    assert.equal(compileRule(r).groupRule, true);
  }
});

test('suppression rules match frames by glob, comm, size, module', () => {
  const [rule] = parseSuppressionConfig({ suppressions: [{ reason: 'r', frames: ['qbam_*', 'dma_async_device_register'], comm: 'swapper/?', size: { max: 64 } }] }, 'f').rules;
  const c = compileRule(rule);
  const facts = { allFrames: ['kmalloc_trace', 'dma_async_device_register', 'qbam_probe'], keyFrames: ['dma_async_device_register', 'qbam_probe'], culprit: 'dma_async_device_register', module: null, comm: 'swapper/0', size: 64, objectType: 'normal' as const };
  assert.equal(c.matches(facts), true);
  assert.equal(c.matches({ ...facts, size: 65 }), false);
  assert.equal(c.matches({ ...facts, comm: 'init' }), false);
  assert.equal(c.matches({ ...facts, allFrames: ['kmalloc_trace', 'qbam_probe'], keyFrames: ['qbam_probe'] }), false);
  const m = compileRule(parseSuppressionConfig({ suppressions: [{ reason: 'r', module: 'nvmet*' }] }, 'f').rules[0]);
  assert.equal(m.matches({ ...facts, module: 'nvmet_rdma' }), true);
  assert.equal(m.matches(facts), false);
  assert.equal(m.groupRule, false);
});

test('suppression file: skipFrames, ids, and errors that name the entry', () => {
  const cfg = parseSuppressionConfig({ schemaVersion: 1, skipFrames: ['vendor_alloc'], suppressions: [{ id: 'a', reason: 'x', culprit: 'foo' }, { reason: 'y', comm: 'bar' }] }, 'f');
  assert.deepEqual(cfg.skipFrames, ['vendor_alloc']);
  assert.deepEqual(cfg.rules.map((r) => r.id), ['user:a', 'user:2']);
  assert.throws(() => parseSuppressionConfig({ suppressions: [{ id: 'a', reason: 'x', comm: 'a' }, { id: 'a', reason: 'x', comm: 'b' }] }, 'f'), /suppressions\[1\]: duplicate id/);
  assert.throws(() => parseSuppressionConfig({ suppressions: [{ reason: 'x', size: { min: -1 } }] }, 'f'), KmlError);
  assert.throws(() => parseSuppressionConfig([], 'f'), /expected a JSON object/);
  assert.throws(() => parseSuppressionConfig({ skipFrames: [''] }, 'f'), /skipFrames/);
});
