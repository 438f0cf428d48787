// Our adbd on the host, driven by Debian's real `adb` CLI through a private adb server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { startHostAdbd, type ConnectedAdbd } from '../helpers/host-adbd.js';

const T = { timeout: 90_000 };

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('adbd through the adb CLI', () => {
  let server: AdbServer;
  let dev: ConnectedAdbd;
  let tmp: string;
  const adb = (args: string[], opts?: Parameters<AdbServer['adb']>[1]) => server.adb(['-s', dev.serial, ...args], opts);

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-adbd-cli-'));
    server = await startAdbServer();
    dev = await startHostAdbd(server, { args: ['--product', 'kml_test', '--model', 'Lab_Model', '--device', 'labdev'] });
  });

  after(async () => {
    await dev?.stop();
    await server?.kill();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('adb devices lists it as device, with the banner properties', T, async () => {
    const r = await server.adb(['devices', '-l']);
    const line = r.stdout.split('\n').find((l) => l.startsWith(dev.serial));
    assert.ok(line, `serial missing from: ${r.stdout}`);
    assert.match(line, /\sdevice\s/);
    assert.match(line, /product:kml_test model:Lab_Model device:labdev/);
  });

  test('transport features are exactly what adbd implements', T, async () => {
    const r = await adb(['features']);
    assert.equal(r.code, 0, r.stderr);
    const features = r.stdout.trim().split(/\s+/).sort();
    assert.deepEqual(features, ['fixed_push_mkdir', 'fixed_push_symlink_timestamp', 'ls_v2', 'shell_v2', 'stat_v2']);
  });

  test('adb shell (v2) keeps stdout and stderr apart and returns the exit code', T, async () => {
    const r = await adb(['shell', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal((await adb(['shell', 'true'])).code, 0);
    assert.equal((await adb(['shell', 'exit 255'])).code, 255);
  });

  test('adb shell reports death by signal as 128+signal', T, async () => {
    const r = await adb(['shell', 'kill -9 $$']);
    assert.equal(r.code, 128 + 9);
  });

  test('adb shell passes stdin through and closes it at EOF', T, async () => {
    const input = Buffer.concat([Buffer.from('line one\n'), randomBytes(200_000)]);
    const r = await adb(['shell', 'wc -c; echo done'], { input });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split(/\s+/)[0], String(input.length));
    assert.match(r.stdout, /done\n$/);
  });

  test('adb shell without a command runs a shell reading stdin', T, async () => {
    const r = await adb(['shell'], { input: 'echo from-stdin\nexit 4\n' });
    assert.match(r.stdout, /from-stdin/);
    assert.equal(r.code, 4);
  });

  test('adb exec-out is binary-safe in both directions', T, async () => {
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const file = path.join(tmp, 'exec-src.bin');
    fs.writeFileSync(file, payload);
    const r = await adb(['exec-out', `cat '${file}'`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdoutBytes.length, payload.length);
    assert.equal(sha256(r.stdoutBytes), sha256(payload));
    // every byte value, including NUL, CR and LF, comes back untranslated
    const all = await adb(['exec-out', "printf '\\000\\r\\n\\377'"]);
    assert.deepEqual([...all.stdoutBytes], [0, 13, 10, 255]);
  });

  test('adb push and pull of a 20 MB file are byte-exact, with parents created', T, async () => {
    const payload = randomBytes(20 * 1024 * 1024);
    const src = path.join(tmp, 'big-src.bin');
    fs.writeFileSync(src, payload);
    const remote = path.join(tmp, 'remote', 'a', 'b', 'big.bin');
    const push = await adb(['push', src, remote]);
    assert.equal(push.code, 0, push.stderr + push.stdout);
    assert.equal(sha256(fs.readFileSync(remote)), sha256(payload));
    // no temp files left beside it
    assert.deepEqual(fs.readdirSync(path.dirname(remote)), ['big.bin']);

    const dst = path.join(tmp, 'big-pulled.bin');
    const pull = await adb(['pull', remote, dst]);
    assert.equal(pull.code, 0, pull.stderr + pull.stdout);
    assert.equal(sha256(fs.readFileSync(dst)), sha256(payload));
  });

  test('adb push applies the mode and the mtime like adbd', T, async () => {
    const src = path.join(tmp, 'script.sh');
    fs.writeFileSync(src, '#!/bin/sh\necho hi\n');
    fs.chmodSync(src, 0o755);
    fs.utimesSync(src, 1_600_000_000, 1_600_000_000);
    const remote = path.join(tmp, 'pushed-script.sh');
    const r = await adb(['push', src, remote]);
    assert.equal(r.code, 0, r.stderr);
    const st = fs.statSync(remote);
    // adbd copies the user bits to group and other
    assert.equal(st.mode & 0o777, 0o777);
    assert.equal(Math.floor(st.mtimeMs / 1000), 1_600_000_000);
  });

  test('adb pull of a missing file fails with a clear error', T, async () => {
    const r = await adb(['pull', path.join(tmp, 'does-not-exist'), path.join(tmp, 'x')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /No such file or directory/);
  });

  test('adb push to a path under a regular file fails with the errno text', T, async () => {
    const file = path.join(tmp, 'plain-file');
    fs.writeFileSync(file, 'x');
    const src = path.join(tmp, 'small');
    fs.writeFileSync(src, 'small');
    const r = await adb(['push', src, path.join(file, 'child')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /Not a directory/);
  });

  test('adb ls and a directory pull go through LIS2', T, async () => {
    const dir = path.join(tmp, 'tree');
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'one.txt'), '1');
    fs.writeFileSync(path.join(dir, 'sub', 'two.txt'), '22');
    const ls = await adb(['ls', dir]);
    assert.equal(ls.code, 0, ls.stderr);
    const names = ls.stdout.trim().split('\n').map((l) => l.split(/\s+/).pop()).sort();
    assert.deepEqual(names, ['.', '..', 'one.txt', 'sub']);
    const dst = path.join(tmp, 'tree-pulled');
    const pull = await adb(['pull', dir, dst]);
    assert.equal(pull.code, 0, pull.stderr + pull.stdout);
    assert.equal(fs.readFileSync(path.join(dst, 'sub', 'two.txt'), 'utf8'), '22');
  });

  test('adb push and pull of a directory tree with many small files', T, async () => {
    const src = path.join(tmp, 'many');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    const sums = new Map<string, string>();
    for (let i = 0; i < 150; i++) {
      const rel = i % 3 === 0 ? path.join('sub', `f${i}`) : `f${i}`;
      const data = randomBytes(i * 53);
      fs.writeFileSync(path.join(src, rel), data);
      sums.set(rel, sha256(data));
    }
    const remote = path.join(tmp, 'many-remote');
    const push = await adb(['push', src, remote]);
    assert.equal(push.code, 0, push.stderr + push.stdout);
    const back = path.join(tmp, 'many-back');
    const pull = await adb(['pull', remote, back]);
    assert.equal(pull.code, 0, pull.stderr + pull.stdout);
    for (const [rel, sum] of sums) {
      // neither target existed, so each copy is the tree itself
      assert.equal(sha256(fs.readFileSync(path.join(remote, rel))), sum, rel);
      assert.equal(sha256(fs.readFileSync(path.join(back, rel))), sum, rel);
    }
  });

  test('adb push of a directory keeps a symlink a symlink', T, async () => {
    const src = path.join(tmp, 'with-link');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'real'), 'data');
    fs.symlinkSync('real', path.join(src, 'link'));
    const remote = path.join(tmp, 'with-link-remote');
    const r = await adb(['push', src, remote]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(fs.readlinkSync(path.join(remote, 'link')), 'real');
    assert.equal(fs.readFileSync(path.join(remote, 'link'), 'utf8'), 'data');
  });

  test('adb root answers that adbd already runs as root (or, run by a user, that it cannot)', T, async () => {
    const r = await adb(['root']);
    assert.match(r.stdout + r.stderr, process.getuid?.() === 0 ? /adbd is already running as root/ : /adbd cannot run as root in production builds/);
    // and the device is still there afterwards
    assert.equal((await adb(['get-state'])).stdout.trim(), 'device');
  });

  test('adb reboot on the host only closes the stream; the daemon keeps serving', T, async () => {
    const r = await adb(['reboot']);
    assert.equal(r.code, 0, r.stderr);
    const again = await adb(['shell', 'echo alive']);
    assert.equal(again.stdout, 'alive\n');
    assert.equal(dev.exitCode(), null);
  });
});

describe('adbd as the shell user (--shell-uid) and adb root/unroot (--root-prop)', { skip: process.getuid?.() !== 0 ? 'needs root (to change uid)' : false }, () => {
  let server: AdbServer;
  let tmp: string;

  before(async () => {
    server = await startAdbServer();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-adbd-root-'));
    fs.chmodSync(tmp, 0o755);
  });

  after(async () => {
    await server?.kill();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a user build: shells and sync run as uid 2000, adb root is refused and changes nothing', T, async () => {
    const dev = await startHostAdbd(server, { args: ['--shell-uid', '2000'] });
    try {
      const adb = (args: string[]) => server.adb(['-s', dev.serial, ...args]);
      assert.equal((await adb(['shell', 'id -u; id -g'])).stdout, '2000\n2000\n');
      const secret = path.join(tmp, 'root-only');
      fs.writeFileSync(secret, 'x', { mode: 0o600 });
      const pull = await adb(['pull', secret, path.join(tmp, 'copy')]);
      assert.notEqual(pull.code, 0);
      assert.match(pull.stderr + pull.stdout, /Permission denied/);
      const r = await adb(['root']);
      assert.match(r.stdout + r.stderr, /adbd cannot run as root in production builds/);
      assert.match((await adb(['unroot'])).stdout, /adbd not running as root/);
      assert.equal((await adb(['shell', 'echo alive'])).stdout, 'alive\n');
      assert.equal(dev.exitCode(), null);
    } finally {
      await dev.stop();
    }
  });

  test('a userdebug build: adb root writes service.adb.root=1 and exits (init restarts adbd); unroot on a root adbd writes 0 and exits', T, async () => {
    const prop = path.join(tmp, 'service.adb.root');
    fs.writeFileSync(prop, '0');
    fs.chownSync(prop, 2000, 2000);
    const shellAdbd = await startHostAdbd(server, { args: ['--shell-uid', '2000', '--root-prop', prop] });
    try {
      const r = await server.adb(['-s', shellAdbd.serial, 'root']);
      assert.match(r.stdout + r.stderr, /restarting adbd as root/);
      const end = Date.now() + 10_000;
      while (shellAdbd.exitCode() === null && Date.now() < end) await new Promise((res) => setTimeout(res, 50));
      assert.equal(shellAdbd.exitCode(), 0, 'adbd exits for init to restart it');
      assert.equal(fs.readFileSync(prop, 'utf8'), '1');
    } finally {
      await shellAdbd.stop();
    }
    const rootAdbd = await startHostAdbd(server, { args: ['--root-prop', prop] });
    try {
      assert.equal((await server.adb(['-s', rootAdbd.serial, 'shell', 'id -u'])).stdout, '0\n');
      const r = await server.adb(['-s', rootAdbd.serial, 'unroot']);
      assert.match(r.stdout + r.stderr, /restarting adbd as non root/);
      const end = Date.now() + 10_000;
      while (rootAdbd.exitCode() === null && Date.now() < end) await new Promise((res) => setTimeout(res, 50));
      assert.equal(rootAdbd.exitCode(), 0);
      assert.equal(fs.readFileSync(prop, 'utf8'), '0');
    } finally {
      await rootAdbd.stop();
    }
  });
});
