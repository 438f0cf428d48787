// The agent's host control (host/device/agent.ts) against our adbd running on the host, through a
// private real adb server: install + verify, the launch line returns at once (shell v1 and v2) and
// the agent outlives the adb call (and adbd itself), status, list/read/delete snapshots, skipped
// cycles, stop. The adbd runs commands with mksh, Android's shell. kmemleak here is a plain file
// (the host has none we may touch); the lab test drives the real one.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Adb, ensureRoot, resolveAdbEndpoint, shq } from '../../host/adb/index.js';
import { AgentControl, launchLine } from '../../host/device/agent.js';
import { KmlError } from '../../host/errors.js';
import { startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { startHostAdbd, type ConnectedAdbd } from '../helpers/host-adbd.js';
import { SHARED_FIXTURES } from '../helpers/paths.js';
import { toyboxBin } from '../helpers/toybox.js';

const T = { timeout: 120_000 };
const MKSH = '/usr/bin/mksh';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The process exists and is not a zombie (an exited agent waits for init to reap it). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The device's userland: the host's (GNU), or only toybox's applets as on a phone (helpers/toybox.ts). */
const USERLANDS: Array<{ name: string; path: string | undefined }> = [{ name: 'host userland', path: undefined }];
const toybox = toyboxBin();
if (toybox) USERLANDS.push({ name: 'toybox userland (Android)', path: toybox });

test('toybox is installed (the device side is tested with a phone\'s userland too)', () => {
  assert.ok(toybox, 'toybox missing: apt-get install toybox (scripts/setup does)');
});

for (const userland of USERLANDS) describe(`agent control against the host adbd, ${userland.name}`, { timeout: 300_000 }, () => {
  let server: AdbServer;
  let dev: ConnectedAdbd;
  let adb: Adb;
  let work: string;
  let agent: AgentControl;
  let km: string;
  const started = new Set<number>();

  before(async () => {
    server = await startAdbServer();
    dev = await startHostAdbd(server, { args: ['--shell', MKSH], path: userland.path });
    adb = new Adb(resolveAdbEndpoint({ port: server.port }));
    work = await mkdtemp(path.join(os.tmpdir(), 'kml-agent-host-'));
    km = path.join(work, 'kmemleak');
    await copyFile(path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-rmmod.txt'), km);
    const root = await ensureRoot(adb, dev.serial, { allowAdbRoot: false });
    agent = new AgentControl(adb, dev.serial, { root, dir: path.join(work, 'kml'), agentShell: MKSH });
  });

  after(async () => {
    // Agents we started are ours to end, whatever happened in the tests.
    for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await dev?.stop();
    await server?.kill();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('install pushes the script 0755 and verifies it; a second install is a no-op; a changed copy is replaced', T, async () => {
    const first = await agent.install();
    assert.equal(first.changed, true);
    const local = await readFile(new URL('../../../agent/kml-agent.sh', import.meta.url));
    assert.equal(first.sha256, sha256(local));
    assert.deepEqual(await readFile(agent.scriptPath), local);
    const st = await adb.stat(dev.serial, agent.scriptPath);
    assert.equal(st!.mode & 0o777, 0o755);
    assert.equal((await agent.install()).changed, false);
    await adb.shellOk(dev.serial, `echo '# tampered' >> ${shq(agent.scriptPath)}`);
    assert.equal((await agent.install()).changed, true);
    assert.deepEqual(await readFile(agent.scriptPath), local);
    assert.deepEqual((await adb.readdir(dev.serial, work)).map((e) => e.name).filter((n) => n.startsWith('.kml-agent-')), [], 'no staging file left');
  });

  test('the launch line returns at once over shell v1 and v2, and the agent outlives the call', T, async (t) => {
    await agent.install();
    for (const protocol of ['v1', 'v2'] as const) {
      const dir = path.join(work, `launch-${protocol}`);
      const ctl = new AgentControl(adb, dev.serial, { root: 'adbd-root', dir, agentShell: MKSH });
      await ctl.install();
      const t0 = Date.now();
      const r = await adb.shell(dev.serial, launchLine(dir, { interval: 600, protocol: 'seed', kmemleakPath: km }, MKSH), { protocol, timeoutMs: 10_000 });
      const ms = Date.now() - t0;
      assert.equal(r.exitCode, 0, r.stdout + r.stderr);
      assert.ok(ms < 2_000, `launch over ${protocol} returned after ${ms} ms`);
      t.diagnostic(`launch over shell ${protocol} returned in ${ms} ms`);
      let st = await ctl.status();
      for (let i = 0; i < 50 && !st.running; i++) {
        await sleep(100);
        st = await ctl.status();
      }
      assert.ok(st.running, `agent running after the ${protocol} launch`);
      started.add(st.pid!);
      await sleep(1_500); // the adb shell session is long gone: the agent must still be there
      const later = await ctl.status();
      assert.equal(later.running, true);
      assert.equal(later.pid, st.pid);
      // The cmdline text needs tr, which Debian's toybox lacks (a phone's has it): running is decided without it.
      if (userland.path) assert.equal(later.cmdline, undefined);
      else assert.match(later.cmdline!, /kml-agent\.sh --dir /);
      assert.equal((await ctl.stop()).outcome, 'term');
      assert.equal(alive(st.pid!), false);
    }
  });

  test('start, status, snapshots listed/read/verified/deleted, junk ignored, stop', T, async () => {
    await agent.install();
    const s = await agent.start({ interval: 1, protocol: 'seed', kmemleakPath: km });
    started.add(s.pid);
    assert.equal(s.launched, true);
    assert.ok(s.launchMs < 2_000, `launch took ${s.launchMs} ms`);
    const again = await agent.start({ interval: 1, protocol: 'seed', kmemleakPath: km });
    assert.deepEqual([again.launched, again.pid], [false, s.pid], 'a running agent is left alone');

    const st = await agent.status();
    assert.equal(st.running, true);
    assert.equal(st.heartbeat?.pid, s.pid);
    assert.equal(st.heartbeat?.protocol, 'seed');
    assert.equal(st.heartbeat?.interval, 1);
    assert.ok(st.heartbeatAgeS! <= 5);

    // Junk a device could hold in snapshots/: never listed.
    const snaps = `${agent.dir}/snapshots`;
    await adb.shellOk(dev.serial, `mkdir -p ${shq(`${snaps}/abc`)} ${shq(`${snaps}/007`)} ${shq(`${snaps}/.partial-999`)} ${shq(`${snaps}/1e3`)} && touch ${shq(`${snaps}/12345`)}`);
    let list: number[] = [];
    for (let i = 0; i < 100 && list.length < 3; i++) {
      await sleep(200);
      list = await agent.listComplete();
    }
    assert.deepEqual(list.slice(0, 3), [1, 2, 3]);
    assert.ok(list.every((n) => Number.isInteger(n) && n !== 12345 && n !== 7), `listed ${list.join(',')}`);

    const meta = await agent.readMeta(1);
    assert.equal(meta.seq, 1);
    assert.equal(meta.bootId, (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim());
    assert.ok(meta.files.length >= 2);
    for (const f of meta.files) {
      const local = path.join(work, `pulled-${f.name}`);
      const pulled = await adb.pullToFile(dev.serial, `${snaps}/1/${f.name}`, local);
      assert.equal(pulled.bytes, f.bytes, f.name);
      assert.equal(pulled.sha256, f.sha256, f.name);
    }

    await agent.deleteSnapshot(1);
    await agent.deleteSnapshot(1); // idempotent
    assert.ok(!(await agent.listComplete()).includes(1));
    assert.ok(existsSync(`${snaps}/abc`), 'deleteSnapshot touched only its own directory');
    for (const bad of [0, -1, 1.5, Number.NaN, 1e12]) {
      await assert.rejects(agent.deleteSnapshot(bad), KmlError, `deleteSnapshot(${bad}) refused`);
    }
    await assert.rejects(agent.readMeta(999_999), KmlError);

    const stop = await agent.stop();
    assert.equal(stop.outcome, 'term');
    assert.equal(alive(s.pid), false);
    const after = await agent.status();
    assert.equal(after.running, false);
    assert.equal(after.heartbeat?.state, 'stopped');
    assert.equal((await agent.stop()).outcome, 'not-running');
  });

  test('low space: skipped cycles are read back from skipped.log', T, async () => {
    const dir = path.join(work, 'skip');
    const ctl = new AgentControl(adb, dev.serial, { root: 'adbd-root', dir, agentShell: MKSH });
    await ctl.install();
    assert.deepEqual(await ctl.readSkipped(), []);
    const s = await ctl.start({ interval: 1, protocol: 'seed', kmemleakPath: km, minFreeKb: 999_999_999, count: 2 });
    started.add(s.pid);
    let skipped = await ctl.readSkipped();
    for (let i = 0; i < 50 && skipped.length < 2; i++) {
      await sleep(200);
      skipped = await ctl.readSkipped();
    }
    assert.deepEqual(skipped.map((e) => [e.seq, e.reason]), [[1, 'low_space'], [2, 'low_space']]);
    assert.deepEqual(await ctl.listComplete(), []);
    for (let i = 0; i < 50 && (await ctl.status()).running; i++) await sleep(100);
    const st = await ctl.status();
    assert.equal(st.running, false, 'a --count run ends by itself');
    assert.equal(st.heartbeat?.skippedTotal, 2);
  });

  test('stop escalates to SIGKILL mid-cycle; the next start removes the unpublished partial and numbers on', T, async () => {
    const dir = path.join(work, 'kill');
    const ctl = new AgentControl(adb, dev.serial, { root: 'adbd-root', dir, agentShell: MKSH });
    await ctl.install();
    const cmdFile = path.join(work, 'kill-kmemleak');
    await copyFile(km, cmdFile);
    const s = await ctl.start({ interval: 600, protocol: 'double', scanWait: 60, kmemleakPath: cmdFile });
    started.add(s.pid);
    for (let i = 0; i < 50 && !existsSync(path.join(dir, 'snapshots', '.partial-1')); i++) await sleep(100);
    assert.ok(existsSync(path.join(dir, 'snapshots', '.partial-1')), 'cycle 1 is in its 60 s scan wait');
    const t0 = Date.now();
    const stop = await ctl.stop({ termTimeoutMs: 1_500 });
    assert.equal(stop.outcome, 'kill', 'SIGTERM waits for the cycle; the deadline forces SIGKILL');
    assert.ok(Date.now() - t0 < 15_000);
    assert.equal(alive(s.pid), false);
    const orphans = spawnSync('pgrep', ['-g', String(s.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter((p) => p && alive(Number(p))).join(' ');
    assert.equal(orphans, '', 'the KILL took the process group of the agent (its scan-wait sleep) with it');
    assert.deepEqual(await ctl.listComplete(), [], 'nothing half-done was published');
    const again = await ctl.start({ interval: 600, protocol: 'seed', kmemleakPath: cmdFile });
    started.add(again.pid);
    assert.equal(again.launched, true);
    for (let i = 0; i < 50 && (await ctl.listComplete()).length === 0; i++) await sleep(100);
    assert.deepEqual(await ctl.listComplete(), [2], 'seq 1 was used by the killed cycle; never reused');
    assert.ok(!existsSync(path.join(dir, 'snapshots', '.partial-1')), 'stale partial removed at start');
    assert.equal((await ctl.stop()).outcome, 'term');
  });

  test('the agent survives its adbd going away (it left the adb session)', T, async () => {
    const dir = path.join(work, 'survive');
    const ctl = new AgentControl(adb, dev.serial, { root: 'adbd-root', dir, agentShell: MKSH });
    await ctl.install();
    const s = await ctl.start({ interval: 600, protocol: 'seed', kmemleakPath: km });
    started.add(s.pid);
    await dev.stop();
    await sleep(500);
    assert.equal(alive(s.pid), true, 'agent alive after adbd exited');
    process.kill(s.pid, 'SIGTERM');
    for (let i = 0; i < 50 && alive(s.pid); i++) await sleep(100);
    assert.equal(alive(s.pid), false);
    assert.match(await readFile(path.join(dir, 'heartbeat'), 'utf8'), /^state=stopped$/m);
  });
});
