// `kml doctor` on the lab device (a real kmemleak kernel under QEMU, our adbd inside) through a
// private real adb server: PASS with kmemleak=on; FAIL with the right remedy when booted without
// kmemleak=on (CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y) and when debugfs is not mounted; --mount-debugfs.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { doctorJson, runKml as kml } from '../helpers/kml-cli.js';
import { ensureLabArtifacts, withLabDevice } from '../helpers/lab.js';
import { ExitCode } from '../../host/errors.js';
import type { DoctorResult } from '../../host/device/doctor.js';


const BUILD = { timeout: 60 * 60_000 }; // first run builds the lab kernel
const T = { timeout: 6 * 60_000 };

function byId(r: DoctorResult, id: string) {
  const c = r.checks.find((x) => x.id === id);
  assert.ok(c, `check ${id} present in ${JSON.stringify(r.checks.map((x) => x.id))}`);
  return c;
}

describe('kml doctor on the lab device', () => {
  before(async () => { await ensureLabArtifacts(); }, BUILD);

  test('kmemleak=on: every check passes, exit 0; the dump=0 probe changes nothing', T, async () => {
    await withLabDevice({ kmemleak: true }, async (lab) => {
      const threadsBefore = (await lab.sh('ps -A -o comm 2>/dev/null || ps')).stdout.split('\n').filter((l) => /\bkmemleak\b/.test(l)).length;
      const { code, result, stderr } = await doctorJson(lab);
      const bad = result.checks.filter((c) => c.status === 'FAIL');
      assert.equal(code, ExitCode.OK, `${JSON.stringify(bad, null, 1)}\n${stderr}`);
      assert.equal(result.ready, true);
      for (const id of ['device', 'root', 'kernel-config', 'boot-params', 'debugfs', 'kmemleak-file', 'kmemleak-enabled', 'kernel-log']) {
        assert.equal(byId(result, id).status, 'PASS', `${id}: ${byId(result, id).detail}`);
      }
      assert.notEqual(result.rootMethod, 'none');
      assert.equal(result.kernel.probe, 'enabled');
      assert.equal(result.kernel.config?.CONFIG_DEBUG_KMEMLEAK, 'y');
      assert.match(result.kernel.cmdline ?? '', /kmemleak=on/);
      assert.equal(result.kernel.debugfsMounted, true);
      assert.ok(result.kernel.bootId && /^[0-9a-f-]{36}$/.test(result.kernel.bootId));
      // The probe left kmemleak exactly as it was: still enabled, same kmemleak threads, its trace in dmesg.
      const scan = await lab.sh('echo scan > /sys/kernel/debug/kmemleak');
      assert.equal(scan.code, 0, scan.stderr);
      const threadsAfter = (await lab.sh('ps -A -o comm 2>/dev/null || ps')).stdout.split('\n').filter((l) => /\bkmemleak\b/.test(l)).length;
      assert.equal(threadsAfter, threadsBefore);
      assert.match((await lab.sh('dmesg | grep -c "Unknown object at 0x00000000"')).stdout.trim(), /^[1-9]\d*$/);

      // Human output: one line per check, READY.
      const human = await kml(['doctor', '-s', lab.serial, '--out', os.tmpdir()], lab.env);
      assert.equal(human.code, ExitCode.OK);
      assert.match(human.stdout, /^PASS {2}kmemleak detector running/m);
      assert.match(human.stdout, /READY/);
      // kml devices: a one-word readiness.
      const dv = await kml(['devices', '--json'], lab.env);
      const row = (JSON.parse(dv.stdout) as Array<{ serial: string; readiness: string }>).find((x) => x.serial === lab.serial);
      assert.equal(row?.readiness, 'ready', dv.stdout);
    });
  });

  test('booted without kmemleak=on (DEFAULT_OFF=y): FAIL, remedy names the defconfig line and kmemleak=on, exit 1', T, async () => {
    await withLabDevice({ kmemleak: false }, async (lab) => {
      const { code, result } = await doctorJson(lab);
      assert.equal(code, ExitCode.FAIL);
      const boot = byId(result, 'boot-params');
      assert.equal(boot.status, 'FAIL');
      assert.match(boot.detail, /CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y/);
      assert.match(boot.remedy!, /# CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set/);
      assert.match(boot.remedy!, /kmemleak=on/);
      const probe = byId(result, 'kmemleak-enabled');
      assert.equal(probe.status, 'FAIL');
      assert.match(probe.detail, /EPERM/);
      assert.equal(result.kernel.probe, 'disabled-eperm');
      assert.equal(byId(result, 'kernel-log').status, 'FAIL');
      assert.equal(byId(result, 'kernel-config').status, 'PASS', 'kmemleak is built in, just off');
      const dv = await kml(['devices', '--json'], lab.env);
      const row = (JSON.parse(dv.stdout) as Array<{ serial: string; readiness: string }>).find((x) => x.serial === lab.serial);
      assert.equal(row?.readiness, 'not-ready');
    });
  });

  test('debugfs not mounted: FAIL with the mount command; --mount-debugfs mounts it and passes', T, async () => {
    await withLabDevice({ kmemleak: true, debugfsMounted: false }, async (lab) => {
      const { code, result } = await doctorJson(lab);
      assert.equal(code, ExitCode.FAIL);
      const d = byId(result, 'debugfs');
      assert.equal(d.status, 'FAIL');
      assert.match(d.remedy!, /mount -t debugfs debugfs \/sys\/kernel\/debug/);
      assert.match(d.remedy!, new RegExp(lab.serial.replace(/\./g, '\\.')));
      assert.equal(byId(result, 'kmemleak-enabled').status, 'SKIP');
      assert.equal(result.kernel.debugfsMounted, false);

      const fixed = await doctorJson(lab, ['--mount-debugfs']);
      assert.equal(fixed.code, ExitCode.OK, JSON.stringify(fixed.result.checks.filter((c) => c.status === 'FAIL')));
      assert.equal(fixed.result.kernel.debugfsMountedByDoctor, true);
      assert.match(byId(fixed.result, 'debugfs').detail, /mounted now by kml doctor/);
      assert.equal(byId(fixed.result, 'kmemleak-enabled').status, 'PASS');
      assert.equal((await lab.sh('grep -c " /sys/kernel/debug debugfs " /proc/mounts')).stdout.trim(), '1');
    });
  });
});
