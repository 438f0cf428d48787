import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { KmlError } from '../../host/errors.js';
import { RUN_ID_RE, checkBootId, checkSeq, insideRun, newRunId, serialSafe, storePathFor } from '../../host/store/layout.js';

const BOOT = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

test('serialSafe replaces everything outside [A-Za-z0-9._-] and never yields . or ..', () => {
  assert.equal(serialSafe('127.0.0.1:5555'), '127.0.0.1_5555');
  assert.equal(serialSafe('emulator-5554'), 'emulator-5554');
  assert.equal(serialSafe('x;reboot'), 'x_reboot');
  assert.equal(serialSafe('$(id)'), '__id_');
  assert.equal(serialSafe('../../etc'), '.._.._etc');
  assert.equal(serialSafe('..'), '__');
  assert.equal(serialSafe('.'), '_');
  assert.ok(!serialSafe('a/b\0c').includes('/'));
  assert.throws(() => serialSafe(''), KmlError);
});

test('run ids are UTC timestamps plus a short random suffix and sort by time', () => {
  const id = newRunId(new Date('2026-11-27T00:15:00.999Z'), 'ab12');
  assert.equal(id, '20261127T001500Z-ab12');
  assert.match(newRunId(), RUN_ID_RE);
  const a = newRunId(new Date('2026-11-27T00:15:00Z'), 'ffff');
  const b = newRunId(new Date('2026-11-27T00:15:01Z'), '0000');
  assert.ok(a < b);
});

test('boot ids and sequence numbers from the device are validated before they become paths', () => {
  assert.equal(checkBootId(BOOT.toUpperCase() + '\n'), BOOT);
  for (const bad of ['../x', 'boot', '', `${BOOT}/..`, 'a'.repeat(36)]) assert.throws(() => checkBootId(bad), KmlError, bad);
  assert.equal(checkSeq('17'), 17);
  for (const bad of ['-1', '1e3', '../1', '', '0x10', ' 1']) assert.throws(() => checkSeq(bad), KmlError, bad);
});

test('store paths follow the contract', () => {
  assert.equal(storePathFor('kmemleak.txt', BOOT, 7), `boot-${BOOT}/kmemleak_log_7.txt`);
  assert.equal(storePathFor('meta.txt', BOOT, 7), `boot-${BOOT}/meta_7.json`);
  assert.equal(storePathFor('kmsg.txt', BOOT, 7), `boot-${BOOT}/kmsg_7.txt`);
  assert.equal(storePathFor('zoneinfo.txt', BOOT, 7), `boot-${BOOT}/mem_7/zoneinfo.txt`);
  assert.equal(storePathFor('kmemleak.txt', BOOT, 7, 'abcdef012345'), `boot-${BOOT}/conflict-abcdef012345/kmemleak_log_7.txt`);
  for (const bad of ['../run.json', 'x/../../y', 'kmemleak.txt\0', 'evil.txt']) assert.throws(() => storePathFor(bad, BOOT, 1), KmlError);
  assert.throws(() => storePathFor('kmemleak.txt', BOOT, 1, '../..'), KmlError);
});

test('insideRun refuses paths that leave the run folder', () => {
  const run = path.join('/tmp', 'out', 'dev', 'run');
  assert.equal(insideRun(run, 'boot-x/a.txt'), path.join(run, 'boot-x', 'a.txt'));
  assert.throws(() => insideRun(run, '../other/run.json'), KmlError);
  assert.throws(() => insideRun(run, '/etc/passwd'), KmlError);
});
