// Root on the lab device when adbd does not start as root, through a private real adb server:
// a userdebug build (adbd runs as the shell user, uid 2000, until `adb root` restarts it: the
// transport drops and comes back) and a user build (no root at all). The device's init restarts
// adbd and kills what it started, as Android's does (scripts/lab/guest/adbd-service).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KML_BIN } from '../helpers/paths.js';
import { doctorJson, runKml as kml } from '../helpers/kml-cli.js';
import { ensureLabArtifacts, withLabDevice, type LabDeviceHandle } from '../helpers/lab.js';
import { ExitCode } from '../../host/errors.js';
import type { DoctorResult } from '../../host/device/doctor.js';
import { labReboot } from '../../host/lab/lab.js';
import { serialSafe } from '../../host/store/layout.js';
import { readManifest } from '../../host/store/manifest.js';
import { listRuns, readRunJson, type RunJson } from '../../host/store/run.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `kml collect --interval 5 --count 3` into a temp store: exit 0, one run closed cleanly, 3 snapshots,
 * stored = what the agent logged as published (its log read with `asRoot`, e.g. through su). Returns run.json.
 */
async function collectThree(lab: LabDeviceHandle, agentDir: string, extra: string[], asRoot: (cmd: string) => string): Promise<RunJson> {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-root-lab-'));
  try {
    const r = await kml(['collect', '-s', lab.serial, '--out', out, '--agent-dir', agentDir, '--interval', '5', '--count', '3', ...extra], lab.env, 600_000);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const runs = await listRuns(out, lab.serial);
    assert.equal(runs.length, 1);
    const dir = path.join(out, serialSafe(lab.serial), runs[0]);
    const json = await readRunJson(dir);
    assert.equal(json.ended?.clean, true);
    const es = (await readManifest(path.join(dir, 'manifest.jsonl'))).entries;
    const published = [...(await lab.sh(asRoot(`cat ${agentDir}/agent.log`))).stdout.matchAll(/snapshot (\d+) published/g)].map((m) => Number(m[1]));
    assert.equal(es.length, 3);
    assert.deepEqual(es.map((e) => e.seq).sort((a, b) => a - b), published.sort((a, b) => a - b), 'stored = published, once each');
    return json;
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
}

const BUILD = { timeout: 60 * 60_000 }; // first run builds the lab kernel
const T = { timeout: 6 * 60_000 };

function rootCheck(r: DoctorResult) {
  const c = r.checks.find((x) => x.id === 'root');
  assert.ok(c, 'root check present');
  return c;
}

describe('root on the lab device: userdebug (adb root) and user builds', () => {
  before(async () => { await ensureLabArtifacts(); }, BUILD);

  test('userdebug: adbd runs as uid 2000; doctor --no-adb-root uses AOSP su (`su 0`); doctor runs `adb root`, waits for adbd to come back, and passes', T, async () => {
    await withLabDevice({ kmemleak: true, build: 'userdebug' }, async (lab) => {
      assert.equal((await lab.sh('id -u')).stdout.trim(), '2000');
      assert.equal((await lab.sh('getprop ro.debuggable')).stdout.trim(), '1');
      const denied = await lab.sh('cat /sys/kernel/debug/kmemleak');
      assert.notEqual(denied.code, 0, 'the shell user cannot read kmemleak');
      assert.match((await lab.sh('su -c id')).stderr, /unknown user '-c'/, 'AOSP su has no -c');
      const adbdPidBefore = (await lab.sh('cat /run/kml/adbd.pid')).stdout.trim();
      assert.match(adbdPidBefore, /^\d+$/);

      const viaSu = await doctorJson(lab, ['--no-adb-root']);
      assert.equal(viaSu.code, ExitCode.OK, `${JSON.stringify(viaSu.result.checks.filter((c) => c.status === 'FAIL'), null, 1)}\n${viaSu.stderr}`);
      assert.equal(viaSu.result.rootMethod, 'su-0');
      assert.deepEqual(viaSu.result.root!.attempts.map((a) => `${a.method}:${a.ok}`), ['adbd-root:false', 'adb-root:false', 'su-0:true']);
      assert.equal(viaSu.result.root!.attempts[0].detail, 'uid 2000');
      assert.match(viaSu.result.root!.attempts[1].detail, /--no-adb-root/);
      assert.equal(viaSu.result.kernel.probe, 'enabled', 'kmemleak read through su');
      assert.equal((await lab.sh('id -u')).stdout.trim(), '2000', '--no-adb-root left adbd alone');
      assert.equal((await lab.sh('cat /run/kml/adbd.pid')).stdout.trim(), adbdPidBefore);

      const t0 = Date.now();
      const { code, result, stderr } = await doctorJson(lab);
      const restartMs = Date.now() - t0;
      assert.equal(code, ExitCode.OK, `${JSON.stringify(result.checks.filter((c) => c.status === 'FAIL'), null, 1)}\n${stderr}`);
      assert.equal(result.ready, true);
      assert.equal(result.rootMethod, 'adb-root');
      const methods = result.root!.attempts.map((a) => `${a.method}:${a.ok}`);
      assert.deepEqual(methods, ['adbd-root:false', 'adb-root:true']);
      assert.match(result.root!.attempts[1].detail, /restarting adbd as root/);
      assert.equal(rootCheck(result).status, 'PASS');
      assert.equal(result.kernel.probe, 'enabled');
      // adbd really restarted (a new process, now root) and the transport came back.
      assert.equal((await lab.sh('id -u')).stdout.trim(), '0');
      const adbdPidAfter = (await lab.sh('cat /run/kml/adbd.pid')).stdout.trim();
      assert.notEqual(adbdPidAfter, adbdPidBefore);
      assert.equal((await lab.sh('getprop service.adb.root')).stdout.trim(), '1');
      const again = await lab.server.adb(['-s', lab.serial, 'root'], { timeoutMs: 15_000 });
      assert.match(again.stdout, /adbd is already running as root/);
      process.stderr.write(`# root-lab: doctor with adb root took ${restartMs} ms\n`);
    });
  });

  test('user build without su: adbd runs as uid 2000, `adb root` is refused, doctor says no root with the user-build remedy (exit 1)', T, async () => {
    await withLabDevice({ kmemleak: true, build: 'user' }, async (lab) => {
      assert.equal((await lab.sh('id -u')).stdout.trim(), '2000');
      const refused = await lab.server.adb(['-s', lab.serial, 'root'], { timeoutMs: 15_000 });
      assert.match(refused.stdout + refused.stderr, /adbd cannot run as root in production builds/);
      assert.equal((await lab.sh('id -u')).stdout.trim(), '2000');

      const { code, result } = await doctorJson(lab);
      assert.equal(code, ExitCode.FAIL);
      assert.equal(result.rootMethod, 'none');
      assert.equal(result.root!.debuggable, '0');
      const adbRoot = result.root!.attempts.find((a) => a.method === 'adb-root');
      assert.equal(adbRoot?.ok, false);
      assert.match(adbRoot?.detail ?? '', /user build/);
      assert.deepEqual(result.root!.attempts.find((a) => a.method === 'su-0'), { method: 'su-0', ok: false, detail: 'no su binary' });
      const rc = rootCheck(result);
      assert.equal(rc.status, 'FAIL');
      assert.match(rc.remedy ?? '', /user build/);
      assert.equal(result.ready, false);
    });
  });

  test('user build with Magisk su: kml collect runs as root through `su -c` while adbd (and so every pull) stays the shell user; every snapshot stored once', { timeout: 15 * 60_000 }, async () => {
    await withLabDevice({ kmemleak: true, build: 'user', su: 'magisk' }, async (lab) => {
      assert.equal((await lab.sh('id -u')).stdout.trim(), '2000');
      assert.equal((await lab.sh("su -c 'id -u'")).stdout.trim(), '0');
      const agentDir = '/data/local/tmp/kml-magisk';
      const json = await collectThree(lab, agentDir, [], (cmd) => `su -c '${cmd}'`);
      assert.equal(json.device.rootMethod, 'su-c', JSON.stringify(json.device));
      // The agent ran as root (its log is root's); adbd never did. What root runs is root's, though
      // adbd (the shell user) pushed the script.
      for (const f of ['agent.log', 'kml-agent.sh', '.', 'snapshots']) {
        assert.match((await lab.sh(`ls -lnd ${agentDir}/${f}`)).stdout, /^\S+\s+\d+\s+0\s+0\s/, f);
      }
      assert.equal((await lab.sh('id -u')).stdout.trim(), '2000');
      assert.equal((await lab.sh(`ls ${agentDir}/snapshots`)).stdout.trim(), '', 'nothing left on the device');
    });
  });

  test('userdebug, kml collect --no-adb-root: root through AOSP su, adbd never restarted (what runs from adb shell survives); every snapshot stored once', { timeout: 15 * 60_000 }, async () => {
    await withLabDevice({ kmemleak: true, build: 'userdebug' }, async (lab) => {
      const adbdPid = (await lab.sh('cat /run/kml/adbd.pid')).stdout.trim();
      // A workload started from adb shell, as a tester runs one during a soak: adb root would kill it.
      assert.equal((await lab.sh('setsid sleep 600 </dev/null >/dev/null 2>&1 & echo started')).stdout.trim(), 'started');
      try {
        const json = await collectThree(lab, '/data/local/tmp/kml-noroot', ['--no-adb-root'], (cmd) => `su 0 ${cmd}`);
        assert.equal(json.device.rootMethod, 'su-0', JSON.stringify(json.device));
        assert.equal((await lab.sh('cat /run/kml/adbd.pid')).stdout.trim(), adbdPid, 'adbd never restarted');
        assert.equal((await lab.sh('id -u')).stdout.trim(), '2000');
        assert.match((await lab.sh('ps -o args 2>/dev/null || ps')).stdout, /sleep 600/, 'the adb shell workload is still running');
      } finally {
        await lab.sh('pkill -f "sleep 600"');
      }
    });
  });

  test('userdebug: kml collect roots the device itself, and again after a reboot (adb root does not survive one); every snapshot stored once', { timeout: 15 * 60_000 }, async () => {
    await withLabDevice({ kmemleak: true, build: 'userdebug' }, async (lab) => {
      const out = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-root-lab-'));
      const agentDir = '/data/local/tmp/kml-root';
      const common = ['-s', lab.serial, '--out', out, '--agent-dir', agentDir];
      const c = spawn(process.execPath, [KML_BIN, 'collect', ...common, '--interval', '5'], { env: lab.env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      c.stderr!.on('data', (d) => (stderr += d));
      const done = new Promise<number | null>((resolve) => c.on('close', (code) => resolve(code)));
      try {
        const runDir = async (): Promise<string> => {
          const runs = await listRuns(out, lab.serial);
          assert.ok(runs.length === 1, `one run, got ${runs.length}`);
          return path.join(out, serialSafe(lab.serial), runs[0]);
        };
        const stored = async (): Promise<number> => (await readManifest(path.join(await runDir(), 'manifest.jsonl'))).entries.length;
        const waitFor = async (what: string, fn: () => Promise<boolean>, timeoutMs = 240_000): Promise<void> => {
          const end = Date.now() + timeoutMs;
          while (!(await fn().catch(() => false))) {
            if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${stderr.slice(-2000)}`);
            await sleep(500);
          }
        };
        await waitFor('2 snapshots', async () => (await stored()) >= 2);
        assert.equal((await lab.sh('id -u')).stdout.trim(), '0', 'the collector ran adb root');

        const n = await stored();
        await labReboot(lab.ctx, lab.serial);
        await waitFor('progress after the reboot', async () => (await stored()) >= n + 2, 300_000);
        assert.match(stderr, /device rebooted/);
        assert.equal((await lab.sh('id -u')).stdout.trim(), '0', 'rooted again after the reboot');

        const stop = await kml(['stop', ...common], lab.env, 300_000);
        assert.equal(stop.code, 0, stop.stderr + stop.stdout);
        assert.equal(await done, 0, stderr.slice(-3000));
        const dir = await runDir();
        const es = (await readManifest(path.join(dir, 'manifest.jsonl'))).entries;
        const keys = es.map((e) => `${e.bootId}#${e.seq}`);
        assert.equal(new Set(keys).size, keys.length, 'no duplicates');
        const published = [...(await lab.sh(`cat ${agentDir}/agent.log`)).stdout.matchAll(/snapshot (\d+) published/g)].map((m) => Number(m[1]));
        assert.deepEqual(es.map((e) => e.seq).sort((a, b) => a - b), published.sort((a, b) => a - b), 'stored = published, once each');
        const json = await readRunJson(dir);
        assert.equal(json.boots.length, 2, 'a new boot segment after the reboot');
        assert.equal(json.ended?.clean, true);
        assert.equal(json.device.rootMethod, 'adb-root', JSON.stringify(json.device));
        process.stderr.write(`# root-lab: collect on userdebug: ${es.length} snapshots across 2 boots, 0 lost, 0 duplicated\n`);
      } finally {
        c.kill('SIGKILL');
        await fs.rm(out, { recursive: true, force: true });
      }
    });
  });
});
