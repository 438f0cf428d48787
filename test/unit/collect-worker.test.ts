// Unit-level check of the puller's loop (host/collect/worker.ts) against a device simulated in a
// host folder: the agent "publishes" snapshots made of real captured kmemleak and /proc text on a
// timer. The real device path (adb server, agent, kmemleak) is covered by the integration and lab
// tests; this one drives the fault paths quickly and deterministically.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { SHARED_FIXTURES } from '../helpers/paths.js';
import { AdbError } from '../../host/adb/index.js';
import { createLogger } from '../../host/log.js';
import { readManifest } from '../../host/store/manifest.js';
import { openRunFor } from '../../host/store/open.js';
import { readRunJson } from '../../host/store/run.js';
import type { AgentSettings, AgentStatus, DeviceFile, DevicePort, DoctorOutcome } from '../../host/collect/port.js';
import { CollectWorker, type WorkerOptions } from '../../host/collect/worker.js';
import { tempDir } from '../helpers/tmp.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const REPORTS = [
  'kmemleak/kmemleak-report-after-insmod.txt',
  'kmemleak/kmemleak-report-after-rmmod.txt',
  'kmemleak/seed-arm32-vendor-4.19.txt',
];

class FolderDevice implements DevicePort {
  readonly serial = 'fake-0001';
  boot = randomUUID();
  seq = 0;
  alive = false;
  online = true;
  published: { seq: number; boot: string; sha: string }[] = [];
  starts = 0;
  private timer?: NodeJS.Timeout;
  private left = 0;
  /** Make the next N pulls of kmemleak.txt deliver one byte less (a short transfer). */
  shortPulls = 0;
  constructor(readonly dir: string, readonly intervalMs: number) {}

  private check(): void {
    if (!this.online) throw new AdbError('offline', `device ${this.serial} is offline`, { serial: this.serial });
  }
  private snap(seq: number): string {
    return path.join(this.dir, 'snapshots', String(seq));
  }
  async publish(): Promise<void> {
    const seq = ++this.seq;
    const part = path.join(this.dir, 'snapshots', `.partial-${seq}`);
    await fs.mkdir(part, { recursive: true });
    const report = await fs.readFile(path.join(SHARED_FIXTURES, REPORTS[seq % REPORTS.length]));
    const files: Record<string, Buffer> = {
      'kmemleak.txt': report,
      'meminfo.txt': await fs.readFile(path.join(SHARED_FIXTURES, 'proc/proc-meminfo.txt')),
      'buddyinfo.txt': await fs.readFile(path.join(SHARED_FIXTURES, 'proc/proc-buddyinfo.txt')),
    };
    let meta = `seq=${seq}\nboot_id=${this.boot}\nuptime_s=${seq}\nwall_time=${Math.floor(Date.now() / 1000)}\nprotocol=double\nleak_count=${(report.toString().match(/^unreferenced object/gm) ?? []).length}\nhash=sha256\n`;
    for (const [n, d] of Object.entries(files)) {
      await fs.writeFile(path.join(part, n), d);
      meta += `size.${n}=${d.length}\nsha256.${n}=${sha(d)}\n`;
    }
    await fs.writeFile(path.join(part, 'meta.txt'), meta);
    await fs.rename(part, this.snap(seq));
    this.published.push({ seq, boot: this.boot, sha: sha(report) });
  }
  private startTimer(count: number): void {
    this.alive = true;
    this.left = count;
    const tick = async () => {
      if (!this.alive) return;
      await this.publish();
      if (this.left > 0 && --this.left === 0) { this.alive = false; return; }
      this.timer = setTimeout(tick, this.intervalMs).unref(); // a failed test must not hang the runner
    };
    this.timer = setTimeout(tick, this.intervalMs).unref();
  }
  killAgent(): void { this.alive = false; clearTimeout(this.timer); }
  reboot(): void { this.killAgent(); this.boot = randomUUID(); }

  async doctor(): Promise<DoctorOutcome> { this.check(); return { ready: true, exitCode: 0, text: 'ok', facts: { fake: true }, bootId: this.boot }; }
  async attach(): Promise<void> { this.check(); }
  async bootId(): Promise<string> { this.check(); return this.boot; }
  async startAgent(s: AgentSettings) { this.check(); if (this.alive) return { started: false }; this.starts++; this.startTimer(s.count); return { started: true, pid: 1000 + this.starts }; }
  async agentStatus(): Promise<AgentStatus> { this.check(); return { alive: this.alive, pid: this.alive ? 1000 + this.starts : undefined }; }
  async stopAgent(): Promise<void> { this.check(); this.killAgent(); }
  async listComplete(): Promise<number[]> {
    this.check();
    const names = await fs.readdir(path.join(this.dir, 'snapshots')).catch(() => [] as string[]);
    return names.filter((n) => /^[1-9]\d*$/.test(n)).map(Number).sort((a, b) => a - b);
  }
  async listFiles(seq: number): Promise<DeviceFile[]> {
    this.check();
    const out: DeviceFile[] = [];
    for (const n of await fs.readdir(this.snap(seq))) out.push({ name: n, size: (await fs.stat(path.join(this.snap(seq), n))).size, isFile: true });
    return out;
  }
  async readMeta(seq: number): Promise<Buffer> {
    this.check();
    try { return await fs.readFile(path.join(this.snap(seq), 'meta.txt')); } catch { throw new AdbError('no-such-file', 'gone'); }
  }
  async pullFile(seq: number, name: string, local: string) {
    this.check();
    let data = await fs.readFile(path.join(this.snap(seq), name));
    if (name === 'kmemleak.txt' && this.shortPulls > 0) { this.shortPulls--; data = data.subarray(1); }
    await fs.writeFile(local, data);
    return { bytes: data.length, sha256: sha(data) };
  }
  async hashOnDevice(seq: number, name: string) { return { sha256: sha(await fs.readFile(path.join(this.snap(seq), name))) }; }
  async deleteSnapshot(seq: number): Promise<void> { this.check(); await fs.rm(this.snap(seq), { recursive: true, force: true }); }
  async waitOnline(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.online) {
      if (Date.now() > end || signal?.aborted) throw new AdbError('offline', 'still offline');
      await sleep(20);
    }
  }
  async close(): Promise<void> { this.killAgent(); }
}

async function setup(intervalMs = 40) {
  const root = await tempDir('kml-worker-');
  const dev = new FolderDevice(path.join(root, 'device'), intervalMs);
  const out = path.join(root, 'out');
  const opened = (await openRunFor({ out, serial: dev.serial, settings: { intervalS: 1 }, command: 'test' }))!;
  const log = createLogger({ level: 'silent' });
  return { root, dev, out, opened, log };
}

function worker(s: Awaited<ReturnType<typeof setup>>, opts: Partial<WorkerOptions> = {}) {
  return new CollectWorker(s.dev, s.opened.run, s.opened.index, s.log, {
    agent: { intervalS: 1, scanWaitS: 5, protocol: 'double' }, pollMs: 15, finalTimeoutMs: 5_000, ...opts,
  });
}

async function assertExactlyOnce(s: Awaited<ReturnType<typeof setup>>) {
  const m = await readManifest(s.opened.run.manifestPath);
  const keys = m.entries.map((e) => `${e.bootId}#${e.seq}`);
  assert.equal(new Set(keys).size, keys.length, 'no duplicates in the manifest');
  const stored = new Map(m.entries.map((e) => [`${e.bootId}#${e.seq}`, e]));
  for (const p of s.dev.published) {
    const e = stored.get(`${p.boot}#${p.seq}`);
    assert.ok(e, `published snapshot ${p.seq} of boot ${p.boot} is in the store`);
    const k = e.files.find((f) => f.name === 'kmemleak.txt')!;
    assert.equal(k.sha256, p.sha);
    assert.equal(sha(await fs.readFile(path.join(s.opened.run.dir, k.path))), p.sha);
  }
  assert.equal(m.entries.length, s.dev.published.length, 'nothing extra');
  assert.deepEqual(await s.dev.listComplete(), [], 'device emptied');
  return m;
}

test('--count N: N snapshots stored, verified, deleted on the device, run closed cleanly', { timeout: 20_000 }, async () => {
  const s = await setup();
  const w = worker(s, { count: 5 });
  await w.start(await s.dev.doctor());
  const r = await w.run(new AbortController().signal);
  assert.equal(r.exitCode, 0);
  assert.equal(r.end?.reason, 'count');
  assert.equal(r.end?.clean, true);
  assert.equal(s.dev.alive, false, 'agent stopped');
  const m = await assertExactlyOnce(s);
  assert.equal(m.entries.length, 5, 'the agent was told to run exactly the missing cycles');
  assert.deepEqual(m.entries.map((e) => e.seq), [1, 2, 3, 4, 5]);
  const json = await readRunJson(s.opened.run.dir);
  assert.equal(json.ended?.clean, true);
  assert.equal(json.boots.length, 1);
});

test('reboot mid-run: doctor again, agent restarted, new boot segment, nothing lost', { timeout: 20_000 }, async () => {
  const s = await setup();
  const w = worker(s, { count: 6 });
  await w.start(await s.dev.doctor());
  const ac = new AbortController();
  const running = w.run(ac.signal);
  while (s.dev.published.length < 2) await sleep(5);
  s.dev.reboot(); // snapshot 2 may still be on the device: it belongs to the old boot
  const r = await running;
  assert.equal(r.exitCode, 0);
  assert.equal(w.status.recoveries.reboots, 1);
  const m = await assertExactlyOnce(s);
  const json = await readRunJson(s.opened.run.dir);
  assert.equal(json.boots.length, 2);
  for (const e of m.entries) assert.ok(e.files[0].path.startsWith(`boot-${e.bootId}/`), 'each snapshot in its own boot segment');
  assert.ok(m.entries.some((e) => e.bootId === s.dev.boot));
});

test('agent killed (adbd restart): restarted, sequence continues, exactly once', { timeout: 20_000 }, async () => {
  const s = await setup();
  const w = worker(s, { count: 6 });
  await w.start(await s.dev.doctor());
  const running = w.run(new AbortController().signal);
  while (s.dev.published.length < 3) await sleep(5);
  s.dev.killAgent();
  const r = await running;
  assert.equal(r.exitCode, 0);
  assert.ok(w.status.recoveries.agentRestarts >= 1);
  assert.equal(s.dev.starts, 2);
  const m = await assertExactlyOnce(s);
  assert.deepEqual(m.entries.map((e) => e.seq), [1, 2, 3, 4, 5, 6]);
});

test('device offline for a while: the puller waits, then carries on; the agent kept publishing', { timeout: 20_000 }, async () => {
  const s = await setup();
  const w = worker(s, { count: 8 });
  await w.start(await s.dev.doctor());
  const running = w.run(new AbortController().signal);
  while (s.dev.published.length < 2) await sleep(5);
  s.dev.online = false;
  await sleep(300); // the agent keeps publishing on the device
  const during = s.dev.published.length;
  s.dev.online = true;
  const r = await running;
  assert.equal(r.exitCode, 0);
  assert.ok(during >= 4, `agent kept running while disconnected (${during})`);
  assert.ok(w.status.recoveries.deviceLost >= 1);
  await assertExactlyOnce(s);
});

test('Ctrl-C: final pull, agent stopped, run closed; a short transfer is re-pulled, never stored', { timeout: 20_000 }, async () => {
  const s = await setup();
  s.dev.shortPulls = 2;
  const w = worker(s);
  await w.start(await s.dev.doctor());
  const ac = new AbortController();
  const running = w.run(ac.signal);
  while (s.dev.published.length < 4) await sleep(5);
  ac.abort();
  const r = await running;
  assert.equal(r.end?.reason, 'signal');
  assert.equal(r.end?.clean, false, 'the short pulls left snapshot(s) flagged unverifiable this session');
  assert.equal(r.exitCode, 3, 'snapshots left on the device: not 0');
  assert.match(r.error?.message ?? '', /(left|still) on the device/);
  assert.ok(Object.keys(w.status.unverifiable).length >= 1);
  // a rerun (new session, same run) pulls them once the transfer is good
  const again = await openRunFor({ out: s.out, serial: s.dev.serial, settings: {}, command: 'rerun' });
  assert.equal(again?.run.dir, s.opened.run.dir, 'the unclosed run is resumed');
  const w2 = new CollectWorker(s.dev, again!.run, again!.index, s.log, { agent: { intervalS: 1, scanWaitS: 5, protocol: 'double' }, pollMs: 15 });
  await w2.pullOnce();
  await assertExactlyOnce(s);
});

test('a different snapshot under a stored boot_id+seq is kept beside it and flagged', { timeout: 20_000 }, async () => {
  const s = await setup();
  await s.dev.publish();
  await s.dev.publish();
  const w = worker(s);
  await w.pullOnce();
  // the device lost its seq file: numbering restarts within the same boot
  s.dev.seq = 0;
  await sleep(1100); // different wall time → different meta
  await s.dev.publish();
  await worker(s).pullOnce();
  const m = await readManifest(s.opened.run.manifestPath);
  assert.equal(m.entries.length, 3);
  const c = m.entries.filter((e) => e.conflict);
  assert.equal(c.length, 1);
  assert.equal(c[0].seq, 1);
  assert.match(c[0].files[0].path, /\/conflict-[0-9a-f]{12}\//);
  assert.deepEqual(await s.dev.listComplete(), []);
});

test('nothing the device sends can write outside the store: hostile names, boot ids, sizes', { timeout: 20_000 }, async () => {
  const s = await setup();
  await s.dev.publish(); // seq 1: good
  await s.dev.publish(); // seq 2: meta with a hostile boot_id
  await s.dev.publish(); // seq 3: hostile file names next to good ones
  const snap = (n: number) => path.join(s.dev.dir, 'snapshots', String(n));
  const meta2 = (await fs.readFile(path.join(snap(2), 'meta.txt'), 'utf8')).replace(/^boot_id=.*$/m, 'boot_id=../../../../tmp/evil');
  await fs.writeFile(path.join(snap(2), 'meta.txt'), meta2);
  const real = s.dev.listFiles.bind(s.dev);
  s.dev.listFiles = async (seq: number) => {
    const files = await real(seq);
    if (seq !== 3) return files;
    return [...files, ...['../../run.json', 'a/b.txt', 'kmemleak.txt\0x', 'x'.repeat(4096), '..', '/etc/passwd', 'link.txt'].map((name) => ({ name, size: 10, isFile: true }))];
  };
  const pulled: string[] = [];
  const realPull = s.dev.pullFile.bind(s.dev);
  s.dev.pullFile = async (seq: number, name: string, local: string) => { pulled.push(name); return realPull(seq, name, local); };
  const r = await worker(s).pullOnce();
  assert.equal(r.exitCode, 0);
  assert.ok(pulled.every((n) => ['kmemleak.txt', 'meminfo.txt', 'buddyinfo.txt'].includes(n)), `only known names pulled: ${pulled.join(',')}`);
  assert.match(r.status.unverifiable[2] ?? '', /no valid boot_id/);
  assert.deepEqual(await s.dev.listComplete(), [2], 'the hostile snapshot stays on the device, the others are stored and deleted');
  const m = await readManifest(s.opened.run.manifestPath);
  assert.deepEqual(m.entries.map((e) => e.seq), [1, 3]);
  const everything = await fs.readdir(s.out, { recursive: true });
  assert.ok(everything.every((p) => !String(p).includes('evil') && !String(p).includes('passwd')), everything.join('\n'));
  assert.deepEqual(await fs.readdir(path.dirname(s.out)).then((l) => l.sort()), ['device', 'out'], 'nothing written beside the store');
});

test('several devices: one lost for good does not slow the other down', { timeout: 20_000 }, async () => {
  const a = await setup(30);
  const b = await setup(30);
  const wa = worker(a, { count: 8 });
  const wb = worker(b, { finalTimeoutMs: 300 });
  await wa.start(await a.dev.doctor());
  await wb.start(await b.dev.doctor());
  const stopB = new AbortController();
  const t0 = Date.now();
  const runA = wa.run(new AbortController().signal);
  const runB = wb.run(stopB.signal);
  while (b.dev.published.length < 2) await sleep(5);
  b.dev.online = false; // unplugged, never comes back
  const ra = await runA;
  const ms = Date.now() - t0;
  assert.equal(ra.exitCode, 0);
  await assertExactlyOnce(a);
  assert.ok(ms < 5_000, `the healthy device finished its 8 cycles in ${ms} ms`);
  assert.equal(wb.status.state, 'waiting-device');
  stopB.abort();
  const rb = await runB;
  assert.equal(rb.exitCode, 3, 'the lost device ends with "device unavailable"');
  assert.equal(rb.end?.clean, false, 'its run stays open (resumable)');
  assert.match(rb.end?.message ?? '', /could not stop the agent|still on the device/);
});
