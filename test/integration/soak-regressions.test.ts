// Bugs the soak (scripts/soak) found, each pinned by a test that fails without its fix.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { Adb, AdbError, resolveAdbEndpoint } from '../../host/adb/index.js';

const T = { timeout: 120_000 };

describe('soak regressions (real adb server)', () => {
  let server: AdbServer;
  let adb: Adb;

  before(async () => {
    server = await startAdbServer();
    adb = new Adb(resolveAdbEndpoint({ port: server.port, bin: '/usr/bin/adb' }));
  }, T);

  after(async () => {
    await server?.kill();
  }, T);

  // Soak seed 7: "MaxListenersExceededWarning: 11 abort listeners added to [AbortSignal]" from
  // kml collect while a device was unplugged. waitForDevice polls twice a second and each poll's
  // sleep left a listener on the run's stop signal: one more per poll, for as long as the device
  // stays away (a whole night for a phone that does not come back).
  test('waiting for an absent device leaves no abort listeners behind on the caller\'s signal', T, async () => {
    const ac = new AbortController();
    await assert.rejects(
      adb.waitForDevice('kml-soak-absent-device', { timeoutMs: 1_500, pollMs: 20, signal: ac.signal }),
      (e: unknown) => e instanceof AdbError,
    );
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'listeners left on the signal after the wait');
  });
});
