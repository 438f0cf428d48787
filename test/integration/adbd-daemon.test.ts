// The adbd process itself: command line, pidfile, log file, listen errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
