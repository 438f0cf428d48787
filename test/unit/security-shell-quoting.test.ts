// Security: what kml quotes for a shell arrives as the same bytes, under every shell a device may
// have (mksh = Android, busybox sh = lab guest, dash = the host adbd's /bin/sh) and through every
// root method (`su 0 sh -c` of AOSP, `su -c` of Magisk, a fake su that behaves like each). Hostile
// words (quotes, $(), backticks, ;, |, &, newlines, backslashes, globs, unicode) either come out
// verbatim or are refused (NUL) — and none of them runs: canary files stay absent.
// Also: the agent launch line hands a hostile --kmemleak path to the agent as one argument, and the
// validators refuse serials and agent folders that must never reach a command line.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { asRoot, shq, shqJoin, validateSerial, type RootMethod } from '../../host/adb/index.js';
import { launchLine, statusProbeCommand, validateAgentDir } from '../../host/device/agent.js';
import { KmlError } from '../../host/errors.js';

const SHELLS = [
  { name: 'mksh', argv: ['/usr/bin/mksh'] },
  { name: 'busybox sh', argv: ['/usr/bin/busybox', 'sh'] },
  { name: 'dash', argv: ['/bin/dash'] },
].filter((s) => existsSync(s.argv[0]));

let root: string;
let bin: string;
const canary = (tag: string) => path.join(root, `canary-${tag}`);
const canaries = async () => (await fs.readdir(root)).filter((n) => n.startsWith('canary-'));

/** Words an attacker (or an unlucky file name) could bring. */
function hostileWords(): string[] {
  const c = canary('w');
  const words = [
    '', ' ', 'plain', "it's", "'", "''", '"', '\\', '\\\\\'', '$', '$HOME', '${HOME}', '$(id)', `$(touch ${c})`, `\`touch ${c}\``,
    `;touch ${c}`, `|touch ${c}`, `&touch ${c}&`, `&&touch ${c}`, `||touch ${c}`, `\ntouch ${c}\n`, `\rtouch ${c}`,
    `'; touch ${c}; '`, `"; touch ${c}; "`, `'"$(touch ${c})"'`, `\\'$(touch ${c})`, '*', '?', '[a-z]*', '~', '~root', '-n', '-e', '--help',
    '%s%n', 'a b\tc', '#comment', '!!', '{a,b}', '>x', '<x', '2>&1', '\u00e9\u6f22\u{1f600}', '\u2028', '\x01\x07\x1b[31m', 'x'.repeat(5000),
  ];
  for (let b = 1; b < 128; b++) words.push(`a${String.fromCharCode(b)}b`);
  return words;
}

/** Run `sh -c SCRIPT` with the fake su on PATH; stdout as bytes. */
function sh(shell: { argv: string[] }, script: string): { stdout: Buffer; stderr: string; status: number | null } {
  // busybox sh runs its own su applet before anything on PATH: a function comes first there
  const pre = shell.argv[0].endsWith('busybox')
    ? 'su() { if [ "$1" = -c ]; then /usr/bin/busybox sh -c "$2"; return; fi; if [ "$1" = 0 ] && [ "$2" = sh ]; then shift 2; /usr/bin/busybox sh "$@"; return; fi; return 1; }\n'
    : '';
  const r = spawnSync(shell.argv[0], [...shell.argv.slice(1), '-c', pre + script], {
    env: { PATH: `${bin}:${process.env.PATH}`, HOME: root, KML_SU_SHELL: shell.argv.join(' ') },
    cwd: root, maxBuffer: 64 * 1024 * 1024, timeout: 60_000,
  });
  return { stdout: r.stdout, stderr: r.stderr.toString(), status: r.status };
}

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-sec-quote-'));
  bin = path.join(root, 'bin');
  await fs.mkdir(bin);
  // A su that behaves like AOSP's (`su 0 sh -c CMD`: runs the rest as a command) and Magisk's
  // (`su -c CMD`: CMD through a shell). It runs the same shell as the test's outer shell.
  await fs.writeFile(path.join(bin, 'su'), [
    '#!/bin/sh',
    'if [ "$1" = -c ]; then shift; exec $KML_SU_SHELL -c "$1"; fi',
    'if [ "$1" = 0 ]; then shift; if [ "$1" = sh ]; then shift; exec $KML_SU_SHELL "$@"; fi; exec "$@"; fi',
    'echo "su: bad usage" >&2; exit 1',
    '',
  ].join('\n'), { mode: 0o755 });
});

after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

test('mksh and busybox are installed (quoting is tested under both)', () => {
  assert.ok(SHELLS.some((s) => s.name === 'mksh'), 'mksh missing');
  assert.ok(SHELLS.some((s) => s.name === 'busybox sh'), 'busybox missing');
});

test('shq refuses NUL (no shell can carry it) and always quotes', () => {
  assert.throws(() => shq('a\0b'), (e: unknown) => e instanceof KmlError && e.exitCode === 2);
  assert.equal(shq('plain'), "'plain'");
  assert.equal(shq("it's"), `'it'\\''s'`);
});

for (const shell of SHELLS) {
  for (const method of ['adbd-root', 'su-0', 'su-c'] as RootMethod[]) {
    test(`${shell.name}, ${method}: every hostile word arrives verbatim and nothing runs`, { timeout: 120_000 }, async () => {
      const words = hostileWords();
      // one shell call for all words: printf each word, NUL-terminated
      const cmd = words.map((w) => `printf '%s\\0' ${shq(w)}`).join('; ');
      const r = sh(shell, asRoot(method, cmd));
      assert.equal(r.status, 0, r.stderr);
      const got = r.stdout.toString('utf8').split('\0');
      got.pop();
      assert.equal(got.length, words.length);
      for (let i = 0; i < words.length; i++) assert.equal(got[i], words[i], `word ${i} ${JSON.stringify(words[i]).slice(0, 80)}`);
      // shqJoin keeps word boundaries
      const j = sh(shell, asRoot(method, `for a in ${shqJoin(words.slice(0, 40))}; do printf '%s\\0' "$a"; done`));
      assert.deepEqual(j.stdout.toString('utf8').split('\0').slice(0, -1), words.slice(0, 40));
      assert.deepEqual(await canaries(), []);
    });
  }

  test(`${shell.name}: the agent launch line passes a hostile --kmemleak path as one argument, through su`, { timeout: 60_000 }, async () => {
    const dir = path.join(root, `agent-${shell.name.replace(/\W/g, '')}`);
    await fs.mkdir(dir, { recursive: true });
    // a stand-in agent that records its argv, one NUL-terminated word each
    await fs.writeFile(path.join(dir, 'kml-agent.sh'), 'for a in "$@"; do printf "%s\\0" "$a"; done > "$(dirname "$0")/argv"\n');
    const km = `/sys/kernel/debug/kmemleak'"$(touch ${canary('km')})\`touch ${canary('km-bt')}\`;touch ${canary('km-semi')} \n x`;
    for (const method of ['adbd-root', 'su-0', 'su-c'] as RootMethod[]) {
      await fs.rm(path.join(dir, 'argv'), { force: true });
      const line = launchLine(dir, { interval: 5, kmemleakPath: km, protocol: 'seed' }, shell.argv.join(' ') === '/usr/bin/busybox sh' ? 'sh' : shell.argv[0]);
      const r = sh(shell, asRoot(method, line));
      assert.equal(r.status, 0, r.stderr);
      for (let i = 0; i < 100 && !existsSync(path.join(dir, 'argv')); i++) await new Promise((res) => setTimeout(res, 50));
      await new Promise((res) => setTimeout(res, 100));
      const argv = (await fs.readFile(path.join(dir, 'argv'), 'utf8')).split('\0').slice(0, -1);
      assert.deepEqual(argv, ['--dir', dir, '--interval', '5', '--protocol', 'seed', '--kmemleak', km], method);
    }
    // the status probe is built from the (validated) dir only and runs cleanly
    const p = sh(shell, statusProbeCommand(dir));
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout.toString(), /^pidfile=$/m);
    assert.deepEqual(await canaries(), []);
  });
}

test('serials: control characters, spaces and over-long ones are usage errors; shell metacharacters are not special', () => {
  for (const bad of ['', 'a b', 'a\nb', 'a\rb', 'a\tb', 'a\0b', '\x1b[2J', 'x'.repeat(256), 'é']) {
    assert.throws(() => validateSerial(bad), (e: unknown) => e instanceof KmlError && e.exitCode === 2, JSON.stringify(bad));
  }
  // allowed as an (unknown) serial: kml never pastes a serial into a shell (the source scan and
  // the CLI test in test/integration/security-injection.test.ts check that)
  for (const odd of ['x;reboot', '$(id)', '`id`', "a'b", 'a"b', '../../etc', '127.0.0.1:5555']) assert.equal(validateSerial(odd), odd);
});

test('agent folders: only absolute plain paths; anything a shell or rm could misread is refused', () => {
  for (const bad of ['', 'rel/dir', '/', '/data/local/tmp/kml/', '/data/../etc', '/data/./x', '/a//b', '/a b', "/a'b", '/a$(id)', '/a`id`', '/a;b', '/a\nb', '/a*']) {
    assert.throws(() => validateAgentDir(bad), (e: unknown) => e instanceof KmlError && e.exitCode === 2, JSON.stringify(bad));
  }
  assert.equal(validateAgentDir('/data/local/tmp/kml'), '/data/local/tmp/kml');
});
