// `kml doctor` / `kml devices` against our adbd running on the host (a Linux kernel without a usable
// kmemleak), through a private real adb server: not ready → exit 1 with remedies; unknown serial →
// exit 3; bad serial → exit 2; an unreachable adb server → exit 3.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { freePort, startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { startHostAdbd, type ConnectedAdbd } from '../helpers/host-adbd.js';
import { runKml as kml } from '../helpers/kml-cli.js';
import { ExitCode } from '../../host/errors.js';
import { Adb, resolveAdbEndpoint } from '../../host/adb/index.js';
import { runDoctor, type DoctorResult } from '../../host/device/doctor.js';

const T = { timeout: 180_000 };

describe('kml doctor on the host adbd', () => {
  let server: AdbServer;
  let dev: ConnectedAdbd;
  let result: DoctorResult;

  before(async () => {
    server = await startAdbServer();
    dev = await startHostAdbd(server);
    const adb = new Adb(resolveAdbEndpoint({ port: server.port, bin: '/usr/bin/adb' }));
    result = await runDoctor(dev.serial, { adb, outDir: os.tmpdir() });
  }, T);

  after(async () => {
    await dev?.stop();
    await server?.kill();
  }, T);

  test('runDoctor: not ready (exit 1), every FAIL carries a remedy, facts are the host kernel\'s', T, () => {
    assert.equal(result.exitCode, ExitCode.FAIL);
    assert.equal(result.ready, false);
    assert.equal(result.state, 'device');
    assert.equal(result.checks[0].id, 'device');
    assert.equal(result.checks[0].status, 'PASS');
    const fails = result.checks.filter((c) => c.status === 'FAIL');
    assert.ok(fails.length >= 1);
    for (const f of fails) assert.ok(f.remedy && f.remedy.length > 20, `${f.id} has a remedy`);
    assert.equal(result.kernel.release, os.release());
    assert.equal(result.kernel.cmdline, fs.readFileSync('/proc/cmdline', 'utf8').trim());
    assert.equal(result.kernel.bootId, fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    assert.ok(['adbd-root', 'adb-root', 'su-0', 'su-c', 'none'].includes(result.rootMethod));
    assert.equal(result.rootMethod, result.root?.method);
    const ids = result.checks.map((c) => c.id);
    for (const id of ['device', 'root', 'kernel-config', 'boot-params', 'debugfs', 'kernel-log', 'device-space', 'host-space']) {
      assert.ok(ids.includes(id as never), `check ${id} present`);
    }
    assert.ok(result.space.hostAvailableBytes! > 0);
  });

  test('no kmemleak in the host kernel → the kernel-config FAIL names CONFIG_DEBUG_KMEMLEAK=y', T, (t) => {
    const cfg = result.kernel.config;
    if (!cfg) {
      t.skip('host kernel config not readable (no /proc/config.gz or /boot/config-*)');
      return;
    }
    const kc = result.checks.find((c) => c.id === 'kernel-config')!;
    if (cfg.CONFIG_DEBUG_KMEMLEAK === 'y') {
      assert.notEqual(kc.status, 'FAIL');
      return;
    }
    assert.equal(kc.status, 'FAIL');
    assert.match(kc.remedy!, /CONFIG_DEBUG_KMEMLEAK=y/);
    assert.match(kc.remedy!, /# CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set/);
  });

  test('kml doctor prints one line per check with fixes and exits 1; --json carries root method and kernel facts', T, async () => {
    const r = await kml(['doctor', '-s', dev.serial, '--out', os.tmpdir()], server.env);
    assert.equal(r.code, ExitCode.FAIL, r.stderr);
    const lines = r.stdout.split('\n');
    assert.ok(lines.filter((l) => /^(PASS|WARN|FAIL|SKIP) {2}/.test(l)).length >= 8, r.stdout);
    assert.ok(lines.some((l) => /^ {6}fix: /.test(l)), 'a fix line under a FAIL');
    assert.match(r.stdout, /NOT READY/);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');

    const j = await kml(['doctor', '-s', dev.serial, '--json', '--out', os.tmpdir()], server.env);
    assert.equal(j.code, ExitCode.FAIL);
    const parsed = JSON.parse(j.stdout) as DoctorResult;
    assert.equal(parsed.serial, dev.serial);
    assert.equal(parsed.exitCode, ExitCode.FAIL);
    assert.equal(typeof parsed.rootMethod, 'string');
    assert.equal(parsed.kernel.release, os.release());
  });

  test('ANDROID_SERIAL is honoured; -s wins', T, async () => {
    const r = await kml(['doctor', '--json'], { ...server.env, ANDROID_SERIAL: dev.serial });
    assert.equal(JSON.parse(r.stdout).serial, dev.serial);
  });

  test('unknown serial → exit 3 with the reason; bad serial → exit 2', T, async () => {
    const r = await kml(['doctor', '-s', 'x;reboot'], server.env);
    assert.equal(r.code, ExitCode.DEVICE, r.stdout + r.stderr);
    assert.match(r.stdout, /FAIL {2}device reachable +x;reboot is not attached/);
    assert.match(r.stdout, /DEVICE UNAVAILABLE/);
    const j = await kml(['doctor', '-s', '$(id)', '--json'], server.env);
    assert.equal(j.code, ExitCode.DEVICE);
    assert.equal(JSON.parse(j.stdout).state, 'absent');
    const bad = await kml(['doctor', '-s', 'a\nb'], server.env);
    assert.equal(bad.code, ExitCode.USAGE);
    assert.match(bad.stderr, /invalid device serial/);
  });

  test('adb server unreachable → exit 3 with a start-server hint', T, async () => {
    const port = await freePort();
    const r = await kml(['-P', String(port), 'doctor', '-s', 'S1'], { ...server.env, KML_ADB_BIN: '/bin/false' });
    assert.equal(r.code, ExitCode.DEVICE, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`adb server unreachable at 127\\.0\\.0\\.1:${port}`));
    assert.match(r.stderr, /hint: .*start-server/);
  });

  test('kml devices lists the device with state and a one-word readiness', T, async () => {
    const r = await kml(['devices', '--json'], server.env);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ serial: string; state: string; readiness: string; reason: string }>;
    const row = rows.find((x) => x.serial === dev.serial);
    assert.ok(row, r.stdout);
    assert.equal(row.state, 'device');
    assert.equal(row.readiness, 'not-ready');
    assert.ok(row.reason.length > 0);
    const t = await kml(['devices'], server.env);
    assert.match(t.stdout, /^SERIAL +STATE +READINESS/m);
    assert.match(t.stdout, new RegExp(`^${dev.serial.replace(/\./g, '\\.')} +device +not-ready`, 'm'));
  });
});
