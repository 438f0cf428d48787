// `kml lab` as users and scripts call it: the real CLI in a subprocess, JSON output, exit codes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { ensureLabArtifacts } from '../helpers/lab.js';
import { runKml as kml } from '../helpers/kml-cli.js';

describe('kml lab CLI', { timeout: 20 * 60_000 }, () => {
  let server: AdbServer;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    await ensureLabArtifacts();
    server = await startAdbServer();
    stateDir = mkdtempSync(path.join(os.tmpdir(), 'kml-lab-cli-'));
    env = { ...server.env, KML_STATE_DIR: stateDir };
  }, { timeout: 20 * 60_000 });

  after(async () => {
    await kml(['lab', 'down'], env, 60_000).catch(() => undefined);
    await server?.kill();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }, { timeout: 90_000 });

  test('bad input is a usage error (exit 2) with a clear message', { timeout: 30_000 }, async () => {
    const r = await kml(['lab', 'up', '--mem', 'lots'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--mem must be a positive whole number/);
    const p = await kml(['lab', 'leak', '127.0.0.1:1', '--paths', 'bogus'], env);
    assert.equal(p.code, 2);
    assert.match(p.stderr, /unknown path "bogus"/);
    for (const [opt, value] of [['--build', 'eng'], ['--su', 'supersu']]) {
      const b = await kml(['lab', 'up', opt, value], env);
      assert.equal(b.code, 2, `${opt} ${value}: ${b.stderr}`);
      assert.match(b.stderr, new RegExp(`${opt} .*${value}.*(choices|one of)`, 'i'));
      assert.doesNotMatch(b.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  test('fault commands on an unknown serial fail with exit 3, no stack trace', { timeout: 30_000 }, async () => {
    const r = await kml(['lab', 'unplug', '127.0.0.1:1'], env);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /no running lab device 127\.0\.0\.1:1/);
    assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/);
  });

  test('up --json boots a device the adb server lists; list and down see it (here a userdebug build: adbd is the shell user)', { timeout: 240_000 }, async () => {
    const up = await kml(['lab', 'up', '--json', '--data-size', '64', '--build', 'userdebug'], env, 200_000);
    assert.equal(up.code, 0, up.stderr);
    const result = JSON.parse(up.stdout) as { ok: boolean; devices: Array<{ serial: string; state: string; bootToDeviceMs: number }> };
    assert.equal(result.ok, true);
    assert.equal(result.devices.length, 1);
    const { serial } = result.devices[0];
    assert.match(serial, /^127\.0\.0\.1:\d+$/);
    assert.equal(result.devices[0].state, 'running');
    const devices = await server.adb(['devices']);
    assert.match(devices.stdout, new RegExp(`^${serial.replace(/\./g, '\\.')}\\tdevice$`, 'm'));

    const list = await kml(['lab', 'list', '--json'], env);
    assert.equal(list.code, 0, list.stderr);
    const listed = (JSON.parse(list.stdout) as { devices: Array<{ serial: string; build: string }> }).devices;
    assert.deepEqual(listed.map((d) => `${d.serial} ${d.build}`), [`${serial} userdebug`]);
    assert.match((await kml(['lab', 'list'], env)).stdout, /\buserdebug\b/);
    assert.equal((await server.adb(['-s', serial, 'shell', 'id -u'])).stdout.trim(), '2000');

    const down = await kml(['lab', 'down', serial, '--json'], env, 60_000);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual((JSON.parse(down.stdout) as { stopped: string[] }).stopped, [serial]);
    const gone = await server.adb(['devices']);
    assert.doesNotMatch(gone.stdout, new RegExp(serial.replace(/\./g, '\\.')));
    const empty = await kml(['lab', 'list', '--json'], env);
    assert.deepEqual((JSON.parse(empty.stdout) as { devices: unknown[] }).devices, []);
  });
});
