// Parsers of the agent's files (host/device/agent-files.ts) and the pure parts of the host control
// (argument building, launch line, snapshot names). The texts are what the agent wrote on this
// machine (captured from agent/kml-agent.sh runs), plus hostile variants a device could serve.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  isSnapshotFileName, isSnapshotNumber, MetaParseError, parseHeartbeat, parseMeta, parseSkipped, parseStatusProbe,
  probeSaysRunning, snapshotNumber, STATUS_HEARTBEAT_MARK,
} from '../../host/device/agent-files.js';
import { agentArgs, launchLine, launchOutcome, statusProbeCommand, validateAgentDir } from '../../host/device/agent.js';
import type { AgentStatus } from '../../host/device/agent.js';
import { KmlError } from '../../host/errors.js';

const META = `seq=2
boot_id=4bdbc2a5-90c8-4682-91e7-3f1503e6a5ee
uptime_s=571.94
wall_time=1795738906
protocol=double
scan_wait_s=5
scan1_ms=7
scan2_ms=8
read_ms=8
clock=date_ns
clock_res_ms=1
kmemleak_bytes=14529
leak_count=22
kmemleak_state=ok
errors=
unreadable=
agent_version=1
agent_pid=2664
hash=sha256
size.kmemleak.txt=14529
size.meminfo.txt=1503
size.kmsg.txt=0
sha256.kmemleak.txt=f1187ea38a5fce5f7e452193c2b2160fd27202ecd3dde39558ed0471341ffd8f
sha256.meminfo.txt=4411a169a0cf83dc8eff7f1cb34a888080dc81eac0042a47c7702ab1f94b3cb4
sha256.kmsg.txt=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
`;

const HEARTBEAT = `pid=4461
boot_id=4bdbc2a5-90c8-4682-91e7-3f1503e6a5ee
seq=1
state=stopped
last_cycle_wall=1795738917
next_cycle_wall=
free_kb=80775484
skipped_total=1
last_error=scan_off:EPERM,scan1:EPERM
kmemleak=disabled
protocol=double
interval=600
scan_wait_s=5
min_free_kb=999999999
cycles=1
started_wall=1795738917
updated_wall=1795738917
agent_version=1
`;

test('meta.txt: fields, files with size and sha256, errors as words', () => {
  const m = parseMeta(META);
  assert.equal(m.seq, 2);
  assert.equal(m.bootId, '4bdbc2a5-90c8-4682-91e7-3f1503e6a5ee');
  assert.equal(m.uptimeS, 571.94);
  assert.equal(m.wallTime, 1795738906);
  assert.deepEqual([m.protocol, m.scan1Ms, m.scan2Ms, m.readMs, m.clockResMs], ['double', 7, 8, 8, 1]);
  assert.deepEqual([m.kmemleakBytes, m.leakCount, m.kmemleakState, m.hash], [14529, 22, 'ok', 'sha256']);
  assert.deepEqual(m.errors, []);
  assert.deepEqual(m.files.map((f) => [f.name, f.bytes]), [['kmemleak.txt', 14529], ['meminfo.txt', 1503], ['kmsg.txt', 0]]);
  assert.equal(m.files[2].sha256, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  const errs = parseMeta(META.replace('errors=\n', 'errors=scan_off:EPERM,scan1:EPERM\n').replace('scan2_ms=8', 'scan2_ms='));
  assert.deepEqual(errs.errors, ['scan_off:EPERM', 'scan1:EPERM']);
  assert.equal(errs.scan2Ms, undefined, 'an empty duration means "not applicable"');
});

test('meta.txt from a hostile device: bad names ignored, missing seq/boot_id or sizes rejected', () => {
  const evil = parseMeta(`${META}size.../../etc/passwd=10\nsha256.../../etc/passwd=${'0'.repeat(64)}\nsize.a/b.txt=1\nsize.meta.txt=3\nsha256.kmemleak.txt=NOTHEX\n`);
  assert.deepEqual(evil.files.map((f) => f.name), ['kmemleak.txt', 'meminfo.txt', 'kmsg.txt']);
  assert.deepEqual(evil.rejectedNames.sort(), ['../../etc/passwd', 'a/b.txt', 'meta.txt'].sort());
  assert.equal(evil.files[0].sha256, undefined, 'a malformed hash is dropped, so verification cannot pass on it');
  assert.throws(() => parseMeta(META.replace('seq=2', 'seq=02')), MetaParseError);
  assert.throws(() => parseMeta(META.replace('seq=2', 'seq=-1')), MetaParseError);
  assert.throws(() => parseMeta(META.replace(/^boot_id=.*$/m, 'boot_id=x y')), MetaParseError);
  assert.throws(() => parseMeta(META.replace('size.meminfo.txt=1503', 'size.meminfo.txt=lots')), /meminfo\.txt without a valid size/);
  assert.throws(() => parseMeta(''), MetaParseError);
});

test('heartbeat: numbers, state, error words, kmemleak state', () => {
  const h = parseHeartbeat(HEARTBEAT);
  assert.deepEqual([h.pid, h.seq, h.state, h.skippedTotal, h.freeKb, h.cycles], [4461, 1, 'stopped', 1, 80775484, 1]);
  assert.deepEqual(h.lastError, ['scan_off:EPERM', 'scan1:EPERM']);
  assert.equal(h.kmemleak, 'disabled');
  assert.equal(h.nextCycleWall, undefined);
  assert.equal(h.minFreeKb, 999999999);
  assert.equal(parseHeartbeat('garbage\n=x\npid=abc\n').pid, undefined);
});

test('skipped.log: the contract line format; malformed lines ignored', () => {
  const text = 'seq=1 boot_id=4bdbc2a5-90c8-4682-91e7-3f1503e6a5ee wall_time=1795738917 reason=low_space\n'
    + 'seq=2 boot_id=b wall_time=1795738918 reason=no_space\n'
    + 'seq=x boot_id=b wall_time=1 reason=low_space\n'
    + 'seq=3 boot_id=b wall_time=1 reason=$(reboot)\n'
    + 'half a line\n';
  assert.deepEqual(parseSkipped(text), [
    { seq: 1, bootId: '4bdbc2a5-90c8-4682-91e7-3f1503e6a5ee', wallTime: 1795738917, reason: 'low_space' },
    { seq: 2, bootId: 'b', wallTime: 1795738918, reason: 'no_space' },
  ]);
});

test('snapshot names: digits only, no padding, no sign; file names plain', () => {
  assert.equal(snapshotNumber('1'), 1);
  assert.equal(snapshotNumber('999999999'), 999999999);
  for (const bad of ['0', '007', '-1', '1e3', '', '.partial-3', '1 ', '12a', '1234567890', '../1']) {
    assert.equal(snapshotNumber(bad), undefined, bad);
  }
  assert.ok(isSnapshotNumber(5) && !isSnapshotNumber(0) && !isSnapshotNumber(1.5) && !isSnapshotNumber(Number.NaN) && !isSnapshotNumber(1e10));
  assert.ok(isSnapshotFileName('kmemleak.txt') && isSnapshotFileName('kmsg.txt'));
  for (const bad of ['meta.txt', '../x.txt', '.hidden.txt', 'a/b.txt', 'x.sh', 'kmemleak.txt\n']) assert.ok(!isSnapshotFileName(bad), bad);
});

test('status probe output: RUN/TERM, cmdline check, heartbeat after the mark', () => {
  const out = `pidfile=4461\nRUN\ncmdline=/usr/bin/mksh /data/local/tmp/kml/kml-agent.sh --dir /data/local/tmp/kml \nagent=1\nnow=1795738920\n${STATUS_HEARTBEAT_MARK}\n${HEARTBEAT}`;
  const p = parseStatusProbe(out);
  assert.equal(p.pidfilePid, 4461);
  assert.equal(p.alive, true);
  assert.equal(probeSaysRunning(p), true);
  assert.equal(p.heartbeat?.pid, 4461);
  // pid reused by another program, or dead, or no pidfile: not running.
  assert.equal(probeSaysRunning(parseStatusProbe(out.replace(/cmdline=.*\nagent=1/, 'cmdline=/system/bin/surfaceflinger'))), false);
  assert.equal(probeSaysRunning(parseStatusProbe(out.replace('RUN', 'TERM'))), false);
  assert.equal(probeSaysRunning(parseStatusProbe(`pidfile=\nTERM\n${STATUS_HEARTBEAT_MARK}\n`)), false);
  assert.equal(parseStatusProbe('pidfile=\nTERM\n').heartbeat, undefined);
  // A device without `tr` prints no cmdline text: grep's agent=1 decides.
  const noTr = `pidfile=4461\nRUN\ncmdline=\nagent=1\nnow=1795738920\n${STATUS_HEARTBEAT_MARK}\n${HEARTBEAT}`;
  assert.equal(probeSaysRunning(parseStatusProbe(noTr)), true);
  assert.equal(probeSaysRunning(parseStatusProbe(noTr.replace('agent=1\n', ''))), false);
  assert.equal(probeSaysRunning(parseStatusProbe(noTr.replace('RUN', 'TERM'))), false);
});

test('after a launch: running, finished before the first poll (--count 1), or not yet', () => {
  const st = (text: string | undefined, running: boolean, pid?: number): AgentStatus =>
    ({ running, pid, heartbeat: text === undefined ? undefined : parseHeartbeat(text) });
  const runningHb = HEARTBEAT.replace('state=stopped', 'state=running');
  const previous = HEARTBEAT; // an earlier run that stopped cleanly (pid 4461)
  // new agent up and its heartbeat names it
  assert.equal(launchOutcome(st(previous, false), st(runningHb.replace('pid=4461', 'pid=5000'), true, 5000)), 'running');
  // pidfile written, heartbeat still the old one: not yet
  assert.equal(launchOutcome(st(previous, false), st(previous, true, 5000)), 'pending');
  // the old stopped heartbeat unchanged and nothing runs: not yet (the new agent has not written)
  assert.equal(launchOutcome(st(previous, false), st(previous, false)), 'pending');
  // --count 1 ran and exited between two polls: a new stopped heartbeat
  const done = HEARTBEAT.replace('pid=4461', 'pid=5000').replace('updated_wall=1795738917', 'updated_wall=1795739000');
  assert.equal(launchOutcome(st(previous, false), st(done, false)), 'finished');
  assert.equal(launchOutcome(st(undefined, false), st(done, false)), 'finished');
  // no heartbeat at all yet
  assert.equal(launchOutcome(st(undefined, false), st(undefined, false)), 'pending');
});

test('agent arguments and the launch line: everything quoted, one backgrounded command after `;`', () => {
  assert.deepEqual(agentArgs('/data/local/tmp/kml', { interval: 600 }), ['--dir', '/data/local/tmp/kml', '--interval', '600']);
  assert.deepEqual(agentArgs('/d', { interval: 10, scanWait: 6, protocol: 'seed', minFreeKb: 1, kmemleakPath: '/k', count: 3 }),
    ['--dir', '/d', '--interval', '10', '--scan-wait', '6', '--protocol', 'seed', '--min-free-kb', '1', '--kmemleak', '/k', '--count', '3']);
  const line = launchLine('/data/local/tmp/kml', { interval: 600, kmemleakPath: "/x/it's here" });
  assert.match(line, /^cd '\/data\/local\/tmp\/kml' \|\| exit 1; /);
  assert.doesNotMatch(line, /&&/, 'no && list in front of the background job (it would keep the adb call open)');
  assert.match(line, /<\/dev\/null >>'\/data\/local\/tmp\/kml\/agent\.log' 2>&1 &/);
  assert.match(line, /'\/x\/it'\\''s here'/);
  // It parses as sh (syntax only).
  for (const cmd of [line, statusProbeCommand('/data/local/tmp/kml')]) {
    const r = spawnSync('/usr/bin/mksh', ['-n', '-c', cmd]);
    assert.equal(r.status, 0, `${cmd}\n${r.stderr}`);
  }
});

test('agent directories are validated before they reach a shell', () => {
  assert.equal(validateAgentDir('/data/local/tmp/kml'), '/data/local/tmp/kml');
  for (const bad of ['data/local/tmp', '/', '/data/../etc', '/data//x', '/data/kml/', '/data/$(reboot)', "/data/a'b", '/data/a b', '/data/./x']) {
    assert.throws(() => validateAgentDir(bad), KmlError, bad);
  }
});
