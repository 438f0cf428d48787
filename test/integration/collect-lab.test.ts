// `kml collect` end to end on the LAB device: a real kmemleak kernel under QEMU, kml_leaky
// leaking, our adbd inside, Debian's adb server in between, the CLI as a user runs it.
// Covers the Done-means (10 verified snapshots with kml_leaky's leaks at --interval 5) and the
// faults: kill -9 + rerun, second collector, unplug/replug, adbd killed, reboot.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KML_BIN } from '../helpers/paths.js';
import { ensureLabArtifacts, startLabDevice, type LabDeviceHandle } from '../helpers/lab.js';
import { labKillAdbd, labLeak, labReboot, labReplug, labUnplug } from '../../host/lab/lab.js';
import { serialSafe } from '../../host/store/layout.js';
import { readManifest, type ManifestEntry } from '../../host/store/manifest.js';
import { listRuns, readRunJson } from '../../host/store/run.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

describe('kml collect on the lab device (real kmemleak, kml_leaky)', { timeout: 60 * 60_000 }, () => {
  let lab: LabDeviceHandle;
  let root: string;
  const children = new Set<ChildProcess>();

  before(async () => {
    await ensureLabArtifacts();
    lab = await startLabDevice({ kmemleak: true });
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-collect-lab-'));
  }, { timeout: 45 * 60_000 });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    if (lab) await lab.stop();
    if (root) await fs.rm(root, { recursive: true, force: true });
  }, { timeout: 180_000 });

  function scene(name: string) {
    const out = path.join(root, name);
    const agentDir = `/data/local/tmp/kml-${name}`;
    return { out, agentDir, args: (extra: string[] = []) => ['-s', lab.serial, '--out', out, '--agent-dir', agentDir, ...extra] };
  }

  function kml(args: string[], timeoutMs = 300_000): Promise<Result> {
    return new Promise((resolve) => {
      const c = spawn(process.execPath, [KML_BIN, ...args], { env: lab.env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(c);
      let stdout = '';
      let stderr = '';
      c.stdout!.on('data', (d) => (stdout += d));
      c.stderr!.on('data', (d) => (stderr += d));
      const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.on('close', (code, signal) => { clearTimeout(t); children.delete(c); resolve({ code, signal, stdout, stderr }); });
    });
  }

  function background(args: string[]) {
    const c = spawn(process.execPath, [KML_BIN, 'collect', ...args], { env: lab.env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    let stderr = '';
    let stdout = '';
    c.stdout!.on('data', (d) => (stdout += d));
    c.stderr!.on('data', (d) => (stderr += d));
    const done = new Promise<Result>((resolve) => c.on('close', (code, signal) => { children.delete(c); resolve({ code, signal, stdout, stderr }); }));
    return { child: c, done, stderr: () => stderr };
  }

  async function runDir(out: string): Promise<string> {
    const runs = await listRuns(out, lab.serial);
    assert.ok(runs.length >= 1);
    return path.join(out, serialSafe(lab.serial), runs[runs.length - 1]);
  }

  async function entries(out: string): Promise<ManifestEntry[]> {
    return (await readManifest(path.join(await runDir(out), 'manifest.jsonl'))).entries;
  }

  async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 180_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await fn().catch(() => false))) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(500);
    }
  }

  /** The device-side truth: the seqs the agent logged as published, and what it skipped. */
  async function agentAccount(agentDir: string): Promise<{ published: number[]; skipped: number[] }> {
    const log = await lab.sh(`cat ${agentDir}/agent.log`);
    const skipped = await lab.sh(`cat ${agentDir}/skipped.log 2>/dev/null; exit 0`);
    return {
      published: [...log.stdout.matchAll(/snapshot (\d+) published/g)].map((m) => Number(m[1])),
      skipped: [...skipped.stdout.matchAll(/seq=(\d+)/g)].map((m) => Number(m[1])),
    };
  }

  /** Stored exactly once = published by the agent; every stored file = the agent's sha256. */
  async function assertExactlyOnce(out: string, agentDir: string): Promise<ManifestEntry[]> {
    const es = await entries(out);
    const keys = es.map((e) => `${e.bootId}#${e.seq}`);
    assert.equal(new Set(keys).size, keys.length, 'no duplicates');
    const { published } = await agentAccount(agentDir);
    assert.deepEqual(es.map((e) => e.seq).sort((a, b) => a - b), [...published].sort((a, b) => a - b), 'stored = published, once each');
    const dir = await runDir(out);
    for (const e of es) {
      const meta = JSON.parse(await fs.readFile(path.join(dir, e.files.find((f) => f.name === 'meta.txt')!.path), 'utf8'));
      assert.equal(meta.bootId, e.bootId);
      for (const f of e.files.filter((x) => x.name !== 'meta.txt')) {
        const data = await fs.readFile(path.join(dir, f.path));
        assert.equal(sha(data), meta.sha256[f.name], `${f.path} matches the device's sha256`);
      }
    }
    const left = await lab.sh(`ls ${agentDir}/snapshots`);
    assert.equal(left.stdout.trim(), '', 'nothing left on the device');
    return es;
  }

  test('Done-means: --interval 5 --count 10 yields 10 verified snapshots with kml_leaky\'s leaks', { timeout: 20 * 60_000 }, async () => {
    const s = scene('done');
    const leak = await labLeak(lab.ctx, lab.serial, { rate: 20, paths: 7 });
    assert.equal(leak.loaded, true);
    const t0 = Date.now();
    const r = await kml(['collect', ...s.args(['--interval', '5', '--count', '10'])], 15 * 60_000);
    const ms = Date.now() - t0;
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.match(r.stdout, /10 snapshot\(s\) stored in .*run closed/);
    const es = await assertExactlyOnce(s.out, s.agentDir);
    assert.deepEqual(es.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const dir = await runDir(s.out);
    const json = await readRunJson(dir);
    assert.equal(json.ended?.clean, true);
    assert.equal(json.device.rootMethod !== undefined, true, 'doctor facts recorded');
    assert.ok((json.device.kernel as { release?: string }).release, 'kernel release recorded');
    const withLeaks = es.filter((e) => (e.leakCount ?? 0) > 0);
    assert.ok(withLeaks.length >= 8, `leak counts: ${es.map((e) => e.leakCount).join(',')}`);
    const last = await fs.readFile(path.join(dir, withLeaks[withLeaks.length - 1].files.find((f) => f.name === 'kmemleak.txt')!.path), 'utf8');
    assert.match(last, /^unreferenced object 0x[0-9a-f]+ \(size \d+\):/m);
    assert.match(last, /kml_leaky/);
    for (const f of ['meminfo', 'vmstat', 'buddyinfo', 'zoneinfo', 'slabinfo', 'pagetypeinfo']) {
      await fs.access(path.join(dir, `boot-${es[0].bootId}`, 'mem_1', `${f}.txt`));
    }
    process.stdout.write(`# Done-means: 10 verified snapshots at --interval 5 in ${Math.round(ms / 1000)} s; leaks per snapshot ${es.map((e) => e.leakCount).join(',')}\n`);
  });

  test('faults in one run: kill -9 + rerun, second collector, unplug/replug, adbd killed, reboot', { timeout: 30 * 60_000 }, async () => {
    const s = scene('faults');
    const args = s.args(['--interval', '5']);
    const stored = async () => (await entries(s.out)).length;

    // 1. kill -9 of kml mid-run, then the same command again
    let c = background(args);
    await waitFor('2 snapshots', async () => (await stored()) >= 2);
    c.child.kill('SIGKILL');
    await c.done;
    c = background(args);
    await waitFor('resumed and pulling', async () => /run resumed/.test(c.stderr()) && (await stored()) >= 3);

    // 2. a second collector on the same device and store
    const second = await kml(['collect', ...args], 120_000);
    assert.equal(second.code, 6, second.stderr);
    assert.match(second.stderr, /another kml collector already drives device/);

    // 3. unplug for 8 s, replug
    let n = await stored();
    await labUnplug(lab.ctx, lab.serial);
    await sleep(8_000);
    await labReplug(lab.ctx, lab.serial);
    await waitFor('progress after replug', async () => (await stored()) >= n + 2);

    // 4. adbd killed (on Android this kills the agent too): the agent is restarted if needed
    n = await stored();
    await labKillAdbd(lab.ctx, lab.serial, { wait: true });
    await waitFor('progress after the adbd kill', async () => (await stored()) >= n + 2);

    // 5. reboot: doctor again, agent restarted, new boot segment
    n = await stored();
    const reboot = await labReboot(lab.ctx, lab.serial);
    await waitFor('progress after the reboot', async () => (await stored()) >= n + 2, 300_000);
    assert.match(c.stderr(), /device rebooted/);

    // stop: final pull, agent stopped, run closed
    const stop = await kml(['stop', ...s.args()], 300_000);
    assert.equal(stop.code, 0, stop.stderr + stop.stdout);
    const r = await c.done;
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    const es = await assertExactlyOnce(s.out, s.agentDir);
    const json = await readRunJson(await runDir(s.out));
    assert.equal(json.boots.length, 2, 'a new boot segment after the reboot');
    assert.equal(json.ended?.clean, true);
    assert.equal((await listRuns(s.out, lab.serial)).length, 1, 'one run across every fault');
    const { skipped } = await agentAccount(s.agentDir);
    assert.deepEqual(skipped, []);
    const log = c.stderr();
    const times = (re: RegExp) => (log.match(re) ?? []).length;
    process.stdout.write(`# faults: ${es.length} snapshots across 2 boots, 0 lost, 0 duplicated; reboot to device ${reboot.rebootToDeviceMs} ms; ` +
      `device lost ${times(/device unreachable: waiting/g)}x, reconnected ${times(/connection re-established/g)}x, agent restarted ${times(/agent was not running/g)}x, reboots seen ${times(/device rebooted/g)}\n`);
  });
});
