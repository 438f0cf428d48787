// Our adbd on the host, driven by @devicefarmer/adbkit through a private real adb server:
// shell v1 (adbkit's only shell), shell v2 over transport(), and the sync API.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import adbkit from '@devicefarmer/adbkit';
import type { Client, DeviceClient } from '@devicefarmer/adbkit';
import { ADB_BIN, startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { startHostAdbd, type ConnectedAdbd } from '../helpers/host-adbd.js';

const { Adb } = adbkit;
const T = { timeout: 90_000 };

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function pushFile(device: DeviceClient, local: string, remote: string, mode?: number): Promise<void> {
  const transfer = await device.push(local, remote, mode);
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    transfer.on('error', (e: Error) => {
      failed = true;
      reject(e);
    });
    transfer.on('end', () => {
      if (!failed) resolve();
    });
  });
}

/** Pull to a file; resolves with the error adbkit reported, if any ('end' can come before 'error'). */
async function pullFile(device: DeviceClient, remote: string, local: string): Promise<Error | undefined> {
  const transfer = await device.pull(remote);
  let error: Error | undefined;
  transfer.on('error', (e: Error) => {
    error = e;
  });
  await pipeline(transfer, fs.createWriteStream(local)).catch((e: Error) => {
    error ??= e;
  });
  await new Promise((r) => setTimeout(r, 50));
  return error;
}

/** shell,v2 over adbkit's public transport(): {stdout, stderr, code}. */
async function shellV2(device: DeviceClient, command: string): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const conn = await device.transport();
  const service = `shell,v2,raw:${command}`;
  conn.write(Buffer.from(service.length.toString(16).padStart(4, '0') + service));
  const status = (await conn.parser.readAscii(4)) as string;
  assert.equal(status, 'OKAY');
  const socket = conn.socket;
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let code: number | null = null;
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32LE(1)) {
        const id = buf[0]!;
        const len = buf.readUInt32LE(1);
        const data = buf.subarray(5, 5 + len);
        if (id === 1) out.push(data);
        else if (id === 2) err.push(data);
        else if (id === 3) code = data[0]!;
        buf = buf.subarray(5 + len);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code }));
  });
}

describe('adbd through adbkit', () => {
  let server: AdbServer;
  let dev: ConnectedAdbd;
  let client: Client;
  let device: DeviceClient;
  let tmp: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-adbd-kit-'));
    server = await startAdbServer();
    dev = await startHostAdbd(server);
    client = Adb.createClient({ port: server.port, bin: ADB_BIN });
    client.on('error', () => {});
    device = client.getDevice(dev.serial);
  });

  after(async () => {
    await dev?.stop();
    await server?.kill();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('listDevices shows the serial as device', T, async () => {
    const devices = await client.listDevices();
    assert.ok(devices.some((d) => d.id === dev.serial && d.type === 'device'), JSON.stringify(devices));
  });

  test('device.shell (v1) merges stdout and stderr and has no exit status', T, async () => {
    const stream = await device.shell('echo out; echo err >&2; exit 5');
    const text = (await Adb.util.readAll(stream)).toString();
    assert.equal(text, 'out\nerr\n');
  });

  test('device.shell (v1) carries large output completely', T, async () => {
    const stream = await device.shell('i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done');
    const lines = (await Adb.util.readAll(stream)).toString().trim().split('\n');
    assert.equal(lines.length, 20000);
    assert.equal(lines[19999], 'line 19999');
  });

  test('shell v2 over transport() gives separate streams and the exit code', T, async () => {
    const r = await shellV2(device, 'echo out; echo err >&2; exit 7');
    assert.deepEqual(r, { stdout: 'out\n', stderr: 'err\n', code: 7 });
  });

  test('sync push and pull of a 20 MB file are byte-exact; stat and readdir agree', T, async () => {
    const payload = randomBytes(20 * 1024 * 1024);
    const src = path.join(tmp, 'src.bin');
    fs.writeFileSync(src, payload);
    const remoteDir = path.join(tmp, 'remote', 'deep');
    const remote = path.join(remoteDir, 'pushed.bin');
    await pushFile(device, src, remote, 0o640);
    assert.equal(sha256(fs.readFileSync(remote)), sha256(payload));

    const st = await device.stat(remote);
    assert.equal(st.size, payload.length);
    assert.ok(st.isFile());
    assert.equal(st.mode & 0o777, 0o666); // 0640 with user bits copied to group/other, as adbd does
    assert.ok(Math.abs(st.mtimeMs - Date.now()) < 120_000, `mtime ${st.mtimeMs}`);

    const entries = await device.readdir(remoteDir);
    assert.deepEqual(
      entries.map((e) => [e.name, e.size]),
      [['pushed.bin', payload.length]],
    );

    const dst = path.join(tmp, 'pulled.bin');
    const err = await pullFile(device, remote, dst);
    assert.equal(err, undefined);
    assert.equal(sha256(fs.readFileSync(dst)), sha256(payload));
  });

  test('one sync service handles several requests in a row', T, async () => {
    const sync = await device.syncService();
    try {
      const a = path.join(tmp, 'seq-a.txt');
      fs.writeFileSync(a, 'alpha');
      const s1 = await sync.stat(a);
      assert.equal(s1.size, 5);
      const s2 = await sync.stat(tmp);
      assert.ok(s2.isDirectory());
      const names = (await sync.readdir(tmp)).map((e) => e.name);
      assert.ok(names.includes('seq-a.txt'));
      const pulled = await new Promise<Buffer>((resolve, reject) => {
        const t = sync.pull(a);
        const parts: Buffer[] = [];
        t.on('data', (d: Buffer) => parts.push(d));
        t.on('error', reject);
        t.on('end', () => resolve(Buffer.concat(parts)));
      });
      assert.equal(pulled.toString(), 'alpha');
    } finally {
      sync.end();
    }
  });

  test('concurrent pulls, pushes and shells on one transport stay byte-exact', T, async () => {
    const files = [0, 1, 2, 3].map((i) => {
      const data = randomBytes(3 * 1024 * 1024 + i * 1000);
      const p = path.join(tmp, `par-${i}.bin`);
      fs.writeFileSync(p, data);
      return { p, sum: sha256(data) };
    });
    const jobs: Promise<void>[] = [];
    for (const [i, f] of files.entries()) {
      jobs.push(
        (async () => {
          const dst = path.join(tmp, `par-${i}.pulled`);
          assert.equal(await pullFile(device, f.p, dst), undefined);
          assert.equal(sha256(fs.readFileSync(dst)), f.sum);
        })(),
      );
      jobs.push(
        (async () => {
          const dst = path.join(tmp, 'par-pushed', `${i}.bin`);
          await pushFile(device, f.p, dst);
          assert.equal(sha256(fs.readFileSync(dst)), f.sum);
        })(),
      );
      jobs.push(
        (async () => {
          const r = await shellV2(device, `head -c 100000 '${f.p}' | wc -c; echo e${i} >&2; exit ${i}`);
          assert.deepEqual(r, { stdout: '100000\n', stderr: `e${i}\n`, code: i });
        })(),
      );
    }
    await Promise.all(jobs);
  });

  test('pull of a /proc file (size 0 in stat) returns its content', T, async () => {
    const dst = path.join(tmp, 'meminfo.txt');
    assert.equal(await pullFile(device, '/proc/meminfo', dst), undefined);
    assert.match(fs.readFileSync(dst, 'utf8'), /^MemTotal:/m);
  });

  test('pull of a missing file fails with the errno text', T, async () => {
    const err = await pullFile(device, path.join(tmp, 'missing.bin'), path.join(tmp, 'never.bin'));
    assert.ok(err, 'expected an error');
    assert.match(err.message, /open failed: No such file or directory/);
  });

  test('stat of a missing file is ENOENT', T, async () => {
    await assert.rejects(device.stat(path.join(tmp, 'missing.bin')), (e: Error & { code?: string }) => e.code === 'ENOENT' || /ENOENT|no such file/i.test(e.message));
  });

  test('pull of a directory fails with "Is a directory"', T, async () => {
    const err = await pullFile(device, tmp, path.join(tmp, 'dir-as-file'));
    assert.ok(err);
    assert.match(err.message, /Is a directory/);
  });

  test('a client that disconnects mid-push leaves no file and the daemon keeps serving', T, async () => {
    const remote = path.join(tmp, 'aborted', 'half.bin');
    const sync = await device.syncService();
    // An endless source: the push can only end by our disconnect.
    const { Readable } = await import('node:stream');
    let sent = 0;
    const endless = new Readable({
      read() {
        setImmediate(() => {
          sent += 65536;
          this.push(randomBytes(65536));
        });
      },
    });
    const transfer = sync.push(endless, remote);
    transfer.on('error', () => {});
    while (sent < 8 * 1024 * 1024) await new Promise((r) => setTimeout(r, 20));
    sync.end(); // drops the socket in the middle of the SEND
    endless.destroy();
    const deadline = Date.now() + 5000;
    let left: string[] = [];
    while (Date.now() < deadline) {
      left = fs.existsSync(path.dirname(remote)) ? fs.readdirSync(path.dirname(remote)) : [];
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(left, [], 'temp file must be removed and no final file created');
    const stream = await device.shell('echo still serving');
    assert.equal((await Adb.util.readAll(stream)).toString(), 'still serving\n');
  });

  test('a client that disconnects mid-pull does not disturb the daemon', T, async () => {
    const big = path.join(tmp, 'big-for-abort.bin');
    fs.writeFileSync(big, randomBytes(16 * 1024 * 1024));
    const sync = await device.syncService();
    const transfer = sync.pull(big);
    transfer.on('error', () => {});
    await new Promise<void>((resolve) => {
      let got = 0;
      transfer.on('data', (d: Buffer) => {
        got += d.length;
        if (got > 1024 * 1024) {
          transfer.removeAllListeners('data');
          resolve();
        }
      });
    });
    sync.end();
    const stream = await device.shell('echo after abort');
    assert.equal((await Adb.util.readAll(stream)).toString(), 'after abort\n');
    assert.equal(dev.exitCode(), null);
  });
});
