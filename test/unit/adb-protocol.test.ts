// Pure protocol pieces of host/adb: shell v2 framing, the v1 exit-status marker (run through real
// shells), sync request encoding, device lists and adb error classification.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ExitCode } from '../../host/errors.js';
import {
  decodeShellPackets, encodeShellPacket, encodeShellStdin, newSentinelNonce, parseV1Output, ShellPacket, SHELL_V2_MAX_STDIN_CHUNK, wrapV1Command,
} from '../../host/adb/shell-protocol.js';
import { encodeSyncRequest, assertRemotePath } from '../../host/adb/sync-protocol.js';
import { ABSENT, isOnline, parseDeviceList, stateWord } from '../../host/adb/device-list.js';
import { AdbError, isTransientAdbError, toAdbError } from '../../host/adb/errors.js';

const SHELLS = ['/bin/sh', '/usr/bin/mksh'].filter((s) => existsSync(s));

test('shell v2 packets: encode, and decode across arbitrary chunk boundaries', () => {
  const stream = Buffer.concat([
    encodeShellPacket(ShellPacket.STDOUT, Buffer.from('out\n')),
    encodeShellPacket(ShellPacket.STDERR, Buffer.from('err\n')),
    encodeShellPacket(ShellPacket.STDOUT, Buffer.alloc(0)),
    encodeShellPacket(ShellPacket.EXIT, Buffer.from([3])),
  ]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const a = decodeShellPackets(stream.subarray(0, cut));
    const b = decodeShellPackets(Buffer.concat([a.rest, stream.subarray(cut)]));
    const all = [...a.packets, ...b.packets];
    assert.equal(b.rest.length, 0);
    assert.deepEqual(all.map((p) => [p.id, p.data.toString()]), [[1, 'out\n'], [2, 'err\n'], [1, ''], [3, '\x03']]);
  }
});

test('shell v2 stdin: chunked into small packets and always closed', () => {
  const data = Buffer.alloc(SHELL_V2_MAX_STDIN_CHUNK * 2 + 10, 0x61);
  const { packets, rest } = decodeShellPackets(encodeShellStdin(data));
  assert.equal(rest.length, 0);
  assert.deepEqual(packets.map((p) => [p.id, p.data.length]), [[0, SHELL_V2_MAX_STDIN_CHUNK], [0, SHELL_V2_MAX_STDIN_CHUNK], [0, 10], [4, 0]]);
  assert.deepEqual(decodeShellPackets(encodeShellStdin(undefined)).packets.map((p) => p.id), [ShellPacket.CLOSE_STDIN]);
});

test('shell v1 exit marker: real shells give back exact stdout and the real exit code', () => {
  assert.ok(SHELLS.length >= 1);
  const cases: Array<[string, string, number]> = [
    ['echo hi', 'hi\n', 0],
    ['printf no-newline; exit 3', 'no-newline', 3],
    ['false', '', 1],
    ['echo a; exit 42 # trailing comment', 'a\n', 42],
    ["printf '%s\\n' '__KML_RC_fake__7'", '__KML_RC_fake__7\n', 0],
    ['sh -c "kill -9 \\$\\$"', '', 137],
  ];
  for (const sh of SHELLS) {
    for (const [cmd, stdout, code] of cases) {
      const nonce = newSentinelNonce();
      const out = execFileSync(sh, ['-c', wrapV1Command(cmd, nonce)]);
      const parsed = parseV1Output(out, nonce);
      assert.ok(parsed, `${sh}: marker found for ${cmd}`);
      assert.equal(parsed.stdout.toString(), stdout, `${sh}: ${cmd}`);
      assert.equal(parsed.exitCode, code, `${sh}: ${cmd}`);
    }
  }
});

test('shell v1 exit marker: output cut before the marker (dropped connection) is detected', () => {
  const nonce = newSentinelNonce();
  const r = spawnSync('/bin/sh', ['-c', wrapV1Command('echo partial', nonce)]);
  const full = r.stdout;
  assert.ok(parseV1Output(full, nonce));
  assert.equal(parseV1Output(full.subarray(0, full.length - 4), nonce), null);
  assert.equal(parseV1Output(full, 'othernonce'), null);
  // Old Android ptys translate \n to \r\n: the marker is still found.
  assert.equal(parseV1Output(Buffer.from(`x\r\n__KML_RC_${nonce}__5\r\n`), nonce)?.exitCode, 5);
});

test('sync requests: id + little-endian length + path; numbers as 4-byte args; bad paths refused', () => {
  const r = encodeSyncRequest('STAT', '/data/local/tmp');
  assert.equal(r.subarray(0, 4).toString(), 'STAT');
  assert.equal(r.readUInt32LE(4), '/data/local/tmp'.length);
  assert.equal(r.subarray(8).toString(), '/data/local/tmp');
  const done = encodeSyncRequest('DONE', 1_700_000_000);
  assert.equal(done.length, 8);
  assert.equal(done.readUInt32LE(4), 1_700_000_000);
  assert.throws(() => encodeSyncRequest('RECV', '/' + 'x'.repeat(1100)), AdbError);
  assert.throws(() => assertRemotePath('relative/path'), AdbError);
  assert.throws(() => assertRemotePath('/a\nb'), AdbError);
});

test('device list: host:devices text → entries; any state string is kept', () => {
  const text = '0123456789ABCDEF\tdevice\n127.0.0.1:5555\toffline\nR58M\tunauthorized\n'
    + 'emulator-5554\tauthorizing\n1-1.2\tno permissions (user in plugdev group; are your udev rules wrong?); see [http://developer.android.com/tools/device.html]\n';
  const list = parseDeviceList(text);
  assert.deepEqual(list.map((d) => d.serial), ['0123456789ABCDEF', '127.0.0.1:5555', 'R58M', 'emulator-5554', '1-1.2']);
  assert.deepEqual(list.map((d) => stateWord(d.state)), ['device', 'offline', 'unauthorized', 'authorizing', 'no-permissions']);
  assert.equal(isOnline('device'), true);
  assert.equal(isOnline('offline'), false);
  assert.equal(isOnline(ABSENT), false);
  assert.deepEqual(parseDeviceList(''), []);
});

test('adb errors: server FAIL texts map to kinds, exit code 3 and a hint; transient vs permanent', () => {
  const fail = (msg: string) => Object.assign(new Error(msg), { name: 'FailError' });
  const cases: Array<[unknown, string, boolean]> = [
    [fail("device 'x;reboot' not found"), 'not-found', false],
    [fail('device offline'), 'offline', true],
    [fail("device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\nTry 'adb kill-server' if that seems wrong.\nOtherwise check for a confirmation dialog on your device."), 'unauthorized', false],
    [fail('device still authorizing'), 'authorizing', true],
    [fail('insufficient permissions for device: user in plugdev group'), 'no-permissions', false],
    [fail('closed'), 'connection', true],
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5037'), { code: 'ECONNREFUSED' }), 'server-unreachable', false],
    [Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'connection', true],
    [Object.assign(new Error('Premature end of stream, needed 4 more bytes'), { name: 'PrematureEOFError' }), 'connection', true],
    [fail("Failure: 'open failed: Permission denied'"), 'remote-fail', false],
  ];
  for (const [err, kind, transient] of cases) {
    const e = toAdbError(err, { serial: 'x;reboot', op: 'shell `id`', port: 5999 });
    assert.equal(e.kind, kind, String((err as Error).message));
    assert.equal(e.exitCode, ExitCode.DEVICE);
    assert.equal(isTransientAdbError(e), transient, kind);
    if (['not-found', 'offline', 'unauthorized', 'authorizing', 'no-permissions', 'server-unreachable'].includes(kind)) {
      assert.ok(e.hint && e.hint.length > 10, `${kind} has a hint`);
      assert.doesNotMatch(e.message, /^shell/, 'device-state errors do not lead with the operation');
    } else {
      assert.match(e.message, /^shell `id`: /, 'other errors say what kml was doing');
    }
  }
  const nf = toAdbError(fail("device '127.0.0.1:5' not found"), { serial: '127.0.0.1:5', port: 5999 });
  assert.match(nf.hint ?? '', /adb -P 5999 connect 127\.0\.0\.1:5/);
  const unreachable = toAdbError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), { port: 5999 });
  assert.match(unreachable.message, /127\.0\.0\.1:5999/);
  assert.match(unreachable.hint ?? '', /adb -P 5999 start-server/);
  // Serials are shown quoted in hints, never raw.
  const nasty = toAdbError(fail("device '$(id):1' not found"), { serial: '$(id):1' });
  assert.doesNotMatch(nasty.hint ?? '', /connect \$\(id\)/);
  // An AdbError from deep inside gets the operation and serial added once.
  const inner = toAdbError(new AdbError('connection', 'connection closed mid-message'), { serial: 'S1', op: 'pull /x' });
  assert.equal(inner.message, 'pull /x: connection closed mid-message');
  assert.equal(inner.serial, 'S1');
  assert.equal(toAdbError(inner, { serial: 'S1', op: 'pull /x' }).message, inner.message);
});
