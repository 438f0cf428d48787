// host/adb against real components: Debian's adb server (private, free port) and our adbd running
// on the host. Shell exit codes and stderr, both protocols, deadlines, exec-out, sync, error kinds,
// waiting for and re-connecting a dropped TCP device, and the device watcher.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAdbServer, freePort, type AdbServer } from '../helpers/adb-server.js';
import { startHostAdbd, type ConnectedAdbd } from '../helpers/host-adbd.js';
import { ExitCode } from '../../host/errors.js';
import { Adb, AdbError, detectRoot, DeviceWatcher, resolveAdbEndpoint, retryTransient, shq } from '../../host/adb/index.js';

const T = { timeout: 120_000 };

describe('host/adb through a real adb server and our host adbd', () => {
  let server: AdbServer;
  let dev: ConnectedAdbd;
  let adb: Adb;
  let tmp: string;

  before(async () => {
    server = await startAdbServer();
    dev = await startHostAdbd(server);
    adb = new Adb(resolveAdbEndpoint({ port: server.port, bin: '/usr/bin/adb' }));
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-adb-it-'));
  }, T);

  after(async () => {
    await dev?.stop();
    await server?.kill();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }, T);

  test('endpoint: always loopback; port from the option, else ANDROID_ADB_SERVER_PORT; bad ports are usage errors', T, () => {
    assert.equal(adb.endpoint.host, '127.0.0.1');
    assert.equal(adb.endpoint.port, server.port);
    const saved = process.env.ANDROID_ADB_SERVER_PORT;
    try {
      process.env.ANDROID_ADB_SERVER_PORT = '6123';
      assert.equal(resolveAdbEndpoint().port, 6123);
      process.env.ANDROID_ADB_SERVER_PORT = 'x';
      assert.throws(() => resolveAdbEndpoint(), (e: unknown) => e instanceof Error && (e as { exitCode?: number }).exitCode === ExitCode.USAGE);
    } finally {
      if (saved === undefined) delete process.env.ANDROID_ADB_SERVER_PORT; else process.env.ANDROID_ADB_SERVER_PORT = saved;
    }
  });

  test('features come from host-serial:<s>:features (adb transport features)', T, async () => {
    const f = await adb.features(dev.serial, { fresh: true });
    assert.ok(f.includes('shell_v2'));
    assert.ok(f.includes('stat_v2'));
  });

  test('shell v2: real exit codes, stdout and stderr apart', T, async () => {
    const r = await adb.shell(dev.serial, 'echo out; echo err >&2; exit 3');
    assert.deepEqual([r.protocol, r.stdout, r.stderr, r.exitCode], ['v2', 'out\n', 'err\n', 3]);
    assert.equal((await adb.shell(dev.serial, 'true')).exitCode, 0);
    assert.equal((await adb.shell(dev.serial, 'exit 255')).exitCode, 255);
  });

  test('shell v1 fallback: exit code through the marker, stderr merged', T, async () => {
    const r = await adb.shell(dev.serial, 'echo out; echo err >&2; exit 3', { protocol: 'v1' });
    assert.equal(r.protocol, 'v1');
    assert.equal(r.exitCode, 3);
    assert.equal(r.stdout, 'out\nerr\n');
    assert.equal((await adb.shell(dev.serial, 'printf abc', { protocol: 'v1' })).stdout, 'abc');
  });

  test('stdin reaches the command (v2 streamed, v1 via printf); hostile text stays data', T, async () => {
    const text = "line1\n$(touch PWNED) 'q' `id`\n";
    for (const protocol of ['v2', 'v1'] as const) {
      const r = await adb.shell(dev.serial, 'cat', { stdin: text, protocol });
      assert.equal(r.stdout, text, protocol);
      assert.equal(r.exitCode, 0);
    }
    const big = randomBytes(100_000);
    const r = await adb.shell(dev.serial, 'wc -c', { stdin: big });
    assert.equal(r.stdout.trim(), '100000');
  });

  test('quoted arguments arrive intact on the device', T, async () => {
    const words = ['x;reboot', '$(id)', "it's", 'a b', '*'];
    const r = await adb.shell(dev.serial, `for a in ${words.map(shq).join(' ')}; do printf '[%s]' "$a"; done`);
    assert.equal(r.stdout, words.map((w) => `[${w}]`).join(''));
  });

  test('deadline: `sleep 30` with timeoutMs 500 fails fast with a timeout AdbError, and the next call works', T, async () => {
    for (const protocol of ['v2', 'v1'] as const) {
      const t0 = Date.now();
      await assert.rejects(adb.shell(dev.serial, 'sleep 30', { timeoutMs: 500, protocol }), (e: unknown) => {
        assert.ok(e instanceof AdbError);
        assert.equal(e.kind, 'timeout');
        assert.equal(e.exitCode, ExitCode.DEVICE);
        assert.match(e.message, /sleep 30.*500 ms/);
        return true;
      });
      const took = Date.now() - t0;
      assert.ok(took < 3_000, `${protocol}: timed out after ${took} ms`);
    }
    assert.equal((await adb.shell(dev.serial, 'echo still-here', { timeoutMs: 5_000 })).stdout, 'still-here\n');
    await assert.rejects(adb.execOut(dev.serial, 'sleep 30', { timeoutMs: 300 }), (e: unknown) => e instanceof AdbError && e.kind === 'timeout');
  });

  test('exec-out is binary-safe', T, async () => {
    const out = await adb.execOut(dev.serial, "printf 'a\\000b\\377\\r\\n'");
    assert.deepEqual([...out], [0x61, 0, 0x62, 0xff, 0x0d, 0x0a]);
  });

  test('sync: push with mode, stat (sta2), readdir, pullToFile with size and sha256', T, async () => {
    const data = randomBytes(300_000);
    const remoteDir = fs.mkdtempSync(path.join(tmp, 'dev-'));
    const remote = path.join(remoteDir, 'blob.bin');
    const pushed = await adb.push(dev.serial, data, remote, { mode: 0o750 });
    assert.equal(pushed.bytes, data.length);
    const st = await adb.stat(dev.serial, remote);
    assert.ok(st);
    assert.equal(st.size, data.length);
    assert.equal(st.isFile, true);
    // adbd copies the user bits to group and other (0750 → 0777), as the real one does.
    assert.equal(st.mode & 0o700, 0o700);
    assert.equal(await adb.stat(dev.serial, path.join(remoteDir, 'missing')), null);
    const names = (await adb.readdir(dev.serial, remoteDir)).map((e) => e.name);
    assert.deepEqual(names, ['blob.bin']);
    const local = path.join(tmp, 'pulled.bin');
    const r = await adb.pullToFile(dev.serial, remote, local);
    assert.equal(r.bytes, data.length);
    assert.equal(r.remoteSize, data.length);
    assert.equal(r.sha256, createHash('sha256').update(data).digest('hex'));
    assert.ok(fs.readFileSync(local).equals(data));
    // Push from a local file too.
    const r2 = await adb.push(dev.serial, local, path.join(remoteDir, 'copy.bin'), { mode: 0o644 });
    assert.equal(r2.bytes, data.length);
    assert.equal((await adb.stat(dev.serial, path.join(remoteDir, 'copy.bin')))!.mode & 0o111, 0, 'no exec bit for 0644');
  });

  test('pullToFile of a missing file: a clear no-such-file error and no local file left', T, async () => {
    const local = path.join(tmp, 'never.bin');
    await assert.rejects(adb.pullToFile(dev.serial, '/nonexistent/kml-missing', local), (e: unknown) => {
      assert.ok(e instanceof AdbError);
      assert.equal(e.kind, 'no-such-file');
      assert.match(e.message, /\/nonexistent\/kml-missing/);
      return true;
    });
    assert.equal(fs.existsSync(local), false);
    await assert.rejects(adb.pullBuffer(dev.serial, '/nonexistent/kml-missing'), (e: unknown) => e instanceof AdbError && /No such file/i.test(e.message));
  });

  test('unknown serial: ExitCode.DEVICE, "not found", a hint; never a crash', T, async () => {
    for (const serial of ['kml-no-such-device', 'x;reboot', '$(id)', '127.0.0.1:1']) {
      await assert.rejects(adb.shell(serial, 'true', { timeoutMs: 5_000 }), (e: unknown) => {
        assert.ok(e instanceof AdbError, String(e));
        assert.equal(e.exitCode, ExitCode.DEVICE);
        assert.equal(e.kind, 'not-found');
        assert.match(e.message, /not found/);
        assert.ok(e.hint);
        return true;
      });
    }
    assert.equal(await adb.getState('kml-no-such-device'), 'absent');
    await assert.rejects(adb.requireOnline('kml-no-such-device'), (e: unknown) => e instanceof AdbError && e.kind === 'not-found');
    await assert.rejects(adb.shell('bad\nserial', 'true'), (e: unknown) => (e as { exitCode?: number }).exitCode === ExitCode.USAGE);
  });

  test('adb server unreachable: ExitCode.DEVICE with a start-server hint', T, async () => {
    const port = await freePort();
    const dead = new Adb(resolveAdbEndpoint({ port, bin: '/bin/false' })); // cannot start a server there
    await assert.rejects(dead.listDevices({ timeoutMs: 10_000 }), (e: unknown) => {
      assert.ok(e instanceof AdbError);
      assert.equal(e.kind, 'server-unreachable');
      assert.equal(e.exitCode, ExitCode.DEVICE);
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.match(e.hint ?? '', /start-server/);
      return true;
    });
  });

  test('root: detection matches the adbd uid; root: answered "already running as root" is handled', T, async () => {
    const uid = (await adb.shell(dev.serial, 'id -u')).stdout.trim();
    const info = await detectRoot(adb, dev.serial, { allowAdbRoot: true, probeTimeoutMs: 5_000 });
    if (uid === '0') {
      assert.equal(info.method, 'adbd-root');
    } else {
      assert.notEqual(info.method, 'adbd-root');
      assert.ok(info.attempts.length >= 2);
    }
    const answer = await adb.rootService(dev.serial);
    assert.match(answer, /root/);
  });

  test('retryTransient: retries transient errors, gives up at once on permanent ones', T, async () => {
    let n = 0;
    const v = await retryTransient(async () => {
      n++;
      if (n < 3) throw new AdbError('connection', 'dropped');
      return 'ok';
    }, { minTimeoutMs: 10, maxTimeoutMs: 20 });
    assert.equal(v, 'ok');
    assert.equal(n, 3);
    let m = 0;
    await assert.rejects(retryTransient(async () => {
      m++;
      return adb.shell('kml-no-such-device', 'true');
    }, { minTimeoutMs: 10 }), (e: unknown) => e instanceof AdbError && e.kind === 'not-found');
    assert.equal(m, 1);
  });

  test('waitForDevice: an unknown serial times out with not-found; a dropped TCP device is re-connected', T, async () => {
    const t0 = Date.now();
    await assert.rejects(adb.waitForDevice('kml-no-such-device', { timeoutMs: 1_000, pollMs: 100 }), (e: unknown) => {
      assert.ok(e instanceof AdbError);
      assert.equal(e.kind, 'not-found');
      assert.match(e.message, /waited 1 s/);
      return true;
    });
    assert.ok(Date.now() - t0 < 5_000);

    const d = await server.adb(['disconnect', dev.serial]);
    assert.equal(d.code, 0);
    assert.equal(await adb.getState(dev.serial), 'absent');
    const states: string[] = [];
    await adb.waitForDevice(dev.serial, { timeoutMs: 20_000, pollMs: 100, onState: (s) => states.push(s) });
    assert.equal(await adb.getState(dev.serial), 'device');
    assert.equal(states[0], 'absent');
    assert.equal((await adb.shell(dev.serial, 'echo back')).stdout, 'back\n');
  });

  test('DeviceWatcher: sees the device, its removal and its return (tracker + polling)', T, async () => {
    const w = new DeviceWatcher(adb, { pollMs: 1_000 });
    const seen: Array<[string, string]> = [];
    w.on('state', (serial, state) => { if (serial === dev.serial) seen.push([state, serial]); });
    try {
      await w.start();
      assert.equal(w.state(dev.serial), 'device');
      const waitFor = (state: string) => new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${state} event; saw ${JSON.stringify(seen)}`)), 15_000);
        const on = (serial: string, s: string) => {
          if (serial === dev.serial && s === state) { clearTimeout(t); w.off('state', on); resolve(); }
        };
        w.on('state', on);
      });
      const gone = waitFor('absent');
      await server.adb(['disconnect', dev.serial]);
      await gone;
      const back = waitFor('device');
      await adb.connect('127.0.0.1', dev.port);
      await back;
      assert.equal(w.state(dev.serial), 'device');
    } finally {
      w.stop();
    }
    // Make sure the device is attached for whatever runs next.
    await adb.waitForDevice(dev.serial, { timeoutMs: 15_000 });
  });
});
