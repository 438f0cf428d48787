// The agent on the LAB device: a real kmemleak kernel under QEMU, our adbd inside, Debian's adb
// server in between. Real scans, real reports from kml_leaky, real /proc files, the real launch
// through adb, and the adbd-restart case (which on Android kills the agent).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Adb, ensureRoot, resolveAdbEndpoint } from '../../host/adb/index.js';
import { AgentControl } from '../../host/device/agent.js';
import type { SnapshotMeta } from '../../host/device/agent-files.js';
import { labKillAdbd, labLeak } from '../../host/lab/lab.js';
import { ensureLabArtifacts, startLabDevice, type LabDeviceHandle } from '../helpers/lab.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('agent on the lab device (real kmemleak)', { timeout: 45 * 60_000 }, () => {
  let lab: LabDeviceHandle;
  let adb: Adb;
  let agent: AgentControl;
  let work: string;

  before(async () => {
    await ensureLabArtifacts(); // builds the lab kernel on the first run (minutes)
    lab = await startLabDevice({ kmemleak: true });
    adb = new Adb(resolveAdbEndpoint({ port: lab.server.port }));
    agent = new AgentControl(adb, lab.serial, { root: await ensureRoot(adb, lab.serial) });
    work = await mkdtemp(path.join(os.tmpdir(), 'kml-agent-lab-'));
  }, { timeout: 40 * 60_000 });

  after(async () => {
    if (agent) await agent.stop().catch(() => undefined);
    if (lab) await lab.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }, { timeout: 120_000 });

  /** Wait until at least `n` snapshots above `after` are published. */
  async function waitSnapshots(n: number, afterSeq: number, timeoutMs: number): Promise<number[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const list = (await agent.listComplete()).filter((x) => x > afterSeq);
      if (list.length >= n) return list;
      if (Date.now() > end) throw new Error(`only ${list.length} snapshot(s) after ${afterSeq} within ${timeoutMs} ms`);
      await sleep(1_000);
    }
  }

  /** Pull every file of snapshot N through sync and check it against meta.txt. */
  async function pullVerified(n: number): Promise<{ meta: SnapshotMeta; report: string; files: Record<string, string> }> {
    const meta = await agent.readMeta(n);
    const files: Record<string, string> = {};
    for (const f of meta.files) {
      const local = path.join(work, `${n}-${f.name}`);
      const r = await adb.pullToFile(lab.serial, `${agent.snapshotPath(n)}/${f.name}`, local, { timeoutMs: 60_000 });
      assert.equal(r.bytes, f.bytes, `${n}/${f.name} size`);
      assert.equal(r.sha256, f.sha256, `${n}/${f.name} sha256`);
      files[f.name] = await readFile(local, 'utf8');
    }
    return { meta, report: files['kmemleak.txt'] ?? '', files };
  }

  test('real run: launch returns at once, auto-scan stopped, snapshots with kml_leaky leaks, hashes verified', { timeout: 300_000 }, async (t) => {
    const inst = await agent.install();
    assert.equal(inst.path, '/data/local/tmp/kml/kml-agent.sh');
    const leak = await labLeak(lab.ctx, lab.serial, { rate: 20, paths: 7 });
    assert.equal(leak.loaded, true);
    const s = await agent.start({ interval: 8, scanWait: 5 });
    assert.equal(s.launched, true);
    assert.ok(s.launchMs < 2_000, `launch through adb took ${s.launchMs} ms`);
    t.diagnostic(`launch shell call returned in ${s.launchMs} ms`);

    // scan=off stopped the kernel's auto-scan thread (the kthread is named "kmemleak").
    const threads = await lab.sh('for f in /proc/[0-9]*/comm; do read -r c < "$f" 2>/dev/null && [ "$c" = kmemleak ] && echo "$f"; done; exit 0');
    assert.equal(threads.stdout.trim(), '', 'no kmemleak auto-scan thread while the agent runs');

    const list = await waitSnapshots(3, 0, 180_000);
    assert.deepEqual(list.slice(0, 3), [1, 2, 3]);
    const snaps = await Promise.all(list.slice(0, 3).map((n) => pullVerified(n)));
    const bootId = (await lab.sh('cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    for (const { meta, files } of snaps) {
      assert.equal(meta.bootId, bootId);
      assert.equal(meta.protocol, 'double');
      assert.equal(meta.kmemleakState, 'ok');
      assert.deepEqual(meta.errors, []);
      assert.ok(meta.scan1Ms! > 0 && meta.scan2Ms! > 0, `real scans take time: ${meta.scan1Ms}/${meta.scan2Ms} ms`);
      for (const f of ['meminfo.txt', 'vmstat.txt', 'buddyinfo.txt', 'zoneinfo.txt', 'slabinfo.txt', 'pagetypeinfo.txt', 'kmsg.txt']) {
        assert.ok(f in files, `${f} sampled as root`);
      }
      assert.match(files['meminfo.txt'], /^MemFree:/m);
      assert.match(files['buddyinfo.txt'], /Node 0, zone/);
    }
    t.diagnostic(`snapshots: ${snaps.map((x) => `#${x.meta.seq} leaks=${x.meta.leakCount} bytes=${x.meta.kmemleakBytes} scan1=${x.meta.scan1Ms}ms scan2=${x.meta.scan2Ms}ms read=${x.meta.readMs}ms clock_res=${x.meta.clockResMs}ms`).join('; ')}`);
    // kml_leaky leaks every second: once two scans have seen them, reports carry its stacks.
    const withLeaks = snaps.filter((x) => x.meta.leakCount! > 0);
    assert.ok(withLeaks.length >= 1, `leak counts ${snaps.map((x) => x.meta.leakCount).join(',')}`);
    const last = withLeaks[withLeaks.length - 1];
    assert.match(last.report, /^unreferenced object 0x[0-9a-f]+ \(size \d+\):/m);
    assert.match(last.report, /kml_leaky/, 'backtraces name the leaking module');
    assert.equal(last.meta.leakCount, (last.report.match(/^unreferenced object/gm) ?? []).length);
    assert.match(snaps[0].files['kmsg.txt'], /kmemleak/, 'the first snapshot carries the kmemleak kernel log lines');

    const st = await agent.status();
    assert.equal(st.running, true);
    assert.equal(st.heartbeat?.kmemleak, 'ok');
    assert.equal(st.heartbeat?.state, 'running');

    // Deleting what the host has kept; the agent never deletes anything itself.
    await agent.deleteSnapshot(1);
    assert.ok(!(await agent.listComplete()).includes(1));
    const dmesg = await lab.sh('dmesg');
    assert.doesNotMatch(dmesg.stdout, /Kernel memory leak detector disabled/, 'kmemleak still enabled: nothing wrote "off"');
  });

  test('an adbd restart: the agent is restarted and the sequence continues', { timeout: 300_000 }, async (t) => {
    const before = await agent.status();
    assert.equal(before.running, true);
    const lastSeq = Math.max(0, ...(await agent.listComplete()));
    await labKillAdbd(lab.ctx, lab.serial, { wait: true });
    adb.forgetDevice(lab.serial);
    const afterKill = await agent.status();
    t.diagnostic(`after the adbd restart the agent was ${afterKill.running ? 'still running' : 'dead'}`);
    // Android's init kills adbd's whole cgroup; whether the lab does too, start() must leave one agent running.
    const s = await agent.start({ interval: 8, scanWait: 5 });
    if (afterKill.running) assert.equal(s.launched, false);
    else assert.equal(s.launched, true);
    const next = await waitSnapshots(1, lastSeq, 120_000);
    assert.ok(next[0] > lastSeq, `sequence continued: ${next[0]} after ${lastSeq}`);
    const { meta } = await pullVerified(next[0]);
    assert.equal(meta.kmemleakState, 'ok');
  });

  test('stop: SIGTERM ends the agent cleanly (heartbeat stopped, no partial left published)', { timeout: 120_000 }, async () => {
    const r = await agent.stop();
    assert.equal(r.outcome, 'term');
    const st = await agent.status();
    assert.equal(st.running, false);
    assert.equal(st.heartbeat?.state, 'stopped');
    for (const n of await agent.listComplete()) {
      const meta = await agent.readMeta(n);
      assert.equal(meta.seq, n);
    }
  });
});
