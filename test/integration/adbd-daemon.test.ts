// The adbd process itself: command line, pidfile, log file, listen errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ADBD_MAIN, spawnHostAdbd } from '../helpers/host-adbd.js';

const T = { timeout: 30_000 };

function runAdbd(args: string[]) {
  return spawnSync(process.execPath, [ADBD_MAIN, ...args], { encoding: 'utf8', timeout: 10_000 });
}

test('--help prints usage with examples and exits 0', T, () => {
  const r = runAdbd(['--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /Usage:/);
  assert.match(r.stdout, /--reboot-cmd/);
  assert.match(r.stdout, /Examples:/);
});

test('bad command lines exit 2 with a one-line reason, no stack trace', T, () => {
  for (const args of [['--bogus'], ['--port', 'abc'], ['--port', '70000'], ['--model', 'a:b'], ['--shell', '/no/such/shell'], ['--max-payload', '10']]) {
    const r = runAdbd(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^adbd: /);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'stack trace printed');
  }
});

test('a port already in use is a clear error (exit 1)', T, async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  try {
    const port = (blocker.address() as net.AddressInfo).port;
    const r = runAdbd(['--port', String(port)]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
  } finally {
    blocker.close();
  }
});

test('--pidfile and --log are written, and the pidfile is removed on SIGTERM', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-adbd-daemon-'));
  try {
    const pidfile = path.join(dir, 'adbd.pid');
    const logfile = path.join(dir, 'adbd.log');
    const d = await spawnHostAdbd({ args: ['--pidfile', pidfile, '--log', logfile] });
    assert.equal(fs.readFileSync(pidfile, 'utf8').trim(), String(d.pid));
    await d.stop();
    assert.equal(d.exitCode(), 0);
    assert.equal(fs.existsSync(pidfile), false);
    const lines = fs.readFileSync(logfile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; port?: number });
    assert.ok(lines.some((l) => l.msg === 'adbd started' && l.port === d.port));
    assert.ok(lines.some((l) => l.msg === 'stopping'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function cpuTicks(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

async function cnxnAnswered(port: number): Promise<boolean> {
  const sock = net.connect({ host: '127.0.0.1', port });
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const h = Buffer.alloc(24);
    const banner = Buffer.from('host::\0');
    h.writeUInt32LE(0x4e584e43, 0);
    h.writeUInt32LE(0x01000001, 4);
    h.writeUInt32LE(4096, 8);
    h.writeUInt32LE(banner.length, 12);
    h.writeUInt32LE((0x4e584e43 ^ 0xffffffff) >>> 0, 20);
    sock.write(Buffer.concat([h, banner]));
    const reply = await new Promise<Buffer>((resolve, reject) => {
      sock.once('data', resolve);
      sock.once('error', reject);
      setTimeout(() => reject(new Error('no CNXN reply')), 5000);
    });
    return reply.readUInt32LE(0) === 0x4e584e43;
  } finally {
    sock.destroy();
  }
}

test('with its launcher gone (stdout/stderr broken) it keeps serving, does not spin, and stops on SIGTERM', T, async () => {
  const child = spawn(process.execPath, [ADBD_MAIN, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let text = '';
      child.stdout!.on('data', (d: Buffer) => {
        text += d.toString();
        const m = /listening on [0-9.]+:(\d+)/.exec(text);
        if (m) resolve(Number(m[1]));
      });
      setTimeout(() => reject(new Error(`no listening line: ${text}`)), 10_000);
    });
    child.stdout!.destroy();
    child.stderr!.destroy(); // every log line now hits EPIPE
    assert.ok(await cnxnAnswered(port));
    assert.ok(await cnxnAnswered(port));
    const before = cpuTicks(child.pid!);
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(cpuTicks(child.pid!) - before < 30, 'daemon is spinning');
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 5000))]);
    assert.equal(code, 0);
  } finally {
    child.kill('SIGKILL');
  }
});

test('--exit-on-stdin-eof: the daemon goes away with the process that launched it', T, async () => {
  const child = spawn(process.execPath, [ADBD_MAIN, '--port', '0', '--exit-on-stdin-eof'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  try {
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => /listening/.test(d.toString()) && resolve()));
    child.stdin!.end(); // what the kernel does when the launcher dies
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 5000))]);
    assert.equal(code, 0);
  } finally {
    child.kill('SIGKILL');
  }
});
