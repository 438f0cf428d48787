// The lab device end to end, through Debian's real adb server: one device with kmemleak=on is booted
// for the whole file (tests run in order; the reboot test is last because it is the slowest).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { labKillAdbd, labLeak, labReboot, labReplug, labUnplug } from '../../host/lab/lab.js';
import { ensureLabArtifacts, startLabDevice, type LabDeviceHandle } from '../helpers/lab.js';

const KMEMLEAK = '/sys/kernel/debug/kmemleak';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const countLeaks = (report: string) => (report.match(/^unreferenced object /gm) ?? []).length;

describe('lab device (kmemleak=on)', { timeout: 20 * 60_000 }, () => {
  let lab: LabDeviceHandle;
  let tmp: string;

  before(async () => {
    await ensureLabArtifacts();
    lab = await startLabDevice({ kmemleak: true });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'kml-lab-files-'));
  }, { timeout: 20 * 60_000 });

  after(async () => {
    await lab?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, { timeout: 60_000 });

  test('adb devices lists the lab serial as `device`', { timeout: 30_000 }, async () => {
    const r = await lab.server.adb(['devices']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^${lab.serial.replace(/\./g, '\\.')}\\tdevice$`, 'm'));
    assert.match(lab.serial, /^127\.0\.0\.1:\d+$/);
  });

  test('shell v2 passes exit codes and keeps stderr apart', { timeout: 30_000 }, async () => {
    const ok = await lab.sh('echo out; echo err >&2; exit 0');
    assert.equal(ok.code, 0);
    assert.equal(ok.stdout, 'out\n');
    assert.equal(ok.stderr, 'err\n');
    assert.equal((await lab.sh('exit 3')).code, 3);
    assert.equal((await lab.sh('false')).code, 1);
    const missing = await lab.sh('ls /no/such/file');
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /No such file or directory/);
  });

  test('the guest looks like a rooted userdebug Android where kml looks', { timeout: 30_000 }, async () => {
    const r = await lab.sh('id -u; echo "$KSH_VERSION"; getprop ro.build.type; getprop ro.debuggable; getprop sys.boot_completed; getprop ro.serialno; getprop no.such.prop fallback');
    const [uid, ksh, type, debuggable, completed, serialno, fallback] = r.stdout.split('\n');
    assert.equal(uid, '0');
    assert.match(ksh, /MIRBSD KSH/);
    assert.equal(type, 'userdebug');
    assert.equal(debuggable, '1');
    assert.equal(completed, '1');
    assert.match(serialno, /^KMLLAB\d{4}$/);
    assert.equal(fallback, 'fallback');
    const all = await lab.sh('getprop');
    assert.match(all.stdout, /^\[ro\.build\.type\]: \[userdebug\]$/m);
    const mounts = await lab.sh('cat /proc/mounts; ls -d /sdcard/ /data/local/tmp/; test -w /data/local/tmp && echo writable');
    assert.match(mounts.stdout, /^debugfs \/sys\/kernel\/debug debugfs /m);
    assert.match(mounts.stdout, /^\/dev\/vda \/data ext4 /m);
    assert.match(mounts.stdout, /^writable$/m);
    const root = await lab.server.adb(['-s', lab.serial, 'root']);
    assert.match(root.stdout, /already running as root/);
    // A phone's userland: the commands kml and its agent run are toybox's (busybox only where this
    // toybox build has no applet, e.g. tr), found first on adbd's PATH.
    const tools = await lab.sh('for c in cat grep stat date sha256sum setsid nohup pgrep sleep; do echo "$c $(readlink "$(which "$c")")"; done; toybox --version');
    for (const line of tools.stdout.trim().split('\n').slice(0, -1)) assert.match(line, /^\S+ toybox$/, line);
    assert.match(tools.stdout, /^toybox \d/m);
  });

  test('push and pull of a 20 MB file are byte-exact', { timeout: 180_000 }, async () => {
    const local = path.join(tmp, 'blob.bin');
    const back = path.join(tmp, 'blob.back');
    const data = randomBytes(20 * 1024 * 1024);
    writeFileSync(local, data);
    const sha = createHash('sha256').update(data).digest('hex');
    const push = await lab.server.adb(['-s', lab.serial, 'push', local, '/data/local/tmp/blob.bin'], { timeoutMs: 120_000 });
    assert.equal(push.code, 0, push.stderr);
    const remote = await lab.sh('sha256sum /data/local/tmp/blob.bin');
    assert.equal(remote.stdout.split(/\s+/)[0], sha);
    const pull = await lab.server.adb(['-s', lab.serial, 'pull', '/data/local/tmp/blob.bin', back], { timeoutMs: 120_000 });
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(createHash('sha256').update(readFileSync(back)).digest('hex'), sha);
    await lab.sh('rm -f /data/local/tmp/blob.bin');
  });

  test('/proc/config.gz shows CONFIG_DEBUG_KMEMLEAK=y', { timeout: 30_000 }, async () => {
    const r = await lab.server.adb(['-s', lab.serial, 'exec-out', 'cat /proc/config.gz']);
    assert.equal(r.code, 0);
    const config = gunzipSync(r.stdoutBytes).toString('utf8');
    assert.match(config, /^CONFIG_DEBUG_KMEMLEAK=y$/m);
    assert.match(config, /^CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y$/m);
    const cmdline = await lab.sh('cat /proc/cmdline');
    assert.match(cmdline.stdout, /\bkmemleak=on\b/);
  });

  test('insmod kmemleak-test, then a scan reports leaks', { timeout: 90_000 }, async () => {
    const load = await lab.sh('insmod /lib/modules/$(uname -r)/kernel/samples/kmemleak/kmemleak-test.ko && rmmod kmemleak_test');
    assert.equal(load.code, 0, load.stderr);
    await sleep(6000); // kmemleak never reports objects younger than 5 s
    // The first scan may see only part of the leaks (checksums must settle): scan twice.
    const scan = await lab.sh(`echo scan > ${KMEMLEAK} && echo scan > ${KMEMLEAK}`);
    assert.equal(scan.code, 0, scan.stderr);
    const report = (await lab.sh(`cat ${KMEMLEAK}`)).stdout;
    assert.ok(countLeaks(report) >= 5, `expected leaks from kmemleak-test, got:\n${report.slice(0, 2000)}`);
    assert.match(report, /backtrace:/);
    assert.equal((await lab.sh(`echo clear > ${KMEMLEAK}`)).code, 0);
  });

  test('kml_leaky at a rate makes the leak count grow between scans, with distinct stacks', { timeout: 120_000 }, async () => {
    const state = await labLeak(lab.ctx, lab.serial, { rate: 40, paths: 7 });
    assert.equal(state.loaded, true);
    assert.equal(state.rate, 40);
    await sleep(7000);
    await lab.sh(`echo scan > ${KMEMLEAK}; echo scan > ${KMEMLEAK}`);
    const first = countLeaks((await lab.sh(`cat ${KMEMLEAK}`)).stdout);
    await sleep(4000);
    await lab.sh(`echo scan > ${KMEMLEAK}; echo scan > ${KMEMLEAK}`);
    const report = (await lab.sh(`cat ${KMEMLEAK}`)).stdout;
    const second = countLeaks(report);
    assert.ok(first > 0, 'kml_leaky leaks should be reported');
    assert.ok(second > first, `leak count should grow: ${first} then ${second}`);
    for (const fn of ['kml_leaky_cache_fill_entry', 'kml_leaky_request_new', 'kml_leaky_name_dup', 'kml_leaky_probe_table']) {
      assert.match(report, new RegExp(fn), `no stack through ${fn}`);
    }
    const stopped = await labLeak(lab.ctx, lab.serial, { rate: 0 });
    assert.equal(stopped.rate, 0);
    assert.ok((stopped.leakedObjects ?? 0) >= 40 * 7);
    await lab.sh(`echo clear > ${KMEMLEAK}`);
  });

  test('unplug makes the device offline, replug brings it back as `device`', { timeout: 90_000 }, async () => {
    const u = await labUnplug(lab.ctx, lab.serial);
    assert.equal(u.serial, lab.serial);
    let state = '';
    for (let i = 0; i < 50 && state !== 'offline'; i++) {
      await sleep(100);
      state = (await lab.server.adb(['-s', lab.serial, 'get-state'])).stdout.trim();
    }
    const devices = await lab.server.adb(['devices']);
    assert.match(devices.stdout, new RegExp(`^${lab.serial.replace(/\./g, '\\.')}\\toffline$`, 'm'));
    const shell = await lab.server.adb(['-s', lab.serial, 'shell', 'echo hi'], { timeoutMs: 15_000 });
    assert.notEqual(shell.code, 0);
    await labReplug(lab.ctx, lab.serial);
    const after = await lab.server.adb(['devices']);
    assert.match(after.stdout, new RegExp(`^${lab.serial.replace(/\./g, '\\.')}\\tdevice$`, 'm'));
    assert.equal((await lab.sh('echo back')).stdout, 'back\n');
  });

  test('kill-adbd kills what adbd started, and adbd comes back', { timeout: 90_000 }, async () => {
    // Like a kml agent: detached through setsid/nohup, it still lives in adbd's cgroup.
    const start = await lab.sh('setsid nohup sleep 1000 </dev/null >/dev/null 2>&1 & echo $!');
    const pid = start.stdout.trim();
    assert.match(pid, /^\d+$/);
    assert.equal((await lab.sh(`kill -0 ${pid} && echo alive`)).stdout, 'alive\n');
    await labKillAdbd(lab.ctx, lab.serial, { wait: true });
    const gone = await lab.sh(`kill -0 ${pid} 2>/dev/null && echo alive || echo gone`);
    assert.equal(gone.stdout, 'gone\n');
  });

  test('reboot changes boot_id, keeps /data/local/tmp, and the device comes back', { timeout: 180_000 }, async () => {
    const before = (await lab.sh('cat /proc/sys/kernel/random/boot_id; echo keep-me > /data/local/tmp/persist.txt; sync')).stdout.split('\n')[0];
    assert.match(before, /^[0-9a-f-]{36}$/);
    const r = await labReboot(lab.ctx, lab.serial);
    assert.ok(r.rebootToDeviceMs > 0);
    const after = await lab.sh('cat /proc/sys/kernel/random/boot_id; cat /data/local/tmp/persist.txt; getprop sys.boot_completed');
    const [bootId, kept, completed] = after.stdout.split('\n');
    assert.match(bootId, /^[0-9a-f-]{36}$/);
    assert.notEqual(bootId, before);
    assert.equal(kept, 'keep-me');
    assert.equal(completed, '1');
    const devices = await lab.server.adb(['devices']);
    assert.match(devices.stdout, new RegExp(`^${lab.serial.replace(/\./g, '\\.')}\\tdevice$`, 'm'));
  });
});
