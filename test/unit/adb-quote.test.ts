// Quoting and serial validation: hostile strings are either rejected or reach a shell as one inert word.
// The round trips run through the real shells kml meets: dash (/bin/sh), mksh (Android's sh) and busybox sh.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ExitCode, KmlError } from '../../host/errors.js';
import { encodeService, parseTcpSerial, shDisplay, shq, shqJoin, validateSerial } from '../../host/adb/quote.js';
import { asRoot, type RootMethod } from '../../host/adb/root.js';

const SHELLS = ([
  ['/bin/sh', []],
  ['/usr/bin/mksh', []],
  ['/usr/bin/busybox', ['sh']],
] as Array<[string, string[]]>).filter(([bin]) => existsSync(bin));

const HOSTILE = [
  'x;reboot', '$(id)', '`id`', "it's", "'", "''", '"', 'a b', '*', '~', '!', '\\', 'a\nb', '\t', '-n', '--',
  '$HOME', '${IFS}', '&&true', '|cat', '>x', '<x', '#x', "'; touch PWNED; echo '", '\r\n', 'é ü 漢字', '',
];

function runIn(shell: [string, string[]], script: string, cwd: string): string {
  return execFileSync(shell[0], [...shell[1], '-c', script], { cwd, encoding: 'utf8' });
}

test('shq: every hostile word comes back byte-identical and runs nothing, in sh, mksh and busybox sh', () => {
  assert.ok(SHELLS.length >= 2, 'need at least two shells to test against');
  const dir = mkdtempSync(path.join(tmpdir(), 'kml-shq-'));
  try {
    for (const sh of SHELLS) {
      for (const w of HOSTILE) {
        const out = runIn(sh, `printf '%s' ${shq(w)}`, dir);
        assert.equal(out, w, `${sh[0]}: ${JSON.stringify(w)}`);
      }
      // One command line with all words: argument count and order survive.
      const out = runIn(sh, `for a in ${shqJoin(HOSTILE)}; do printf '[%s]' "$a"; done`, dir);
      assert.equal(out, HOSTILE.map((w) => `[${w}]`).join(''), sh[0]);
    }
    assert.deepEqual(readdirSync(dir), [], 'no file was created by an injected command');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shq always quotes; shDisplay quotes only what needs it; NUL is refused', () => {
  assert.equal(shq('abc'), "'abc'");
  assert.equal(shq("it's"), `'it'\\''s'`);
  assert.equal(shq(5555), "'5555'");
  assert.equal(shDisplay('127.0.0.1:5555'), '127.0.0.1:5555');
  assert.equal(shDisplay('emulator-5554'), 'emulator-5554');
  assert.equal(shDisplay('x;reboot'), "'x;reboot'");
  assert.equal(shDisplay('$(id)'), "'$(id)'");
  assert.throws(() => shq('a\0b'), (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.USAGE);
});

test('asRoot: su 0 sh -c / su -c wrap the command as one quoted word (checked with stand-in su functions)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kml-asroot-'));
  try {
    // Stand-ins with the real calling conventions: AOSP `su WHO COMMAND...`, Magisk `su -c COMMAND`.
    const fakeSu: Record<Exclude<RootMethod, 'none'>, string> = {
      'adbd-root': '',
      'adb-root': '',
      'su-0': 'su() { [ "$1" = 0 ] || exit 97; shift; "$@"; }; ',
      'su-c': 'su() { [ "$1" = -c ] || exit 98; sh -c "$2"; }; ',
    };
    const cmd = `printf '%s|' 'x;reboot' "$(echo sub)" 'it'\\''s'; echo done`;
    for (const sh of SHELLS) {
      for (const [method, prelude] of Object.entries(fakeSu)) {
        const out = runIn(sh, prelude + asRoot(method as RootMethod, cmd), dir);
        assert.equal(out, "x;reboot|sub|it's|done\n", `${sh[0]} ${method}`);
      }
    }
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => asRoot('none', 'id'), (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.NOT_CAPABLE);
  assert.equal(asRoot('su-0', 'echo scan > /sys/kernel/debug/kmemleak'), "su 0 sh -c 'echo scan > /sys/kernel/debug/kmemleak'");
});

test('validateSerial: control characters, newlines, spaces, non-ASCII and empty are usage errors', () => {
  for (const bad of ['', 'a\nb', 'a\rb', 'a\0b', 'a b', 'a\tb', '\x1b[31m', 'serial\n', 'ü', 'x'.repeat(256)]) {
    assert.throws(() => validateSerial(bad), (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.USAGE, JSON.stringify(bad));
  }
  assert.throws(() => validateSerial(undefined), KmlError);
  assert.throws(() => validateSerial(42), KmlError);
});

test('validateSerial: shell metacharacters pass (they are only an unknown serial to adb, and kml always quotes)', () => {
  for (const ok of ['0123456789ABCDEF', 'emulator-5554', '127.0.0.1:5555', '[::1]:5555', 'x;reboot', '$(id)', "a'b", 'adb-XYZ._adb-tls-connect._tcp']) {
    assert.equal(validateSerial(ok), ok);
  }
});

test('parseTcpSerial recognises host:port serials only', () => {
  assert.deepEqual(parseTcpSerial('127.0.0.1:5555'), { host: '127.0.0.1', port: 5555 });
  assert.deepEqual(parseTcpSerial('[::1]:5037'), { host: '::1', port: 5037 });
  assert.deepEqual(parseTcpSerial('lab-phone.local:40001'), { host: 'lab-phone.local', port: 40001 });
  assert.equal(parseTcpSerial('emulator-5554'), undefined);
  assert.equal(parseTcpSerial('0123456789ABCDEF'), undefined);
  assert.equal(parseTcpSerial('x;reboot:1'), undefined);
  assert.equal(parseTcpSerial('127.0.0.1:99999'), undefined);
});

test('encodeService: 4 hex digits of byte length, then the request; oversize refused', () => {
  assert.equal(encodeService('host:version').toString('latin1'), '000chost:version');
  assert.equal(encodeService('shell:é').subarray(0, 4).toString(), '0008');
  assert.throws(() => encodeService('x'.repeat(70_000)), KmlError);
});
