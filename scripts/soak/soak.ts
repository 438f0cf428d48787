// The soak: lab devices on a private adb server, kml_leaky leaking at a known rate, the real
// `kml collect` CLI at a short interval, and a seeded fault schedule; afterwards an independent
// account of what the devices wrote against what the host stored. Used by run.ts (npm run soak)
// and test/integration/soak-short.test.ts.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createLogger } from '../../host/log.js';
import {
  labDown, labKillAdbd, labLeak, labReboot, labReplug, labUnplug, labUp, DEFAULT_UP, type LabContext, type LabDevice,
} from '../../host/lab/lab.js';
import { accountDevice, parseLedger, parseSkippedLog, type DeviceAccount, type StoredSnapshot } from './accounting.js';
import { PrivateAdbServer } from './adb-cli.js';
import { Collector, KML_BIN, countLogMessages } from './collector.js';
import { TinyHostFs, canMount, sweepStaleMounts } from './hostfs.js';
import { DEVICE_FAULTS, FAULT_KINDS, describeEvent, makeSchedule, type FaultEvent, type FaultKind } from './schedule.js';
import type { LabBuild } from '../../host/lab/guest-config.js';

export const AGENT_DIR = '/data/local/tmp/kml-soak';
const FILLER = '/data/local/tmp/kml-soak-filler';

export interface SoakOptions {
  devices: number;
  cycles: number;
  intervalS: number;
  scanWaitS: number;
  seed: number;
  faults: FaultKind[];
  /** Every fault kind fires at least this often. */
  perKind: number;
  /** Index of the heavily faulted device. */
  heavy: number;
  /**
   * How root works on the heavily faulted device (lab --build; default userdebug-root, adbd root).
   * `userdebug`: adbd starts as the shell user and every reboot undoes `adb root`, so the collector
   * must root the device again each time, as on a userdebug phone.
   */
  heavyBuild?: LabBuild;
  /** Work folder: logs, summary.json, the store's mount point. */
  out: string;
  /** kml_leaky objects per second. */
  leakRate: number;
  dataSizeMb: number;
  memMb: number;
  /** Size of the tmpfs the store lives on (outside the host-full fault). */
  storeMb: number;
  /** Keep a copy of the store after the run (always kept when the run fails). */
  keepStore: boolean;
  /** Progress lines (stderr in run.ts, test diagnostics in the test). */
  say: (line: string) => void;
  /** The command that replays this run (printed up front). */
  replay: string;
  /** Abort (SIGINT): the soak stops at its next wait and cleans up. */
  signal?: AbortSignal;
}

export interface FaultRecord extends FaultEvent {
  startedAt?: number;
  clearedAt?: number;
  endedAt?: number;
  error?: string;
  detail?: string;
  /** Per affected device: seconds from clearedAt to the first snapshot pulled / taken after it and pulled. */
  resumeS?: number;
  freshS?: number;
}

export interface SoakSummary {
  ok: boolean;
  seed: number;
  options: Omit<SoakOptions, 'say'>;
  serials: string[];
  heavy: string;
  kmlCommand: string;
  startedAt: string;
  durationS: number;
  schedule: FaultRecord[];
  faultsByKind: Record<string, { planned: number; fired: number; failed: number; resumeMaxS: number | null; freshMaxS: number | null; freshMedianS: number | null }>;
  devices: Array<DeviceAccount & { role: 'heavy' | 'steady'; clockOffsetS: number; statusSkipped?: number; reportSkipped?: number; cycles: number; leakCheck?: LeakCheck }>;
  totals: { cycles: number; written: number; pulled: number; lost: number; duplicated: number; mismatched: number; unledgered: number; skipped: number; interrupted: number; unexplained: number; leftOnDevice: number };
  kml: {
    incarnations: number;
    unexpectedExits: Array<{ n: number; code: number | null | undefined; signal: string | null | undefined }>;
    finalExitCode: number | null | undefined;
    stopExitCode: number | null;
    rssStartMb: number | null;
    rssEndMb: number | null;
    rssPeakMb: number | null;
    /** Per incarnation: RSS first (10 s after start), last and peak, MB. */
    rssByIncarnation: Array<{ n: number; firstMb: number | null; lastMb: number | null; peakMb: number | null; samples: number; minutes: number }>;
    recoveries: Record<string, number>;
    errorLines: number;
  };
  steadyCadence: { maxGapS: number; medianGapS: number; maxPullLagS: number } | null;
  problems: string[];
  storeKept?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * kmemleak-level check (informational): kml_leaky's own counter against the distinct kml_leaky
 * objects in the stored reports of the device's last boot. An object is reported by the cycle
 * whose first scan already saw it, so the last stored snapshot (read at W) covers what was leaked
 * before about W − scan-wait − 1 s; `expected` is the counter read at T minus the rate × (T − that).
 */
/**
 * The JSON lines of a run's manifest.jsonl, read by the harness itself (not through kml's store
 * code: the account must not share kml's bugs). A missing file is no lines; `bad` counts lines
 * that are not JSON (blank lines are not counted).
 */
function manifestLines<T>(runDir: string): { entries: T[]; bad: number } {
  let text = '';
  try {
    text = fs.readFileSync(path.join(runDir, 'manifest.jsonl'), 'utf8');
  } catch {
    return { entries: [], bad: 0 };
  }
  const entries: T[] = [];
  let bad = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      entries.push(JSON.parse(line) as T);
    } catch {
      bad++;
    }
  }
  return { entries, bad };
}

export interface LeakCheck { bootId: string; leaked: number; reported: number; expected: number; difference: number }

function leakCheck(runDirs: string[], bootId: string, leaked: number, deviceNow: number, rate: number, scanWaitS: number): LeakCheck | undefined {
  const addrs = new Set<string>();
  let lastWall = 0;
  for (const dir of runDirs) {
    for (const e of manifestLines<{ bootId?: string; wallTime?: number; conflict?: boolean; files?: Array<{ name: string; path: string }> }>(dir).entries) {
      if (e.bootId !== bootId || e.conflict) continue;
      lastWall = Math.max(lastWall, e.wallTime ?? 0);
      const k = e.files?.find((f) => f.name === 'kmemleak.txt');
      if (!k) continue;
      const report = fs.readFileSync(path.join(dir, k.path), 'utf8');
      for (const rec of report.split(/^(?=unreferenced object )/m)) {
        const m = /^unreferenced object (?:\(\w+\) )?0x([0-9a-f]+)/.exec(rec);
        if (m && rec.includes('kml_leaky')) addrs.add(m[1]);
      }
    }
  }
  if (!lastWall) return undefined;
  const expected = Math.max(0, Math.round(leaked - rate * Math.max(0, deviceNow - (lastWall - scanWaitS - 1))));
  return { bootId, leaked, reported: addrs.size, expected, difference: addrs.size - expected };
}

/** kml's serial-safe folder name, written out here on purpose (the accounting does not use kml's code). */
const serialSafe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');

const RECOVERY_MESSAGES: Record<string, RegExp> = {
  'device lost': /^device unreachable: waiting/,
  'device back': /^device connection re-established/,
  'reboot seen': /^device rebooted/,
  'agent restarted': /^agent was not running/,
  'host full': /^host disk nearly full/,
  'host room again': /^host disk has room again/,
  'run resumed': /^run resumed/,
  'already stored (device copy deleted)': /^snapshot already stored/,
  'device op retried': /^device operation failed; retrying/,
  conflict: /^CONFLICT/,
};

function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function runKml(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [KML_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
  });
}

/** The store as the harness reads it: manifest lines (parsed here) and every stored file hashed. */
function readStore(store: string, serial: string): { stored: StoredSnapshot[]; runDirs: string[]; badLines: number } {
  const devDir = path.join(store, serialSafe(serial));
  const runDirs: string[] = [];
  const stored: StoredSnapshot[] = [];
  let badLines = 0;
  let names: string[] = [];
  try {
    names = fs.readdirSync(devDir).filter((n) => /^\d{8}T\d{6}Z-[0-9a-f]+$/.test(n)).sort();
  } catch {
    return { stored, runDirs, badLines };
  }
  for (const name of names) {
    const dir = path.join(devDir, name);
    runDirs.push(dir);
    const m = manifestLines<{ bootId: string; seq: number; wallTime: number | null; pulledAt: string; conflict?: boolean; runId: string; files: Array<{ name: string; path: string; sha256: string; source?: { sha256: string } }> }>(dir);
    badLines += m.bad;
    for (const e of m.entries) {
      const files: StoredSnapshot['files'] = {};
      for (const f of e.files ?? []) {
        let disk: string | null = null;
        try {
          disk = createHash('sha256').update(fs.readFileSync(path.join(dir, f.path))).digest('hex');
        } catch {
          disk = null;
        }
        files[f.name] = { manifest: f.source?.sha256 ?? f.sha256, disk, converted: Boolean(f.source) };
      }
      stored.push({ bootId: e.bootId, seq: e.seq, wallTime: e.wallTime, pulledAt: Date.parse(e.pulledAt), conflict: Boolean(e.conflict), runId: e.runId, files });
    }
  }
  return { stored, runDirs, badLines };
}

export async function runSoak(o: SoakOptions): Promise<SoakSummary> {
  const say = o.say;
  const wait = (ms: number) => new Promise<void>((resolve, reject) => {
    if (o.signal?.aborted) return reject(new Error('soak interrupted'));
    const onAbort = () => { clearTimeout(t); reject(new Error('soak interrupted')); };
    const t = setTimeout(() => { o.signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    o.signal?.addEventListener('abort', onAbort, { once: true });
  });
  const t0 = Date.now();
  const problems: string[] = [];
  const work = path.resolve(o.out);
  fs.mkdirSync(work, { recursive: true });
  const storeDir = path.join(work, 'store');
  if (o.faults.includes('host-full') && !canMount()) {
    throw new Error('the host-full fault mounts a tmpfs and needs root; run as root or leave host-full out of --faults');
  }
  if (o.heavy < 0 || o.heavy >= o.devices) throw new Error(`--heavy ${o.heavy}: there are ${o.devices} device(s) (0..${o.devices - 1})`);
  const swept = canMount() ? sweepStaleMounts() : [];
  if (swept.length) say(`unmounted stale soak mounts: ${swept.join(', ')}`);

  const estCycleS = Math.max(o.intervalS, o.scanWaitS + 2.5);
  // faults also wait for the previous one's recovery (below), so a cycle or so of gap is enough
  const minGapS = Math.ceil(Math.max(8, estCycleS));
  const schedule: FaultRecord[] = makeSchedule({
    seed: o.seed, kinds: o.faults, perKind: o.perKind, cycles: o.cycles, firstCycle: 3, cycleS: estCycleS, minGapCycles: 1, heavy: o.heavy,
  });

  let server: PrivateAdbServer | undefined;
  let devices: LabDevice[] = [];
  let ctx: LabContext | undefined;
  let hostfs: TinyHostFs | undefined;
  let collector: Collector | undefined;
  let stopExitCode: number | null = null;
  let summary: SoakSummary | undefined;
  const unexpected: Array<{ n: number; code: number | null | undefined; signal: string | null | undefined }> = [];
  const clockOffset: number[] = [];
  const cycles: number[] = [];
  const busy = new Set<number>(); // devices in the middle of a device fault: not polled
  let polling = false;
  try {
    server = await PrivateAdbServer.start();
    say(`private adb server on 127.0.0.1:${server.port}`);
    const labRoot = path.join(work, 'lab-state');
    ctx = {
      adbPort: server.port,
      stateRoot: path.join(labRoot, 'lab'),
      env: { ...server.env, KML_STATE_DIR: labRoot },
      log: createLogger({ level: 'debug', file: path.join(work, 'lab.log'), pretty: false }),
      ownerPid: process.pid,
      progress: undefined,
    };
    const bootT = Date.now();
    const up = { ...DEFAULT_UP, kmemleak: true, dataSizeMb: o.dataSizeMb, memMb: o.memMb, wipeData: true, timeoutMs: 240_000 };
    const heavyBuild = o.heavyBuild ?? DEFAULT_UP.build;
    if (heavyBuild === DEFAULT_UP.build || o.heavy >= o.devices) {
      devices = await labUp(ctx, { ...up, count: o.devices });
    } else {
      // Boot the heavy device on its own (its build differs), then the others, and keep their order.
      const heavyDev = await labUp(ctx, { ...up, count: 1, build: heavyBuild });
      const others = o.devices > 1 ? await labUp(ctx, { ...up, count: o.devices - 1 }) : [];
      devices = [...others.slice(0, o.heavy), heavyDev[0], ...others.slice(o.heavy)];
    }
    const serials = devices.map((d) => d.serial);
    say(`${serials.length} lab device(s) up in ${Math.round((Date.now() - bootT) / 1000)} s: ${serials.join(' ')} (heavy: ${serials[o.heavy]}, ${heavyBuild} build)`);
    for (const [i, s] of serials.entries()) {
      const leak = await labLeak(ctx, s, { rate: o.leakRate, paths: 7 });
      if (!leak.loaded) throw new Error(`kml_leaky did not load on ${s}`);
      const r = await server.shell(s, `rm -rf ${AGENT_DIR} ${FILLER}*; date +%s`);
      clockOffset[i] = Number(r.out.trim()) - Math.round(Date.now() / 1000);
      cycles[i] = 0;
    }

    if (canMount()) {
      hostfs = TinyHostFs.mount(storeDir, o.storeMb);
    } else {
      fs.mkdirSync(storeDir, { recursive: true });
    }

    const args = ['collect', ...serials.flatMap((s) => ['-s', s]), '--interval', String(o.intervalS), '--scan-wait', String(o.scanWaitS), '--out', storeDir, '--agent-dir', AGENT_DIR];
    collector = new Collector(args, server.env, work);
    collector.onUnexpectedExit = (inc) => {
      unexpected.push({ n: inc.n, code: inc.code, signal: inc.signal });
      problems.push(`kml collect (incarnation ${inc.n}) exited on its own with code ${inc.code}${inc.signal ? ` / ${inc.signal}` : ''}: see ${inc.logFile}`);
      say(`!! kml collect exited on its own (code ${inc.code}); restarting it with the same command`);
      setTimeout(() => { if (collector && !collector.current && !stopping) collector.start(); }, 2000);
    };
    let stopping = false;

    say(`seed ${o.seed}   replay: ${o.replay}`);
    say(`kml command: ${collector.commandLine}`);
    say(`cycle ≈ ${estCycleS} s (interval ${o.intervalS} s, scan-wait ${o.scanWaitS} s); target ${o.cycles} cycles per device; ${schedule.length} faults, min gap ${minGapS} s:`);
    for (const e of schedule) say(`  ${describeEvent(e, serials)}`);

    collector.start();

    // -------------------------------------------------------------------- poller
    const storedCount = (i: number) => readStore(storeDir, serials[i]).stored.length;
    polling = true;
    let lastProgress = 0;
    let firedCount = 0;
    const poller = (async () => {
      while (polling) {
        collector!.sampleRss();
        if (server!.up) {
          await Promise.all(serials.map(async (s, i) => {
            if (busy.has(i)) return;
            try {
              const hb = await server!.catFile(s, `${AGENT_DIR}/heartbeat`, 10_000);
              const m = /^seq=(\d+)$/m.exec(hb ?? '');
              if (m) cycles[i] = Math.max(cycles[i], Number(m[1]));
            } catch {
              // unreachable right now (a fault, kml reconnecting): next round
            }
          }));
        }
        if (Date.now() - lastProgress > 30_000) {
          lastProgress = Date.now();
          const rss = collector!.current?.rssKb.at(-1);
          say(`t+${Math.round((Date.now() - t0) / 1000)}s cycles ${cycles.join('/')} of ${o.cycles}; stored ${serials.map((_, i) => storedCount(i)).join('/')}; faults ${firedCount}/${schedule.length}; kml rss ${rss ? Math.round(rss / 1024) : '?'} MB`);
        }
        await sleep(5_000);
      }
    })();

    // warm-up: every device has stored a snapshot
    const warmEnd = Date.now() + 240_000;
    while (serials.some((_, i) => storedCount(i) < 2)) {
      if (Date.now() > warmEnd) throw new Error(`warm-up: not every device stored 2 snapshots within 240 s (stored ${serials.map((_, i) => storedCount(i)).join('/')}); see ${work}/kml-collect-1.log`);
      await wait(2_000);
    }
    say(`warm-up done after ${Math.round((Date.now() - t0) / 1000)} s; faults start`);

    // the run's cycle clock: the steady devices' sequence (the heavy one races through skipped
    // cycles when its disk is full and stalls when it reboots)
    const progress = () => Math.max(...cycles.filter((_, i) => serials.length === 1 || i !== o.heavy));

    // -------------------------------------------------------------------- faults
    const phase0 = Date.now();
    let prevEnd = 0;
    for (const ev of schedule) {
      // due: the devices reached the fault's cycle, and a short gap after the previous recovery
      while (progress() < ev.atCycle) await wait(1_000);
      const due = prevEnd + minGapS * 1000;
      if (due > Date.now()) await wait(due - Date.now());
      const dev = ev.device;
      const serial = dev === undefined ? undefined : serials[dev];
      ev.startedAt = Date.now();
      if (dev !== undefined) busy.add(dev);
      say(`fault ${describeEvent(ev, serials)} ...`);
      try {
        switch (ev.kind) {
          case 'adb-server':
            await server.kill();
            await wait(ev.holdS * 1000);
            await server.restart();
            ev.clearedAt = Date.now();
            break;
          case 'unplug':
            await labUnplug(ctx, serial!);
            await wait(ev.holdS * 1000);
            ev.clearedAt = Date.now();
            await labReplug(ctx, serial!, { timeoutMs: 90_000 });
            break;
          case 'reboot': {
            const r = await labReboot(ctx, serial!, { timeoutMs: 180_000 });
            ev.clearedAt = Date.now();
            ev.detail = `back in ${Math.round(r.rebootToDeviceMs / 100) / 10} s`;
            // the guest clock starts again from the RTC: measure its offset again
            const d = await server.shell(serial!, 'date +%s', 30_000);
            if (/^\d+$/.test(d.out.trim())) clockOffset[dev!] = Number(d.out.trim()) - Math.round(Date.now() / 1000);
            const leak = await labLeak(ctx, serial!, { rate: o.leakRate, paths: 7 });
            if (!leak.loaded) throw new Error('kml_leaky did not load after the reboot');
            break;
          }
          case 'adbd-kill':
            await labKillAdbd(ctx, serial!, { wait: true });
            ev.clearedAt = Date.now();
            break;
          case 'kml-kill':
            await collector.kill9();
            await wait(ev.holdS * 1000);
            collector.start();
            ev.clearedAt = Date.now();
            break;
          case 'device-full': {
            // fallocate the free space (instant), then dd tops up the last blocks: /data at 100%
            const fill = [
              `set -- $(stat -f -c '%a %S' /data)`,
              `kb=$(( $1 / 1024 * $2 ))`,
              `fallocate -l $(( kb - 64 ))k ${FILLER} 2>/dev/null || true`,
              `dd if=/dev/zero of=${FILLER}-2 bs=4096 2>/dev/null`,
              `sync`,
              // delayed allocation gives a few blocks back after the sync: take them too
              `dd if=/dev/zero of=${FILLER}-3 bs=1024 2>/dev/null`,
              `sync`,
              `stat -f -c 'avail=%a' /data`,
            ].join('; ');
            const r = await server.shell(serial!, fill, 180_000);
            ev.detail = r.out.trim().split('\n').pop();
            await wait(ev.holdS * 1000);
            const rm = await server.shell(serial!, `rm -f ${FILLER} ${FILLER}-2 ${FILLER}-3; stat -f -c 'avail=%a' /data`, 60_000);
            if (rm.code !== 0) throw new Error(`removing the filler failed: ${rm.out}${rm.err}`);
            ev.clearedAt = Date.now();
            break;
          }
          case 'host-full': {
            if (!hostfs) throw new Error('no tmpfs (not root)');
            const u = hostfs.fill();
            ev.detail = `store fs ${Math.round(u.sizeBytes / 1024)} KiB, ${Math.round((u.sizeBytes - u.usedBytes) / 1024)} KiB free`;
            await wait(ev.holdS * 1000);
            hostfs.grow();
            ev.clearedAt = Date.now();
            break;
          }
        }
      } catch (e) {
        ev.error = (e as Error).message;
        problems.push(`fault #${ev.n} ${ev.kind} failed: ${ev.error}`);
        say(`!! fault #${ev.n} ${ev.kind} failed: ${ev.error}`);
        // make sure nothing stays broken
        if (!server.up) await server.restart().catch(() => undefined);
        if (ev.kind === 'unplug' && serial) await labReplug(ctx, serial, { timeoutMs: 90_000 }).catch(() => undefined);
        if (ev.kind === 'device-full' && serial) await server.shell(serial, `rm -f ${FILLER} ${FILLER}-2 ${FILLER}-3`).catch(() => undefined);
        if (ev.kind === 'host-full') { try { hostfs?.grow(); } catch { /* reported */ } }
        if (ev.kind === 'kml-kill' && !collector.current) collector.start();
        ev.clearedAt ??= Date.now();
      } finally {
        if (dev !== undefined) busy.delete(dev);
      }
      ev.endedAt = Date.now();
      firedCount++;
      say(`   done in ${round1((ev.endedAt - ev.startedAt) / 1000)} s${ev.detail ? ` (${ev.detail})` : ''}`);
      // Recovered = every affected device has stored a snapshot taken after the fault was cleared.
      // The next fault waits for that, so one fault's recovery time does not include the next one.
      const affected = ev.device === undefined ? serials.map((_, i) => i) : [ev.device];
      const recoverBy = Date.now() + 240_000;
      while (!affected.every((i) => readStore(storeDir, serials[i]).stored.some((x) => x.wallTime !== null && (x.wallTime - clockOffset[i]) * 1000 >= ev.clearedAt!))) {
        if (Date.now() > recoverBy) {
          problems.push(`fault #${ev.n} ${ev.kind}: not recovered (no fresh snapshot stored) within 240 s`);
          break;
        }
        await wait(1_000);
      }
      prevEnd = Date.now();
    }

    // -------------------------------------------------------------------- the rest of the cycles, then a quiet tail
    const cyclesEnd = Date.now() + Math.max(600_000, o.cycles * estCycleS * 2000);
    while (cycles.some((c) => c < o.cycles)) {
      if (Date.now() > cyclesEnd) {
        problems.push(`cycle target not reached in time (cycles ${cycles.join('/')} of ${o.cycles})`);
        break;
      }
      await wait(3_000);
    }
    const lastCleared = Math.max(phase0, ...schedule.map((e) => e.clearedAt ?? 0));
    const tailEnd = Date.now() + 300_000;
    // every device has a snapshot taken after the last fault, stored
    for (;;) {
      const fresh = serials.every((s, i) => readStore(storeDir, s).stored.some((x) => x.wallTime !== null && (x.wallTime - clockOffset[i]) * 1000 >= lastCleared));
      if (fresh) break;
      if (Date.now() > tailEnd) {
        problems.push('not every device stored a snapshot taken after the last fault within 300 s');
        break;
      }
      await wait(2_000);
    }
    polling = false;
    await poller;
    collector.sampleRss();

    // -------------------------------------------------------------------- stop: kml stop (SIGTERM to the collector, final pull)
    say('stopping: kml stop');
    stopping = true;
    collector.expectExit();
    const stop = await runKml(['stop', '-s', serials[0], '--out', storeDir, '--agent-dir', AGENT_DIR, '--wait', '300s'], server.env, 360_000);
    stopExitCode = stop.code;
    if (stop.code !== 0) problems.push(`kml stop exited ${stop.code}: ${(stop.stderr + stop.stdout).trim().slice(-600)}`);
    const last = await collector.waitExit(360_000);
    if (!last || last.endedAt === undefined) {
      problems.push('kml collect did not exit after kml stop');
      collector.killNow();
    } else if (last.code !== 0) {
      problems.push(`kml collect exited ${last.code} after kml stop (want 0): see ${last.logFile}`);
    }

    // -------------------------------------------------------------------- accounting
    say('accounting: the devices\' ledgers (adb shell cat) against the store');
    const accounts: SoakSummary['devices'] = [];
    for (const [i, s] of serials.entries()) {
      const ledgerText = (await server.catFile(s, `${AGENT_DIR}/ledger`)) ?? '';
      const skippedText = (await server.catFile(s, `${AGENT_DIR}/skipped.log`)) ?? '';
      const ls = await server.shell(s, `ls ${AGENT_DIR}/snapshots`);
      const left = ls.out.split(/\s+/).filter((n) => /^\d+$/.test(n)).map(Number);
      fs.writeFileSync(path.join(work, `ledger-${i}.txt`), ledgerText);
      fs.writeFileSync(path.join(work, `skipped-${i}.log`), skippedText);
      const ledger = parseLedger(ledgerText);
      const skipped = parseSkippedLog(skippedText);
      const st = readStore(storeDir, s);
      if (st.badLines) problems.push(`${s}: ${st.badLines} unreadable manifest line(s)`);
      // the device clock: wall times are shifted by its offset for lags and recoveries
      const stored = st.stored.map((x) => ({ ...x, wallTime: x.wallTime === null ? null : x.wallTime - clockOffset[i] }));
      const acc = accountDevice({ serial: s, ledger, skipped, stored, leftOnDevice: left, expectedCycleS: estCycleS });
      // kml status must show the skipped cycles (the device's count)
      const status = await runKml(['status', '-s', s, '--out', storeDir, '--agent-dir', AGENT_DIR, '--json'], server.env, 120_000);
      let statusSkipped: number | undefined;
      try {
        statusSkipped = (JSON.parse(status.stdout) as { device?: { skippedTotal?: number } }).device?.skippedTotal ?? 0;
      } catch {
        problems.push(`${s}: kml status --json gave no JSON (exit ${status.code}): ${status.stderr.slice(-300)}`);
      }
      if (statusSkipped !== undefined && statusSkipped !== skipped.length) {
        problems.push(`${s}: kml status says ${statusSkipped} skipped cycle(s), skipped.log has ${skipped.length}`);
      }
      // ... and the report
      let reportSkipped: number | undefined;
      if (st.runDirs.length) {
        const rep = await runKml(['report', st.runDirs[st.runDirs.length - 1], '--format', 'json'], server.env, 300_000);
        try {
          const j = JSON.parse(rep.stdout) as { runs?: Array<{ inputStats?: { agentSkipped?: unknown[] } }>; inputStats?: { agentSkipped?: unknown[] } };
          const stats = j.inputStats ?? j.runs?.[0]?.inputStats;
          reportSkipped = stats?.agentSkipped?.length ?? 0;
        } catch {
          problems.push(`${s}: kml report --format json gave no JSON (exit ${rep.code}): ${rep.stderr.slice(-300)}`);
        }
        if (reportSkipped !== undefined && reportSkipped !== skipped.length) {
          problems.push(`${s}: kml report shows ${reportSkipped} skipped cycle(s), skipped.log has ${skipped.length}`);
        }
      }
      // kmemleak level: kml_leaky's counter against the objects in the stored reports (this boot)
      let leaks: LeakCheck | undefined;
      const lk = await server.shell(s, 'cat /sys/module/kml_leaky/parameters/leaked_objects /proc/sys/kernel/random/boot_id; date +%s');
      const [leakedText, bootText, nowText] = lk.out.trim().split(/\s+/);
      if (/^\d+$/.test(leakedText ?? '') && /^\d+$/.test(nowText ?? '')) {
        leaks = leakCheck(st.runDirs, (bootText ?? '').toLowerCase(), Number(leakedText), Number(nowText), o.leakRate, o.scanWaitS);
      }
      accounts.push({ ...acc, role: i === o.heavy ? 'heavy' : 'steady', clockOffsetS: clockOffset[i], statusSkipped, reportSkipped, cycles: acc.maxSeq, leakCheck: leaks });
      if (!acc.ok) problems.push(`${s}: accounting failed (lost ${acc.lost.length}, duplicated ${acc.duplicated.length}, mismatched ${acc.mismatched.length}, unledgered ${acc.unledgered.length}, unexplained gaps ${acc.unexplained.length}, left on device ${acc.leftOnDevice.length}, runs ${acc.runs}, written ${acc.written})`);
      if (acc.leaks === 0) problems.push(`${s}: no leaks in any snapshot (kml_leaky not reported?)`);
    }

    // recoveries: from the moment a fault was cleared to the first snapshot pulled, and to the first snapshot taken after it
    const storedBy = serials.map((s, i) => readStore(storeDir, s).stored.filter((x) => !x.conflict).map((x) => ({ ...x, wallTime: x.wallTime === null ? null : x.wallTime - clockOffset[i] })));
    for (const ev of schedule) {
      if (ev.clearedAt === undefined) continue;
      const affected = ev.device === undefined ? serials.map((_, i) => i) : [ev.device];
      const resume: number[] = [];
      const fresh: number[] = [];
      for (const i of affected) {
        const after = storedBy[i].filter((x) => x.pulledAt > ev.clearedAt!).sort((a, b) => a.pulledAt - b.pulledAt);
        if (after[0]) resume.push(after[0].pulledAt - ev.clearedAt);
        const f = storedBy[i].filter((x) => x.wallTime !== null && x.wallTime * 1000 >= ev.clearedAt!).sort((a, b) => a.pulledAt - b.pulledAt);
        if (f[0]) fresh.push(f[0].pulledAt - ev.clearedAt);
      }
      if (resume.length) ev.resumeS = round1(Math.max(...resume) / 1000);
      if (fresh.length) ev.freshS = round1(Math.max(...fresh) / 1000);
    }
    const faultsByKind: SoakSummary['faultsByKind'] = {};
    for (const k of o.faults) {
      const evs = schedule.filter((e) => e.kind === k);
      const fired = evs.filter((e) => e.startedAt !== undefined);
      const fr = fired.map((e) => e.freshS).filter((x): x is number => x !== undefined);
      const rs = fired.map((e) => e.resumeS).filter((x): x is number => x !== undefined);
      faultsByKind[k] = {
        planned: evs.length, fired: fired.length, failed: fired.filter((e) => e.error).length,
        resumeMaxS: rs.length ? Math.max(...rs) : null, freshMaxS: fr.length ? Math.max(...fr) : null, freshMedianS: median(fr),
      };
      if (fired.length < o.perKind) problems.push(`fault ${k} fired ${fired.length} time(s), want ≥ ${o.perKind}`);
    }

    const logs = countLogMessages(collector.incarnations.map((i) => i.logFile));
    const recoveries: Record<string, number> = {};
    for (const [label, re] of Object.entries(RECOVERY_MESSAGES)) {
      recoveries[label] = Object.entries(logs.byMsg).filter(([m]) => re.test(m)).reduce((s, [, n]) => s + n, 0);
    }
    if (recoveries.conflict) problems.push(`kml logged ${recoveries.conflict} CONFLICT(s)`);
    const incs = collector.incarnations;
    const firstRss = incs.find((i) => i.rssKb.length)?.rssKb[0];
    const lastInc = [...incs].reverse().find((i) => i.rssKb.length);
    const lastRss = lastInc?.rssKb[lastInc.rssKb.length - 1];
    const peak = Math.max(0, ...incs.flatMap((i) => i.rssKb));
    const steady = accounts.filter((a) => a.role === 'steady');
    const totals = {
      cycles: accounts.reduce((s, a) => s + a.cycles, 0),
      written: accounts.reduce((s, a) => s + a.written, 0),
      pulled: accounts.reduce((s, a) => s + a.pulled, 0),
      lost: accounts.reduce((s, a) => s + a.lost.length, 0),
      duplicated: accounts.reduce((s, a) => s + a.duplicated.length, 0),
      mismatched: accounts.reduce((s, a) => s + a.mismatched.length, 0),
      unledgered: accounts.reduce((s, a) => s + a.unledgered.length, 0),
      skipped: accounts.reduce((s, a) => s + a.skipped, 0),
      interrupted: accounts.reduce((s, a) => s + a.interrupted.length, 0),
      unexplained: accounts.reduce((s, a) => s + a.unexplained.length, 0),
      leftOnDevice: accounts.reduce((s, a) => s + a.leftOnDevice.length, 0),
    };
    summary = {
      ok: false,
      seed: o.seed,
      options: { ...o, say: undefined } as unknown as SoakSummary['options'],
      serials,
      heavy: serials[o.heavy],
      kmlCommand: collector.commandLine,
      startedAt: new Date(t0).toISOString(),
      durationS: Math.round((Date.now() - t0) / 1000),
      schedule,
      faultsByKind,
      devices: accounts,
      totals,
      kml: {
        incarnations: incs.length,
        unexpectedExits: unexpected,
        finalExitCode: incs[incs.length - 1]?.code,
        stopExitCode,
        rssStartMb: firstRss ? round1(firstRss / 1024) : null,
        rssEndMb: lastRss ? round1(lastRss / 1024) : null,
        rssPeakMb: peak ? round1(peak / 1024) : null,
        rssByIncarnation: incs.map((i) => ({
          n: i.n,
          firstMb: i.rssKb.length ? round1(i.rssKb[0] / 1024) : null,
          lastMb: i.rssKb.length ? round1(i.rssKb[i.rssKb.length - 1] / 1024) : null,
          peakMb: i.rssKb.length ? round1(Math.max(...i.rssKb) / 1024) : null,
          samples: i.rssKb.length,
          minutes: round1(((i.endedAt ?? Date.now()) - i.startedAt) / 60_000),
        })),
        recoveries,
        errorLines: logs.errors.length,
      },
      steadyCadence: steady.length ? {
        maxGapS: Math.max(...steady.map((a) => a.cadence.maxGapS)),
        medianGapS: Math.max(...steady.map((a) => a.cadence.medianGapS)),
        maxPullLagS: Math.max(...steady.map((a) => a.pullLagS.max)),
      } : null,
      problems,
    };
    summary.ok = problems.length === 0 && totals.lost === 0 && totals.duplicated === 0;
    return summary;
  } finally {
    polling = false;
    collector?.killNow();
    if (summary && hostfs && (!summary.ok || o.keepStore)) {
      const kept = path.join(work, 'store-kept');
      try {
        fs.mkdirSync(kept, { recursive: true });
        execFileSync('cp', ['-a', `${storeDir}/.`, `${kept}/`], { stdio: 'ignore' });
        summary.storeKept = kept;
      } catch {
        // best effort
      }
    }
    hostfs?.unmount();
    if (ctx && devices.length) await labDown(ctx, []).catch((e) => say(`lab down failed: ${(e as Error).message}`));
    await server?.kill();
  }
}

export const ALL_FAULTS: FaultKind[] = [...FAULT_KINDS];
export { DEVICE_FAULTS };
