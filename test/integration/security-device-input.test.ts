// Security: nothing a device sends can make kml write outside its store (issue 5, item 5).
// A hostile "device" is our adbd on the host whose agent folder (--agent-dir) we fill with
// hostile content: snapshot names that are not plain numbers (.., dots, newlines, 255 chars,
// leading zeros, 10 digits), a snapshot that is a symlink to an /etc-like folder, files that are
// symlinks to /proc/self/environ, to a huge sparse file and to /dev/zero, a FIFO, a folder where a
// file should be, boot_ids with ../ and /, meta.txt values with shell metacharacters and paths,
// an oversized meta.txt, a hostile heartbeat/pidfile/skipped.log. The real CLI (`kml pull`,
// `kml status`, `kml collect --count 1`) runs against it through Debian's adb server. Asserted:
// nothing outside <out> changes (victim folders, cwd, HOME, canary files of any shell injection),
// the store holds only paths of the documented layout, the good snapshots are stored, the bad ones
// are left on the device and named, and kml ends with a documented exit code, never a stack trace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SHARED_FIXTURES } from '../helpers/paths.js';
import { startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { startHostAdbd, type ConnectedAdbd } from '../helpers/host-adbd.js';
import { readManifest } from '../../host/store/manifest.js';
import { listRuns } from '../../host/store/run.js';
import { serialSafe } from '../../host/store/layout.js';
import { assertClearOutcome, runKml, storeViolations, treeDiff, treeState, type CliResult } from './security-rig.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const BOOT = '3f2b8c1e-9d4a-4c71-8e0b-5a6f7c8d9e01';
const REPORT = path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-rmmod.txt');
const MEMINFO = path.join(SHARED_FIXTURES, 'proc', 'proc-meminfo.txt');

/** meta.txt for files {name: bytes}: sizes always, sha256 unless `noHash`, plus extra lines. */
function metaFor(seq: number | string, bootId: string, files: Record<string, Buffer>, extra: string[] = [], noHash = false): string {
  const lines = [`seq=${seq}`, `boot_id=${bootId}`, 'uptime_s=120.5', 'wall_time=1764000000', 'protocol=double', `hash=${noHash ? 'none' : 'sha256'}`];
  for (const [n, b] of Object.entries(files)) {
    lines.push(`size.${n}=${b.length}`);
    if (!noHash) lines.push(`sha256.${n}=${sha(b)}`);
  }
  return [...lines, ...extra].join('\n') + '\n';
}

describe('hostile device content never escapes the store', { timeout: 10 * 60_000 }, () => {
  let server: AdbServer;
  let adbd: ConnectedAdbd;
  let serial: string;
  let root: string;
  let report: Buffer;
  let meminfo: Buffer;

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-sec-device-'));
    report = await fs.readFile(REPORT);
    meminfo = await fs.readFile(MEMINFO);
    server = await startAdbServer();
    adbd = await startHostAdbd(server, { args: ['--reboot-cmd', ''] });
    serial = adbd.serial;
  });

  after(async () => {
    await adbd?.stop();
    await server?.kill();
    await fs.rm(root, { recursive: true, force: true });
  });

  /**
   * A scene: <s>/dev/kml is the hostile agent folder, <s>/victim-* stand for device folders kml
   * must not follow (an /etc, a secret, a huge file), <s>/cwd and <s>/home are kml's cwd and HOME,
   * <s>/out is the store. Canary files are what a successful shell injection would create.
   */
  async function hostileScene(name: string) {
    const s = path.join(root, name);
    const agentDir = path.join(s, 'dev', 'kml');
    const snaps = path.join(agentDir, 'snapshots');
    const out = path.join(s, 'out');
    const canary = (tag: string) => path.join(s, `canary-${tag}`);
    await fs.mkdir(snaps, { recursive: true });
    await fs.mkdir(path.join(s, 'cwd'));
    await fs.mkdir(path.join(s, 'home'));
    const inject = (tag: string) => `$(touch ${canary(tag)})\`touch ${canary(`${tag}-bt`)}\`;touch ${canary(`${tag}-semi`)}`;

    // Stand-ins for device paths a hostile agent folder points at.
    const victimEtc = path.join(s, 'victim-etc');
    await fs.mkdir(victimEtc);
    await fs.writeFile(path.join(victimEtc, 'kmemleak.txt'), report);
    await fs.writeFile(path.join(victimEtc, 'meta.txt'), metaFor(5, BOOT, { 'kmemleak.txt': report }));
    await fs.writeFile(path.join(victimEtc, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
    const secret = path.join(s, 'victim-secret');
    await fs.writeFile(secret, 'SECRET=do-not-copy\n');
    const huge = path.join(s, 'victim-huge');
    await fs.writeFile(huge, '');
    await fs.truncate(huge, 3 * 1024 ** 3); // sparse 3 GiB

    const snap = async (dirName: string, files: Record<string, Buffer | string>, meta?: string) => {
      const d = path.join(snaps, dirName);
      await fs.mkdir(d, { recursive: true });
      for (const [n, b] of Object.entries(files)) await fs.writeFile(path.join(d, n), b);
      if (meta !== undefined) await fs.writeFile(path.join(d, 'meta.txt'), meta);
      return d;
    };

    // 1: a good snapshot (stored).
    await snap('1', { 'kmemleak.txt': report, 'meminfo.txt': meminfo }, metaFor(1, BOOT, { 'kmemleak.txt': report, 'meminfo.txt': meminfo }));
    // 2, 3: boot_id with ../ and / (it becomes a folder name).
    await snap('2', { 'kmemleak.txt': report }, metaFor(2, '../../../../escape', { 'kmemleak.txt': report }));
    await snap('3', { 'kmemleak.txt': report }, metaFor(3, `${BOOT}/../../x`, { 'kmemleak.txt': report }));
    // 4: seq in meta is a path.
    await snap('4', { 'kmemleak.txt': report }, metaFor('../4', BOOT, { 'kmemleak.txt': report }));
    // 5: the snapshot folder is a symlink to an /etc-like folder.
    await fs.symlink(victimEtc, path.join(snaps, '5'));
    // 6: files that are symlinks (environ, a huge file), a FIFO and a folder where files belong.
    const d6 = await snap('6', {}, metaFor(6, BOOT, { 'kmemleak.txt': Buffer.from('SECRET=do-not-copy\n'), 'meminfo.txt': meminfo }));
    await fs.symlink('/proc/self/environ', path.join(d6, 'kmemleak.txt'));
    await fs.symlink(huge, path.join(d6, 'meminfo.txt'));
    await fs.symlink(secret, path.join(d6, 'slabinfo.txt'));
    execFileSync('mkfifo', [path.join(d6, 'vmstat.txt')]);
    await fs.mkdir(path.join(d6, 'zoneinfo.txt'));
    // 7: meta.txt is a symlink to /dev/zero (an endless read).
    const d7 = await snap('7', { 'kmemleak.txt': report });
    await fs.symlink('/dev/zero', path.join(d7, 'meta.txt'));
    // 8: shell metacharacters and paths in meta values and file-name keys; unexpected files;
    //    no hashes (kml asks the device to hash: a device command built from the snapshot path).
    await snap('8', {
      'kmemleak.txt': report,
      'evil.sh': '#!/bin/sh\ntouch /tmp/pwned\n',
      'kmemleak.txt.orig': report,
      '..txt': 'dots',
      'kmsg.txt\n': 'newline in a name',
      [`${'k'.repeat(251)}.txt`]: 'long name',
      '$(id).txt': 'dollar',
    }, metaFor(8, BOOT, { 'kmemleak.txt': report }, [
      `protocol=${inject('protocol')}`,
      `errors=${inject('errors')}`,
      `leak_count=${inject('leak')}`,
      'size.../../../../escape.txt=4',
      `size./etc/passwd=10`,
      `size.$(touch ${canary('key')}).txt=1`,
      'sha256.kmsg.txt\n=00',
      '__proto__=polluted',
      'size.__proto__=1',
      'size.constructor=1',
    ], true));
    await fs.mkdir(path.join(snaps, '8', 'mem_8'));
    await fs.symlink('/etc', path.join(snaps, '8', 'vmstat.txt'));
    // 9: an oversized meta.txt (2 MiB of key lines).
    await snap('9', { 'kmemleak.txt': report }, metaFor(9, BOOT, { 'kmemleak.txt': report }) + 'x=y\n'.repeat(512 * 1024));
    // 10: meta.txt is a folder.
    await snap('10', { 'kmemleak.txt': report });
    await fs.mkdir(path.join(snaps, '10', 'meta.txt'));
    // 11: a good snapshot after all the bad ones (a bad one must not block the rest).
    await snap('11', { 'kmemleak.txt': report }, metaFor(11, BOOT, { 'kmemleak.txt': report }));
    // Names that are not snapshot numbers: never listed, never pulled, never deleted.
    for (const n of ['01', '-1', '1e3', '1 ', ' 1', '2\n3', '...', '..%2f..%2fescape', 'k'.repeat(255), '9999999999', '.partial-12', '١٢', '0x10', '+5']) {
      await snap(n, { 'kmemleak.txt': report }, metaFor(12, BOOT, { 'kmemleak.txt': report }));
    }
    // Hostile agent bookkeeping files (status/stop read them).
    await fs.writeFile(path.join(agentDir, 'agent.pid'), `${inject('pid')}\n`);
    await fs.writeFile(path.join(agentDir, 'heartbeat'), `pid=${inject('hb')}\nboot_id=../../x\nstate=$(reboot)\nlast_error=${inject('hberr')}\nfree_kb=-1\nnext_cycle_wall=99999999999999999999\n`);
    await fs.writeFile(path.join(agentDir, 'skipped.log'), `seq=1 boot_id=../../x wall_time=1 reason=${inject('skip')}\nseq=../../3 boot_id=${BOOT} wall_time=1 reason=low_space\n\0\0\0\n`);

    const env = { ...server.env, HOME: path.join(s, 'home'), KML_STATE_DIR: path.join(s, 'home', 'state') };
    const args = (extra: string[] = []) => ['-s', serial, '--out', out, '--agent-dir', agentDir, '--test-skip-doctor', '--test-poll-ms', '200', ...extra];
    // Everything outside the store and the agent folder (the device side kml works in).
    const outside = () => treeState(s, (rel) => rel === 'out' || rel.startsWith(`out${path.sep}`) || rel.startsWith(path.join('dev', 'kml')));
    const canaries = async () => (await fs.readdir(s)).filter((n) => n.startsWith('canary-'));
    return { s, agentDir, snaps, out, env, args, outside, canaries, victimEtc, secret, huge };
  }

  async function runDir(out: string): Promise<string> {
    const runs = await listRuns(out, serial);
    assert.equal(runs.length, 1, 'one run folder');
    return path.join(out, serialSafe(serial), runs[0]);
  }

  async function storedSeqs(out: string): Promise<number[]> {
    return (await readManifest(path.join(await runDir(out), 'manifest.jsonl'))).entries.map((e) => e.seq).sort((a, b) => a - b);
  }

  /** No file anywhere in the store holds the device's secret or environment. */
  async function assertNoLeakedContent(out: string): Promise<void> {
    for (const [rel, desc] of await treeState(out)) {
      if (!desc.startsWith('file ')) continue;
      const text = await fs.readFile(path.join(out, rel), 'utf8');
      assert.doesNotMatch(text, /SECRET=do-not-copy(?!\\n")/, `${rel} holds the secret file's content`);
      assert.ok(!text.includes(`ANDROID_ADB_SERVER_PORT=${server.port}`), `${rel} holds a process environment`);
    }
  }

  function assertUnverifiable(r: CliResult, seq: number): void {
    assert.match(r.stderr, new RegExp(`snapshot ${seq} left on the device`), `snapshot ${seq} is named as left on the device\n${r.stderr.slice(-3000)}`);
  }

  test('kml pull and kml status: good snapshots stored, hostile ones refused, nothing outside the store', async () => {
    const sc = await hostileScene('pull');
    const before = await sc.outside();
    const pull = await runKml(['pull', ...sc.args()], { env: sc.env, cwd: path.join(sc.s, 'cwd'), timeoutMs: 180_000 });
    assertClearOutcome(pull, 'kml pull');
    assert.deepEqual(await storedSeqs(sc.out), [1, 8, 11], `stored\n${pull.stderr.slice(-3000)}`);
    for (const n of [2, 3, 4, 6, 7, 9, 10]) assertUnverifiable(pull, n);
    const status = await runKml(['status', ...sc.args(['--json'])], { env: sc.env, cwd: path.join(sc.s, 'cwd') });
    assertClearOutcome(status, 'kml status', [0]);
    const st = JSON.parse(status.stdout);
    assert.equal(st.device.agent.alive, false, 'a pidfile holding shell text is no agent');
    const stop = await runKml(['stop', ...sc.args(['--wait', '20s'])], { env: sc.env, cwd: path.join(sc.s, 'cwd'), timeoutMs: 120_000 });
    assertClearOutcome(stop, 'kml stop');

    assert.deepEqual(treeDiff(before, await sc.outside()), [], 'nothing outside the store and the agent folder changed');
    assert.deepEqual(await sc.canaries(), [], 'no shell injection ran');
    assert.deepEqual(await storeViolations(sc.out), [], 'the store holds only layout paths');
    await assertNoLeakedContent(sc.out);
    // the stored copies are the device's bytes; the non-numbers were never touched on the device
    const rd = await runDir(sc.out);
    assert.deepEqual(await fs.readFile(path.join(rd, `boot-${BOOT}`, 'kmemleak_log_8.txt')), report);
    const meta8 = JSON.parse(await fs.readFile(path.join(rd, `boot-${BOOT}`, 'meta_8.json'), 'utf8'));
    assert.equal(meta8.protocol.includes('$(touch'), true, 'metacharacters are stored as text');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    const left = (await fs.readdir(sc.snaps)).sort();
    for (const n of ['01', '-1', '1e3', '2\n3', 'k'.repeat(255), '9999999999', '.partial-12', '2', '6', '7', '9', '10']) assert.ok(left.includes(n), `${JSON.stringify(n)} left on the device`);
    assert.ok(!left.includes('1') && !left.includes('8') && !left.includes('11'), 'stored snapshots deleted on the device');
    assert.ok((await fs.lstat(path.join(sc.snaps, '5'))).isSymbolicLink(), 'the symlinked snapshot was neither followed nor removed');
    assert.deepEqual((await fs.readdir(sc.victimEtc)).sort(), ['kmemleak.txt', 'meta.txt', 'passwd']);
  });

  test('kml collect --count on the hostile folder ends (no endless retry, bad snapshots do not count), nothing outside the store', async () => {
    const sc = await hostileScene('collect');
    const km = path.join(sc.s, 'dev', 'kmemleak');
    await fs.writeFile(km, report);
    const before = await sc.outside();
    const r = await runKml(['collect', ...sc.args(['--interval', '1', '--protocol', 'seed', '--count', '5', '--test-kmemleak-path', km])], {
      env: sc.env, cwd: path.join(sc.s, 'cwd'), timeoutMs: 180_000,
    });
    assertClearOutcome(r, 'kml collect');
    assert.equal(r.code, 3, `unverifiable snapshots left on the device: exit 3, not 0\n${r.stderr.slice(-2000)}`);
    // 1, 8, 11 from the folder, then two cycles of the agent itself (the bad snapshots left on the
    // device must not count towards --count, or the run would never end)
    const entries = (await readManifest(path.join(await runDir(sc.out), 'manifest.jsonl'))).entries;
    assert.deepEqual(entries.filter((e) => e.bootId === BOOT).map((e) => e.seq).sort((a, b) => a - b), [1, 8, 11], r.stderr.slice(-3000));
    assert.equal(entries.length, 5, `two snapshots of the agent's own\n${r.stderr.slice(-3000)}`);
    for (const n of [2, 3, 4, 6, 7, 9, 10]) assertUnverifiable(r, n);
    const after = await sc.outside();
    // the fake kmemleak file is the agent's to write (it is the device's kmemleak)
    assert.deepEqual(treeDiff(before, after).filter((d) => d !== `~${path.join('dev', 'kmemleak')}`), [], 'nothing outside the store and the agent folder changed');
    assert.deepEqual(await sc.canaries(), [], 'no shell injection ran');
    assert.deepEqual(await storeViolations(sc.out), [], 'the store holds only layout paths');
    await assertNoLeakedContent(sc.out);
  });
});
