import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';
import { ExitCode, KmlError } from '../../host/errors.js';
import { acquireLock, currentLock, hostBootId, ownerState, procStartTime, readLock } from '../../host/store/lock.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = () => tempDir('kml-lock-');

test('a second collector is refused with CONFLICT and a clear message', async () => {
  const file = path.join(await tmp(), 'dev', '.kml-collect.lock');
  const held = await acquireLock(file, { command: 'kml collect -s X', what: 'device X in /out' });
  await assert.rejects(acquireLock(file, { command: 'kml collect -s X', what: 'device X in /out' }), (e: unknown) => {
    assert.ok(e instanceof KmlError);
    assert.equal(e.exitCode, ExitCode.CONFLICT);
    assert.match(e.message, new RegExp(`another kml collector already drives device X in /out: pid ${process.pid}`));
    assert.match(e.hint ?? '', /kml stop/);
    return true;
  });
  assert.equal(held.file, `${file}.1`);
  await held.release();
  assert.equal(await currentLock(file), undefined);
  const again = await acquireLock(file, { command: 'c', what: 'w' });
  await again.release();
});

test('a lock left by a SIGKILLed collector is taken over', async () => {
  const file = path.join(await tmp(), '.kml-collect.lock');
  // a real process takes the lock and is killed -9
  const script = `import { acquireLock } from ${JSON.stringify(path.join(REPO_ROOT, 'dist/host/store/lock.js'))};
    await acquireLock(${JSON.stringify(file)}, { command: 'victim', what: 'w' }); console.log('locked'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((res) => child.stdout!.once('data', () => res()));
  const owner = (await currentLock(file))?.owner;
  assert.equal(owner?.pid, child.pid);
  assert.equal(ownerState(owner!), 'alive');
  await assert.rejects(acquireLock(file, { command: 'c', what: 'w' }), /already drives/);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(ownerState(owner!), 'dead');
  const held = await acquireLock(file, { command: 'rerun', what: 'w' });
  assert.equal(held.tookOver?.pid, child.pid);
  assert.equal((await currentLock(file))?.owner.pid, process.pid);
  assert.deepEqual((await fs.readdir(path.dirname(file))).sort(), ['.kml-collect.lock.2'], 'stale generation removed');
  await held.release();
});

test('a live pid that is not the lock owner (pid reuse, host reboot) makes the lock stale', async () => {
  const base = path.join(await tmp(), '.kml-collect.lock');
  const file = `${base}.1`;
  const rec = { hostname: os.hostname(), startedAt: '2026-01-01T00:00:00Z', command: 'old' };
  await fs.writeFile(file, JSON.stringify({ ...rec, pid: process.pid, hostBootId: hostBootId(), procStart: '1' }));
  assert.equal(ownerState((await readLock(file))!), 'dead', 'same pid, other start time');
  await fs.writeFile(file, JSON.stringify({ ...rec, pid: process.pid, hostBootId: '00000000-0000-0000-0000-000000000000', procStart: procStartTime(process.pid) }));
  assert.equal(ownerState((await readLock(file))!), hostBootId() ? 'dead' : 'alive', 'lock from before a host reboot');
  await fs.writeFile(file, '{"pid": 12'); // torn lock file
  const held = await acquireLock(base, { command: 'c', what: 'w' });
  assert.equal(held.tookOver?.command, '(unreadable lock)');
  await held.release();
  await fs.writeFile(file, JSON.stringify({ ...rec, hostname: 'elsewhere', pid: 1, hostBootId: null, procStart: null }));
  await assert.rejects(acquireLock(base, { command: 'c', what: 'w' }), (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.CONFLICT && /another host/.test(e.message));
});

test('two processes racing for a stale lock: exactly one wins', { timeout: 30_000 }, async () => {
  const dir = await tmp();
  const file = path.join(dir, '.kml-collect.lock');
  for (let round = 0; round < 5; round++) {
    for (const n of await fs.readdir(dir)) await fs.rm(path.join(dir, n));
    await fs.writeFile(`${file}.3`, JSON.stringify({ pid: 2 ** 22 + 7, hostname: os.hostname(), hostBootId: hostBootId(), procStart: '1', startedAt: 'x', command: 'dead' }));
    // racers stay alive until all have answered: a winner that exited would leave a stale lock
    // that a late starter may rightly take over
    const script = `import { acquireLock } from ${JSON.stringify(path.join(REPO_ROOT, 'dist/host/store/lock.js'))};
      try { await acquireLock(${JSON.stringify(file)}, { command: 'racer', what: 'w' }); console.log('WON'); }
      catch (e) { console.log('LOST ' + e.exitCode); }
      process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`;
    const children = [0, 1, 2].map(() => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const runs = await Promise.all(children.map((c) => new Promise<string>((res) => {
      let out = ''; c.stdout!.on('data', (d) => { out += d; if (out.includes('\n')) res(out.trim()); });
    })));
    for (const c of children) c.stdin!.end();
    await Promise.all(children.map((c) => new Promise((r) => c.once('exit', r))));
    assert.equal(runs.filter((r) => r === 'WON').length, 1, runs.join(','));
    assert.equal(runs.filter((r) => r === 'LOST 6').length, 2, runs.join(','));
  }
});
