// Doctor's pure logic on real captured text from the lab kernel (test/fixtures/shared): config and
// command-line parsing, the probe's error text, kernel-log findings, and the verdicts + remedies.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SHARED_FIXTURES } from '../helpers/paths.js';
import { ExitCode } from '../../host/errors.js';
import {
  check, classifyProbe, configExcerpt, configHz, debugfsMountPoints, doctorExitCode, evaluateBootParams, evaluateKernelConfig,
  evaluateKernelLog, evaluateProbe, formatCheckLines, KMEMLEAK_PROBE_COMMAND, kmemleakBootParam, parseBootconfig, parseCmdline,
  parseDfK, parseKernelConfig, parseStatFs, scanKernelLog, spaceStatus, SPACE_LIMITS,
} from '../../host/device/doctor-checks.js';
import { doctorFailure, parseGetprop, type DoctorResult } from '../../host/device/doctor.js';
import { debugfsRemedy, keepDebugfsRemedy, noRootRemedy, REMEDY, rootShell } from '../../host/device/remedies.js';

/** A shared fixture without the capture script's `[section rc=N]` / `## name` framing lines. */
function fixture(rel: string): string {
  return readFileSync(path.join(SHARED_FIXTURES, rel), 'utf8')
    .split('\n').filter((l) => !/^\[section rc=\d+\]$/.test(l) && !/^#{2,3} /.test(l)).join('\n');
}

const CONFIG_LAB = fixture('kmemleak/config-kmemleak-grep.txt');
const CMDLINE_ON = fixture('proc/proc-cmdline-kmemleak-on.txt');
const CMDLINE_OFFDEFAULT = fixture('proc/proc-cmdline-kmemleak-default-off.txt');

test('kernel config: values, "is not set" lines, excerpt and HZ', () => {
  const cfg = parseKernelConfig(CONFIG_LAB);
  assert.equal(cfg.get('CONFIG_DEBUG_KMEMLEAK'), 'y');
  assert.equal(cfg.get('CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF'), 'y');
  assert.equal(cfg.get('CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE'), '16000');
  const seedAfter = parseKernelConfig('CONFIG_DEBUG_KMEMLEAK=y\nCONFIG_DEBUG_KMEMLEAK_EARLY_LOG_SIZE=40000\n# CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set\nCONFIG_HZ_300=y\nCONFIG_HZ=300\nCONFIG_LOCALVERSION="-perf"\nCONFIG_USB=y\n');
  assert.equal(seedAfter.get('CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF'), 'n');
  assert.equal(seedAfter.get('CONFIG_LOCALVERSION'), '-perf');
  assert.equal(configHz(seedAfter), 300);
  assert.equal(configHz(cfg), undefined);
  const ex = configExcerpt(seedAfter);
  assert.equal(ex.CONFIG_DEBUG_KMEMLEAK_EARLY_LOG_SIZE, '40000');
  assert.equal(ex.CONFIG_HZ, '300');
  assert.equal(ex.CONFIG_USB, undefined, 'unrelated options stay out of run.json');
});

test('command line: real lab cmdlines, quoting, and the kmemleak= rule (any off wins)', () => {
  assert.deepEqual(kmemleakBootParam(CMDLINE_ON), { values: ['on'], effective: 'on' });
  assert.deepEqual(kmemleakBootParam(CMDLINE_OFFDEFAULT), { values: [], effective: undefined });
  assert.deepEqual(kmemleakBootParam('kmemleak=off quiet kmemleak=on').effective, 'off');
  assert.deepEqual(kmemleakBootParam('quiet', 'kernel.kmemleak = "on"\nandroidboot.hardware = "x"').effective, 'on');
  assert.deepEqual(parseCmdline('a=1 b="x y" c'), [['a', '1'], ['b', 'x y'], ['c', undefined]]);
  assert.equal(parseBootconfig('androidboot.serialno = "ABC"\n').get('androidboot.serialno'), 'ABC');
  assert.equal(kmemleakBootParam('nokmemleak=on kmemleak_x=on').effective, undefined, 'only the exact parameter counts');
});

test('boot-params verdicts: DEFAULT_OFF without kmemleak=on is a FAIL naming both fixes', () => {
  const cfg = parseKernelConfig(CONFIG_LAB); // DEFAULT_OFF=y, as the lab kernel
  const fail = evaluateBootParams(cfg, CMDLINE_OFFDEFAULT);
  assert.equal(fail.status, 'FAIL');
  assert.match(fail.remedy!, /# CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set/);
  assert.match(fail.remedy!, /kmemleak=on/);
  assert.match(fail.remedy!, /BOARD_KERNEL_CMDLINE/);
  assert.equal(evaluateBootParams(cfg, CMDLINE_ON).status, 'PASS');
  const off = evaluateBootParams(cfg, `${CMDLINE_ON} kmemleak=off`);
  assert.equal(off.status, 'FAIL');
  assert.match(off.remedy!, /remove it/);
  const seedFixed = parseKernelConfig('CONFIG_DEBUG_KMEMLEAK=y\n# CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set\n');
  assert.equal(evaluateBootParams(seedFixed, CMDLINE_OFFDEFAULT).status, 'PASS');
  assert.equal(evaluateBootParams(undefined, CMDLINE_OFFDEFAULT).status, 'WARN', 'unknown config: cannot be sure');
  assert.equal(evaluateBootParams(undefined, undefined).status, 'WARN');
});

test('kernel-config verdicts: missing CONFIG_DEBUG_KMEMLEAK → FAIL with the defconfig lines; no config → WARN', () => {
  const none = evaluateKernelConfig(parseKernelConfig('# CONFIG_DEBUG_KMEMLEAK is not set\nCONFIG_DEBUG_FS=y\n'));
  assert.equal(none.status, 'FAIL');
  assert.match(none.remedy!, /^.*\n {4}CONFIG_DEBUG_KMEMLEAK=y\n {4}# CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set/m);
  assert.equal(evaluateKernelConfig(parseKernelConfig('CONFIG_USB=y\n')).status, 'FAIL');
  assert.equal(evaluateBootParams(parseKernelConfig('# CONFIG_DEBUG_KMEMLEAK is not set\n'), CMDLINE_ON).status, 'SKIP', 'boot params are moot without kmemleak');
  const ok = evaluateKernelConfig(parseKernelConfig(CONFIG_LAB));
  assert.equal(ok.status, 'PASS');
  assert.match(ok.detail, /DEFAULT_OFF=y/);
  const unknown = evaluateKernelConfig(undefined);
  assert.equal(unknown.status, 'WARN');
  assert.match(unknown.detail, /config\.gz/);
  assert.equal(evaluateKernelConfig(parseKernelConfig('CONFIG_DEBUG_KMEMLEAK=y\n# CONFIG_DEBUG_FS is not set\n')).status, 'FAIL');
});

test('probe command is harmless and can never disable kmemleak', () => {
  assert.equal(KMEMLEAK_PROBE_COMMAND, 'dump=0');
  assert.doesNotMatch(KMEMLEAK_PROBE_COMMAND, /^\s*off/);
  assert.doesNotMatch(KMEMLEAK_PROBE_COMMAND, /^scan|^stack|^clear/);
});

test('probe verdicts from the real shell errors captured on the lab kernel', () => {
  const text = fixture('kmemleak/kmemleak-error-behaviours.txt');
  const einval = text.split('\n').find((l) => /^sh: write error: Invalid argument/.test(l))!;
  const eperm = text.split('\n').find((l) => /^sh: write error: Operation not permitted/.test(l))!;
  const enoent = text.split('\n').find((l) => /can't open .*No such file/.test(l))!;
  const eacces = text.split('\n').find((l) => /can't open .*Permission denied/.test(l))!;
  assert.equal(classifyProbe(1, einval), 'enabled');
  assert.equal(classifyProbe(1, eperm), 'disabled-eperm');
  assert.equal(classifyProbe(1, 'sh: write error: Device or resource busy'), 'disabled-ebusy');
  assert.equal(classifyProbe(1, enoent), 'no-file');
  assert.equal(classifyProbe(1, eacces), 'permission-denied');
  assert.equal(classifyProbe(1, '/system/bin/sh: <stdin>[1]: echo: write error: Invalid argument'), 'enabled', 'mksh wording');
  assert.equal(classifyProbe(0, ''), 'enabled');
  assert.equal(classifyProbe(2, 'something odd'), 'unknown');

  const on = evaluateProbe('enabled', undefined, '');
  assert.equal(on.status, 'PASS');
  const off = evaluateProbe('disabled-eperm', scanKernelLog(fixture('kmemleak/dmesg-grep-kmemleak-default-off.txt')), eperm);
  assert.equal(off.status, 'FAIL');
  assert.match(off.detail, /EPERM/);
  assert.match(off.remedy!, /kmemleak=on/);
  assert.equal(evaluateProbe('disabled-eperm', undefined, '', 'FAIL').remedy, REMEDY.defaultOff, 'boot settings wrong: fix those');
  assert.equal(evaluateProbe('disabled-eperm', undefined, '', 'PASS').remedy, REMEDY.disabledAtRuntime, 'boot settings right: it disabled itself');
  const old = evaluateProbe('disabled-ebusy', undefined, '');
  assert.match(old.detail, /EBUSY/);
  const early = evaluateProbe('disabled-ebusy', scanKernelLog('kmemleak: Early log buffer exceeded (4001), please increase DEBUG_KMEMLEAK_EARLY_LOG_SIZE\nkmemleak: Kernel memory leak detector disabled'), '');
  assert.match(early.remedy!, /CONFIG_DEBUG_KMEMLEAK_EARLY_LOG_SIZE=40000/);
  assert.equal(evaluateProbe('timeout', undefined, '').status, 'WARN');
});

test('kernel log: enabled run, default-off boot, and the failure messages', () => {
  // The capture ended with a runtime `echo off` (its last line); before that it is a healthy boot.
  const run = fixture('kmemleak/dmesg-grep-kmemleak-enabled-run.txt');
  const cut = run.indexOf('Kernel memory leak detector disabled');
  assert.ok(cut > 0);
  const afterOff = evaluateKernelLog(scanKernelLog(run));
  assert.equal(afterOff.status, 'FAIL');
  assert.match(afterOff.remedy!, /reboot/);
  const enabled = scanKernelLog(run.slice(0, run.lastIndexOf('\n', cut)));
  assert.equal(enabled.initialized, true);
  assert.equal(enabled.memPoolAvailable, 15832);
  assert.equal(enabled.disabled, false);
  assert.ok(enabled.leaksReported >= 1);
  assert.equal(evaluateKernelLog(enabled).status, 'PASS');
  assert.match(evaluateKernelLog(enabled).detail, /15832/);

  const defOff = scanKernelLog(fixture('kmemleak/dmesg-grep-kmemleak-default-off.txt'));
  assert.equal(defOff.disabled, true);
  const v = evaluateKernelLog(defOff);
  assert.equal(v.status, 'FAIL');
  assert.match(v.remedy!, /CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF/);

  const pool = evaluateKernelLog(scanKernelLog('[ 9.1] kmemleak: Memory pool empty, consider increasing CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE'));
  assert.equal(pool.status, 'WARN');
  assert.match(pool.remedy!, /CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE=/);
  const early = evaluateKernelLog(scanKernelLog('[0.1] kmemleak: Early log buffer exceeded (4001), please increase DEBUG_KMEMLEAK_EARLY_LOG_SIZE'));
  assert.equal(early.status, 'FAIL');
  assert.match(early.remedy!, /CONFIG_DEBUG_KMEMLEAK_EARLY_LOG_SIZE=40000/);
  assert.equal(evaluateKernelLog(scanKernelLog('[1.0] kmemleak: Cannot allocate a kmemleak_object structure')).status, 'FAIL');
  assert.equal(evaluateKernelLog(undefined, 'dmesg: klogctl: Operation not permitted').status, 'WARN');
  assert.equal(evaluateKernelLog(scanKernelLog('')).status, 'PASS');
});

test('mounts, free space, getprop', () => {
  const mounts = 'proc /proc proc rw 0 0\ndebugfs /sys/kernel/debug debugfs rw,relatime 0 0\ntracefs /sys/kernel/tracing tracefs rw 0 0\n';
  assert.deepEqual(debugfsMountPoints(mounts), ['/sys/kernel/debug']);
  assert.deepEqual(debugfsMountPoints('tmpfs /dev tmpfs rw 0 0\n'), []);
  assert.equal(parseStatFs('12345 4096\n'), 12345 * 4096);
  assert.equal(parseStatFs('stat: /x: No such file'), undefined);
  assert.equal(parseDfK('Filesystem     1K-blocks    Used Available Use% Mounted on\n/dev/block/dm-5 115454952 3981524 111342356   4% /data\n'), 111342356 * 1024);
  assert.equal(parseDfK('Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/block/bootdevice/by-name/userdata\n 115454952 3981524 111342356 4% /data\n'), 111342356 * 1024);
  assert.equal(spaceStatus(10 << 20, SPACE_LIMITS.device), 'FAIL');
  assert.equal(spaceStatus(100 << 20, SPACE_LIMITS.device), 'WARN');
  assert.equal(spaceStatus(1 << 30, SPACE_LIMITS.device), 'PASS');
  const props = parseGetprop('[ro.build.version.sdk]: [34]\n[ro.debuggable]: [1]\n[ro.product.model]: [Pixel 8]\n[empty]: []\n');
  assert.deepEqual(props, { 'ro.build.version.sdk': '34', 'ro.debuggable': '1', 'ro.product.model': 'Pixel 8', empty: '' });
});

test('exit code: 3 when the device is unavailable, 1 on any FAIL, 0 otherwise (WARN/SKIP do not fail)', () => {
  const pass = check('root', 'root', 'PASS', 'x');
  const warn = check('kernel-config', 'cfg', 'WARN', 'x');
  const skip = check('kmemleak-file', 'file', 'SKIP', 'x');
  assert.equal(doctorExitCode([check('device', 'd', 'PASS', 'x'), pass, warn, skip]), ExitCode.OK);
  assert.equal(doctorExitCode([check('device', 'd', 'PASS', 'x'), check('debugfs', 'd', 'FAIL', 'x', 'fix')]), ExitCode.FAIL);
  assert.equal(doctorExitCode([check('device', 'd', 'FAIL', 'offline')]), ExitCode.DEVICE);
});

test('report lines: one line per check, remedies indented under FAIL', () => {
  const lines = formatCheckLines([
    check('device', 'device reachable', 'PASS', 'ok'),
    check('boot-params', 'kmemleak enabled at boot', 'FAIL', 'DEFAULT_OFF', REMEDY.defaultOff),
  ]);
  assert.match(lines[0], /^PASS {2}device reachable +ok$/);
  assert.match(lines[1], /^FAIL {2}kmemleak enabled at boot +DEFAULT_OFF$/);
  assert.match(lines[2], /^ {6}fix: /);
  assert.ok(lines.some((l) => l.includes('# CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set')));
  // The same remedy twice is printed once.
  const twice = formatCheckLines([
    check('boot-params', 'kmemleak enabled at boot', 'FAIL', 'a', REMEDY.defaultOff),
    check('kmemleak-enabled', 'kmemleak detector running', 'FAIL', 'b', REMEDY.defaultOff),
  ]);
  assert.equal(twice.filter((l) => l.includes('# CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set')).length, 1);
  assert.equal(twice[twice.length - 1], '      fix: as for "kmemleak enabled at boot" above');
});

test('remedies: commands quote hostile serials and follow the root method', () => {
  assert.equal(rootShell('x;reboot', 'id', 'su-0'), "adb -s 'x;reboot' shell su 0 sh -c 'id'");
  assert.equal(rootShell('$(id)', 'id', 'su-c', 5999), "adb -P 5999 -s '$(id)' shell su -c 'id'");
  assert.equal(rootShell('emulator-5554', 'id', 'adbd-root'), "adb -s emulator-5554 shell 'id'");
  assert.match(rootShell('S1', 'id', 'none'), /adb -s S1 root && adb -s S1 shell 'id'/);
  const dbg = debugfsRemedy({ serial: 'S1', method: 'su-0', sdk: 33 });
  assert.match(dbg, /su 0 sh -c 'mount -t debugfs debugfs \/sys\/kernel\/debug'/);
  assert.match(dbg, /setprop persist\.dbg\.keep_debugfs_mounted 1/);
  assert.doesNotMatch(debugfsRemedy({ serial: 'S1', method: 'adbd-root', sdk: 29 }), /keep_debugfs/);
  assert.match(debugfsRemedy({ serial: 'S1', sdk: 31, buildType: 'user' }), /user builds cannot mount debugfs/);
  assert.match(keepDebugfsRemedy('S1', 'adb-root'), /persist\.dbg\.keep_debugfs_mounted/);
  assert.match(noRootRemedy({ serial: 'S1', debuggable: '0', allowAdbRoot: true }), /userdebug or eng/);
  assert.match(noRootRemedy({ serial: 'S1', debuggable: '1', allowAdbRoot: false }), /--no-adb-root/);
});

test('doctorFailure: undefined when ready; NOT_CAPABLE naming the failed checks; DEVICE when unavailable', () => {
  const base = (checks: DoctorResult['checks']): DoctorResult => {
    const exitCode = doctorExitCode(checks);
    return {
      schemaVersion: 1, serial: 'x;reboot', adbPort: 5037, state: 'device', ready: exitCode === 0, exitCode, checks, rootMethod: 'adbd-root',
      props: {}, kernel: {}, space: { deviceDir: '/data/local/tmp', hostDir: '/tmp' }, startedAt: '', durationMs: 0,
    };
  };
  assert.equal(doctorFailure(base([check('device', 'device reachable', 'PASS', 'ok')])), undefined);
  const nc = doctorFailure(base([check('device', 'device reachable', 'PASS', 'ok'), check('boot-params', 'kmemleak enabled at boot', 'FAIL', 'DEFAULT_OFF=y', REMEDY.defaultOff)]));
  assert.equal(nc?.exitCode, ExitCode.NOT_CAPABLE);
  assert.match(nc!.message, /kmemleak enabled at boot: DEFAULT_OFF=y/);
  assert.match(nc!.hint!, /kmemleak=on/);
  assert.match(nc!.hint!, /kml doctor -s 'x;reboot'/);
  const dev = doctorFailure(base([check('device', 'device reachable', 'FAIL', 'offline', 'replug')]));
  assert.equal(dev?.exitCode, ExitCode.DEVICE);
});
