// Security: file modes (issue 5, item 5).
//   Device side: nothing kml creates on the device is group- or world-writable, whatever the
//   device's umask — our adbd (like Android's) makes a pushed file's mode from its owner bits, so a
//   0755 push lands as 0777. The adbd here runs with umask 000 (the worst case); after install,
//   start, cycles and stop every entry of the agent folder is stat'ed, and the agent's parent folder
//   is watched during install: the pushed script may only appear inside a private (0700) staging
//   folder, never as a world-writable file in a shared folder. The lab device runs the same adbd and
//   agent (same result); on a phone, adbd's own fchmod to 0777 makes the same point.
//   Host side: the store honours the user's umask (027, 077, 002): every folder kml creates is
//   0777 & ~umask and every file 0666 & ~umask — run.json, manifest, log, lock, snapshots, meta,
//   memory samples — via `sh -c 'umask U; exec node bin/kml.js …'`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { watch, type FSWatcher } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SHARED_FIXTURES } from '../helpers/paths.js';
import { startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { startHostAdbd, type ConnectedAdbd } from '../helpers/host-adbd.js';
import { assertClearOutcome, runKml, treeState } from './security-rig.js';

const REPORT = path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-rmmod.txt');

describe('file modes on the device and in the store', { timeout: 10 * 60_000 }, () => {
  let server: AdbServer;
  let adbd: ConnectedAdbd;
  let serial: string;
  let root: string;

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-sec-modes-'));
    await fs.chmod(root, 0o755);
    server = await startAdbServer();
    // the "device" runs with umask 000: whatever it creates without an explicit mode is 0666/0777
    const old = process.umask(0);
    try {
      adbd = await startHostAdbd(server, { args: ['--reboot-cmd', ''] });
    } finally {
      process.umask(old);
    }
    serial = adbd.serial;
  });

  after(async () => {
    await adbd?.stop();
    await server?.kill();
    await fs.rm(root, { recursive: true, force: true });
  });

  async function scene(name: string) {
    const s = path.join(root, name);
    const dev = path.join(s, 'dev');
    await fs.mkdir(dev, { recursive: true, mode: 0o755 });
    await fs.chmod(dev, 0o755);
    const km = path.join(s, 'kmemleak');
    await fs.copyFile(REPORT, km);
    const out = path.join(s, 'out');
    const args = (extra: string[] = []) => ['-s', serial, '--out', out, '--agent-dir', path.join(dev, 'kml'), '--test-kmemleak-path', km,
      '--test-skip-doctor', '--test-poll-ms', '200', ...extra];
    return { s, dev, agentDir: path.join(dev, 'kml'), out, args };
  }

  /** Entries under `dir` whose mode lets group or others write. */
  async function writableByOthers(dir: string): Promise<string[]> {
    const bad: string[] = [];
    for (const [rel, desc] of await treeState(dir)) {
      const [type, mode] = desc.split(' ');
      if (type === 'link') continue;
      if ((parseInt(mode, 8) & 0o022) !== 0) bad.push(`${rel} ${type} ${mode}`);
    }
    return bad;
  }

  test('device: the agent folder, script, pidfile, heartbeat, seq, log and snapshots are not group/world-writable', async () => {
    const sc = await scene('device');
    // watch the agent's parent (a shared folder) while kml installs: what appears there, and how
    const seen: { name: string; mode?: number; type?: string }[] = [];
    const watcher: FSWatcher = watch(sc.dev, (_ev, name) => {
      if (!name) return;
      const entry: { name: string; mode?: number; type?: string } = { name: String(name) };
      seen.push(entry);
      fs.lstat(path.join(sc.dev, String(name))).then((st) => {
        entry.mode = st.mode & 0o7777;
        entry.type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      }, () => undefined);
    });
    try {
      const detach = await runKml(['collect', ...sc.args(['--interval', '1', '--protocol', 'seed', '--detach'])], { env: server.env });
      assertClearOutcome(detach, 'kml collect --detach', [0]);
      // while the agent runs: pidfile, heartbeat, seq, log, published snapshots
      for (let i = 0; i < 100; i++) {
        const snaps = await fs.readdir(path.join(sc.agentDir, 'snapshots')).catch(() => []);
        if (snaps.some((n) => /^\d+$/.test(n))) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const names = await fs.readdir(sc.agentDir);
      for (const f of ['kml-agent.sh', 'agent.pid', 'heartbeat', 'seq', 'agent.log', 'snapshots']) assert.ok(names.includes(f), `${f} exists (${names.join(',')})`);
      assert.deepEqual(await writableByOthers(sc.agentDir), [], 'while running');
      assert.equal((await fs.stat(sc.agentDir)).mode & 0o777, 0o755);
      assert.equal((await fs.stat(path.join(sc.agentDir, 'kml-agent.sh'))).mode & 0o777, 0o755);
      const stop = await runKml(['stop', ...sc.args(['--wait', '30s'])], { env: server.env });
      assertClearOutcome(stop, 'kml stop', [0]);
      assert.deepEqual(await writableByOthers(sc.agentDir), [], 'after stop');
      // a second install over an existing script (a changed copy) keeps the same guarantees
      await fs.appendFile(path.join(sc.agentDir, 'kml-agent.sh'), '\n# changed\n');
      // (the kml protocol: its 5 s scan wait keeps the one-cycle agent alive until kml sees it start)
      const again = await runKml(['collect', ...sc.args(['--interval', '1', '--count', '1'])], { env: server.env });
      assertClearOutcome(again, 'kml collect --count 1', [0]);
      assert.deepEqual(await writableByOthers(sc.agentDir), [], 'after a reinstall and a cycle');
    } finally {
      watcher.close();
    }
    await new Promise((r) => setTimeout(r, 200));
    // In the shared parent folder only the agent folder and private staging folders ever appeared:
    // the pushed script (0777 on the device) never sat where another user could open it.
    const others = seen.filter((e) => e.name !== 'kml');
    for (const e of others) {
      assert.match(e.name, /^\.kml-stage-[0-9a-f]+$/, `${e.name} appeared in the agent's parent folder`);
      if (e.mode !== undefined) assert.equal(e.mode & 0o077, 0, `${e.name} is ${e.mode.toString(8)}, not private`);
    }
    assert.ok(others.length > 0, 'the install staged through the parent folder');
    assert.deepEqual((await fs.readdir(sc.dev)).filter((n) => n !== 'kml'), [], 'no staging leftovers');
  });

  test('device: an agent folder left world-writable before kml came (writable state files, planted symlinks) is locked down at install', async () => {
    const sc = await scene('preexisting');
    await fs.mkdir(path.join(sc.agentDir, 'snapshots'), { recursive: true });
    await fs.writeFile(path.join(sc.agentDir, 'agent.log'), 'planted\n');
    await fs.writeFile(path.join(sc.agentDir, 'skipped.log'), '');
    // planted symlinks: the root agent would append its ledger / log to whatever they point at
    const victim = path.join(sc.s, 'victim.txt');
    await fs.writeFile(victim, 'victim\n');
    await fs.chmod(victim, 0o644);
    await fs.symlink(victim, path.join(sc.agentDir, 'ledger'));
    await fs.symlink(victim, path.join(sc.agentDir, 'seq'));
    for (const p of [sc.agentDir, path.join(sc.agentDir, 'snapshots')]) await fs.chmod(p, 0o777);
    for (const f of ['agent.log', 'skipped.log']) await fs.chmod(path.join(sc.agentDir, f), 0o666);

    // the kml protocol's 5 s scan wait keeps the one-cycle agent alive until kml sees it start
    const r = await runKml(['collect', ...sc.args(['--interval', '1', '--count', '1'])], { env: server.env });
    assertClearOutcome(r, 'kml collect into a pre-existing 0777 folder', [0]);
    assert.deepEqual(await writableByOthers(sc.agentDir), [], 'folder, snapshots and state files are no longer group/world-writable');
    assert.equal(await fs.readFile(victim, 'utf8'), 'victim\n', 'nothing written through a planted symlink');
    assert.equal((await fs.stat(victim)).mode & 0o777, 0o644, 'no chmod through a planted symlink');
    assert.ok((await fs.lstat(path.join(sc.agentDir, 'ledger'))).isFile(), 'the planted ledger symlink was replaced by the agent\'s own file');
    // again with our script already installed (the install is skipped, the lock-down is not)
    await fs.chmod(sc.agentDir, 0o777);
    await fs.rm(path.join(sc.agentDir, 'agent.log'));
    await fs.symlink(victim, path.join(sc.agentDir, 'agent.log'));
    const again = await runKml(['collect', ...sc.args(['--interval', '1', '--count', '1'])], { env: server.env });
    assertClearOutcome(again, 'kml collect over the installed script', [0]);
    assert.deepEqual(await writableByOthers(sc.agentDir), [], 'locked down again');
    assert.equal(await fs.readFile(victim, 'utf8'), 'victim\n', 'no agent.log line written through a planted symlink');
  });

  test('device: an agent folder whose parent does not exist yet is created, not group/world-writable', async () => {
    const sc = await scene('no-parent');
    const agentDir = path.join(sc.s, 'new', 'parent', 'kml');
    const args = sc.args(['--interval', '1', '--count', '1']).map((a) => (a === sc.agentDir ? agentDir : a));
    const r = await runKml(['collect', ...args], { env: server.env });
    assertClearOutcome(r, 'kml collect into a new folder', [0]);
    assert.deepEqual(await writableByOthers(path.join(sc.s, 'new')), []);
    assert.deepEqual(await fs.readdir(path.join(sc.s, 'new', 'parent')), ['kml'], 'no staging leftovers');
  });

  for (const umask of ['027', '077', '002']) {
    test(`store: created with the user's umask ${umask}`, async () => {
      const sc = await scene(`umask-${umask}`);
      const r = await runKml(['collect', ...sc.args(['--interval', '1', '--protocol', 'seed', '--count', '2'])], { env: server.env, umask });
      assertClearOutcome(r, `umask ${umask} kml collect`, [0]);
      const st = await runKml(['status', ...sc.args(['--json'])], { env: server.env, umask });
      assertClearOutcome(st, 'kml status', [0]);
      const u = parseInt(umask, 8);
      const wantDir = 0o777 & ~u;
      const wantFile = 0o666 & ~u;
      const tree = await treeState(sc.out);
      const kinds = new Set<string>();
      const wrong: string[] = [];
      for (const [rel, desc] of tree) {
        const [type, mode] = desc.split(' ');
        const m = parseInt(mode, 8);
        kinds.add(path.basename(rel).replace(/\d+/g, 'N'));
        if (type === 'dir' && m !== wantDir) wrong.push(`${rel}: dir ${mode}, want ${wantDir.toString(8)}`);
        if (type === 'file' && m !== wantFile) wrong.push(`${rel}: file ${mode}, want ${wantFile.toString(8)}`);
      }
      const outMode = (await fs.stat(sc.out)).mode & 0o777;
      if (outMode !== wantDir) wrong.push(`--out itself: ${outMode.toString(8)}`);
      assert.deepEqual(wrong, []);
      for (const k of ['run.json', 'manifest.jsonl', 'kml.log', 'kmemleak_log_N.txt', 'meta_N.json', 'meminfo.txt', 'mem_N']) assert.ok(kinds.has(k), `${k} checked (${[...kinds].join(',')})`);
    });
  }
});
