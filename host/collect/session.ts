// What `kml collect`, `kml pull`, `kml status` and `kml stop` do, one device at a time; the
// command module only parses options and prints. Each device: lock → doctor (or attach) →
// run folder → worker. One failing device never stops the others (`collectAll`).
import path from 'node:path';
import { Adb, DeviceWatcher, isOnline, validateSerial, type DeviceState, type RootMethod } from '../adb/index.js';
import { ExitCode, KmlError, isKmlError } from '../errors.js';
import { createLogger, type Logger, type LogLevel } from '../log.js';
import { MANIFEST, RUN_LOG, deviceDirOf } from '../store/layout.js';
import { currentLock, ownerState, type LockKind, type LockOwner } from '../store/lock.js';
import { readManifest } from '../store/manifest.js';
import { lockDevice, lockPathFor, openRunFor, outOfRunDir } from '../store/open.js';
import { listRuns, readRunJson, type RunEnd, type RunJson } from '../store/run.js';
import { AdbDevicePort } from './adb-port.js';
import { hostLockBase, lockDeviceOnHost } from './host-lock.js';
import type { AgentSettings } from './port.js';
import { notReady } from './pull.js';
import { CollectWorker, type WorkerResult, type WorkerStatus } from './worker.js';

/** Options only tests and lab tooling use (hidden on the command line). */
export interface TestHooks {
  kmemleakPath?: string;
  skipDoctorWithRoot?: RootMethod;
  pollMs?: number;
}

export interface SessionBase {
  adb: Adb;
  out: string;
  logLevel: LogLevel;
  /** Process-level logger (stderr); each run also logs into its own kml.log. */
  log: Logger;
  /** The command line, recorded in run.json and the lock. */
  command: string;
  agentDir?: string;
  minFreeKb?: number;
  /** May doctor and root detection run `adb root` (default true; --no-adb-root)? */
  allowAdbRoot?: boolean;
  /** Host bytes kept free beyond a snapshot before pulling pauses. */
  reserveBytes?: number;
  test?: TestHooks;
  /** Where run logs also go: 'json' → JSON lines on stderr (not a TTY), 'none'. */
  stderrLogs: 'json' | 'pretty' | 'none';
}

export interface CollectRequest extends SessionBase {
  agent: Omit<AgentSettings, 'count'>;
  count?: number;
  durationMs?: number;
  detach?: boolean;
  resume?: string;
  newRun?: boolean;
  onStatus?: (st: WorkerStatus) => void;
}

export interface DeviceOutcome {
  serial: string;
  exitCode: number;
  runDir?: string;
  resumed?: boolean;
  end?: RunEnd;
  status?: WorkerStatus;
  error?: { message: string; hint?: string };
}

function runLogger(base: SessionBase, runDir: string, serial: string): Logger {
  return createLogger({
    level: base.logLevel,
    file: path.join(runDir, RUN_LOG),
    pretty: base.stderrLogs === 'pretty',
    jsonToStderr: base.stderrLogs === 'json',
  }).child({ serial });
}

function portFor(base: SessionBase, serial: string, log: Logger): AdbDevicePort {
  return new AdbDevicePort({
    adb: base.adb,
    serial,
    log,
    outDir: base.out,
    agentDir: base.agentDir,
    kmemleakPath: base.test?.kmemleakPath,
    skipDoctorWithRoot: base.test?.skipDoctorWithRoot,
    minFreeKb: base.minFreeKb,
    allowAdbRoot: base.allowAdbRoot,
  });
}

/** Both locks: host-wide for the device, then the store's. Released together. */
async function lockBoth(base: SessionBase, out: string, serial: string, kind: LockKind): Promise<{ release(): Promise<void> }> {
  const onHost = await lockDeviceOnHost(base.adb.endpoint.port, serial, base.command, kind);
  try {
    const inStore = await lockDevice(out, serial, base.command, kind);
    return { release: async () => { await inStore.release().catch(() => {}); await onHost?.release().catch(() => {}); } };
  } catch (e) {
    await onHost?.release().catch(() => {});
    throw e;
  }
}

function outcomeOf(serial: string, e: unknown): DeviceOutcome {
  if (isKmlError(e)) return { serial, exitCode: e.exitCode, error: { message: e.message, hint: e.hint } };
  return { serial, exitCode: ExitCode.INTERNAL, error: { message: `internal error: ${(e as Error)?.message ?? String(e)}` } };
}

/** `kml collect` for one device. Resolves (never rejects) with the device's outcome. */
export async function collectOne(req: CollectRequest, serial: string, stop: AbortSignal): Promise<DeviceOutcome> {
  let lock: { release(): Promise<void> } | undefined;
  let runDir: string | undefined;
  try {
    const out = req.resume ? await outOfRunDir(req.resume, serial) : req.out;
    lock = await lockBoth(req, out, serial, 'collect');
    const port = portFor({ ...req, out }, serial, req.log.child({ serial }));
    req.log.info({ serial }, 'checking the device (kml doctor)');
    const doc = await port.doctor();
    if (!doc.ready) throw notReady(doc.text, doc.exitCode, doc.summary);
    const opened = await openRunFor({
      out, serial, resume: req.resume, newRun: req.newRun, command: req.command,
      settings: {
        intervalS: req.agent.intervalS, scanProtocol: req.agent.protocol, scanWaitS: req.agent.scanWaitS,
        count: req.count ?? null, durationS: req.durationMs !== undefined ? req.durationMs / 1000 : null, device: doc.facts,
      },
    });
    const run = opened!.run;
    runDir = run.dir;
    const log = runLogger(req, run.dir, serial);
    log.info({ runDir: run.dir, resumed: opened!.resumed, recovered: run.recovered, command: req.command }, opened!.resumed ? 'run resumed' : 'run created');
    if (run.recovered.tornManifestLine) log.warn({ torn: run.recovered.tornManifestLine }, 'cut an incomplete manifest line left by a crash');
    port.useLogger(log);
    const worker = new CollectWorker(port, run, opened!.index, log, {
      agent: req.agent, count: req.count, durationMs: req.durationMs, detach: req.detach,
      pollMs: req.test?.pollMs, reserveBytes: req.reserveBytes,
    });
    if (req.onStatus) worker.on('status', req.onStatus);
    await worker.start(doc);
    const r: WorkerResult = await worker.run(stop);
    return {
      serial, exitCode: r.exitCode, runDir: run.dir, resumed: opened!.resumed, end: r.end, status: r.status,
      error: r.error ? { message: r.error.message, hint: r.error.hint } : undefined,
    };
  } catch (e) {
    return { ...outcomeOf(serial, e), runDir };
  } finally {
    await lock?.release().catch(() => {});
  }
}

/** Several devices at once: one worker each; the exit code is the first failing device's. */
export async function collectAll(req: CollectRequest, serials: string[], stop: AbortSignal): Promise<{ exitCode: number; devices: DeviceOutcome[] }> {
  return summary(await Promise.all(serials.map((s) => collectOne(req, s, stop))));
}

function summary(devices: DeviceOutcome[]): { exitCode: number; devices: DeviceOutcome[] } {
  const failed = devices.find((d) => d.exitCode !== ExitCode.OK);
  return { exitCode: failed?.exitCode ?? ExitCode.OK, devices };
}

/**
 * `kml collect --all`: every device in state "device" now, and every one that gets there later (a
 * phone plugged in or booted, a lab device started, one that was offline or unauthorized at
 * start), one worker each, for as long as any worker runs: until stopped, or until each has
 * reached its --count/--duration. A device is started once: its worker follows it through
 * reboots and drops, and one that failed (doctor said no) is not retried.
 */
export async function collectFollowing(req: CollectRequest, stop: AbortSignal): Promise<{ exitCode: number; devices: DeviceOutcome[] }> {
  const watcher = new DeviceWatcher(req.adb, { log: req.log });
  const started = new Map<string, Promise<DeviceOutcome>>();
  let joined: () => void = () => {};
  const start = (serial: string, state: DeviceState): void => {
    if (!isOnline(state) || started.has(serial) || stop.aborted) return;
    if (started.size > 0) req.log.info({ serial }, 'device joined: collecting from it too');
    let outcome: Promise<DeviceOutcome>;
    try {
      validateSerial(serial); // the adb server's list names devices by what they report: not a path yet
      outcome = collectOne(req, serial, stop);
    } catch (e) {
      outcome = Promise.resolve(outcomeOf(serial, e));
    }
    started.set(serial, outcome);
    joined();
  };
  watcher.on('state', (serial, state) => start(serial, state));
  await req.adb.listDevices(); // an adb server that cannot be reached is an error here (the watcher only logs it)
  try {
    await watcher.start(); // its first poll starts the devices online now
    if (started.size === 0) throw new KmlError(ExitCode.DEVICE, 'no device in state "device" is attached', { hint: 'check `kml devices`' });
    for (;;) {
      const n = started.size;
      const more = new Promise<void>((resolve) => { joined = resolve; });
      await Promise.race([Promise.all(started.values()), more]);
      if (started.size === n) break; // every worker is done and none joined meanwhile
    }
  } finally {
    watcher.stop();
  }
  return summary(await Promise.all(started.values()));
}

// ------------------------------------------------------------------------------------- pull

export interface PullRequest extends SessionBase {
  resume?: string;
}

/** `kml pull`: one pass, exactly once, agent untouched. */
export async function pullOne(req: PullRequest, serial: string): Promise<DeviceOutcome> {
  let lock: { release(): Promise<void> } | undefined;
  try {
    const out = req.resume ? await outOfRunDir(req.resume, serial) : req.out;
    lock = await lockBoth(req, out, serial, 'pull');
    const probe = portFor({ ...req, out }, serial, req.log.child({ serial }));
    await probe.attach();
    const waiting = await probe.listComplete();
    const opened = await openRunFor({ out, serial, resume: req.resume, noCreate: waiting.length === 0, command: req.command, settings: {} });
    if (!opened) return { serial, exitCode: ExitCode.OK, status: undefined, error: undefined };
    const log = runLogger(req, opened.run.dir, serial);
    const port = probe.useLogger(log);
    const worker = new CollectWorker(port, opened.run, opened.index, log, { agent: { intervalS: opened.run.json.intervalS ?? 600, scanWaitS: 5, protocol: 'double' } });
    const r = await worker.pullOnce();
    log.info({ stored: r.status.stored, waiting: r.status.waitingOnDevice }, 'kml pull done');
    return { serial, exitCode: r.exitCode, runDir: opened.run.dir, resumed: opened.resumed, status: r.status, error: r.error ? { message: r.error.message, hint: r.error.hint } : undefined };
  } catch (e) {
    return outcomeOf(serial, e);
  } finally {
    await lock?.release().catch(() => {});
  }
}

// ------------------------------------------------------------------------------------- stop

export interface StopRequest extends SessionBase {
  /** How long to wait for a running collector to finish its final pull. */
  waitMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait until process `pid` no longer holds the lock `base` (released, or it died): false after waitMs. */
async function lockReleased(base: string, pid: number, waitMs: number): Promise<boolean> {
  const end = Date.now() + waitMs;
  for (;;) {
    const cur = await currentLock(base);
    if (!cur || cur.owner.pid !== pid || ownerState(cur.owner) !== 'alive') return true;
    if (Date.now() > end) return false;
    await sleep(250);
  }
}

/**
 * `kml stop`: if a collector on this host drives the device, SIGTERM it and wait (it stops the
 * agent, pulls what is left and closes the run); else do that here.
 */
export async function stopOne(req: StopRequest, serial: string): Promise<DeviceOutcome & { collectorPid?: number }> {
  // The device's collector: found through this store's lock, else the host-wide one (it may
  // store into another --out; it then does its final pull there).
  const bases = [lockPathFor(req.out, serial), hostLockBase(req.adb.endpoint.port, serial)].filter((b): b is string => Boolean(b));
  let lockBase = bases[0];
  let held = await currentLock(lockBase);
  if (!(held && ownerState(held.owner) === 'alive') && bases[1]) {
    const other = await currentLock(bases[1]);
    if (other && ownerState(other.owner) === 'alive') { lockBase = bases[1]; held = other; }
  }
  if (held && ownerState(held.owner) === 'alive' && held.owner.pid !== process.pid && held.owner.kind !== undefined && held.owner.kind !== 'collect') {
    // A one-shot `kml pull` / `kml stop` holds the device: it is not asked to stop (it would be
    // killed mid-pull); it lets go by itself, then this stop goes on here.
    const pid = held.owner.pid;
    if (!(await lockReleased(lockBase, pid, req.waitMs))) {
      return { ...outcomeOf(serial, new KmlError(ExitCode.CONFLICT, `\`${held.owner.command}\` (pid ${pid}) still holds the device after ${Math.round(req.waitMs / 1000)} s`, { hint: 'let it finish, then run kml stop again' })) };
    }
    held = undefined;
  }
  if (held && ownerState(held.owner) === 'alive' && held.owner.pid !== process.pid) {
    const pid = held.owner.pid;
    req.log.info({ serial, pid }, 'asking the running collector to stop');
    try {
      process.kill(pid, 'SIGTERM');
    } catch (e) {
      return { ...outcomeOf(serial, new KmlError(ExitCode.CONFLICT, `cannot signal the collector (pid ${pid}): ${(e as Error).message}`)), collectorPid: pid };
    }
    if (!(await lockReleased(lockBase, pid, req.waitMs))) {
      return { ...outcomeOf(serial, new KmlError(ExitCode.CONFLICT, `the collector (pid ${pid}) has not finished after ${Math.round(req.waitMs / 1000)} s`, { hint: 'it may still be pulling; check `kml status`' })), collectorPid: pid };
    }
    if (lockBase !== bases[0]) {
      // It stored into another --out: its run there is its own business.
      return { serial, exitCode: ExitCode.OK, collectorPid: pid };
    }
    const latest = await latestRun(req.out, serial);
    const endRec = latest?.json.ended;
    return { serial, exitCode: endRec?.clean ? ExitCode.OK : ExitCode.DEVICE, runDir: latest?.dir, end: endRec, collectorPid: pid,
      error: endRec?.clean ? undefined : { message: endRec?.message ?? 'the collector exited without closing its run' } };
  }
  let lock: { release(): Promise<void> } | undefined;
  try {
    lock = await lockBoth(req, req.out, serial, 'stop');
    const probe = portFor(req, serial, req.log.child({ serial }));
    await probe.attach();
    const waiting = await probe.listComplete();
    const opened = await openRunFor({ out: req.out, serial, noCreate: waiting.length === 0, command: req.command, settings: {} });
    if (!opened) {
      await probe.stopAgent();
      return { serial, exitCode: ExitCode.OK };
    }
    const log = runLogger(req, opened.run.dir, serial);
    const port = probe.useLogger(log);
    const worker = new CollectWorker(port, opened.run, opened.index, log, { agent: { intervalS: opened.run.json.intervalS ?? 600, scanWaitS: 5, protocol: 'double' }, finalTimeoutMs: req.waitMs });
    const r = await worker.finish('stop');
    return { serial, exitCode: r.exitCode, runDir: opened.run.dir, end: r.end, status: r.status, error: r.error ? { message: r.error.message, hint: r.error.hint } : undefined };
  } catch (e) {
    return outcomeOf(serial, e);
  } finally {
    await lock?.release().catch(() => {});
  }
}

// ----------------------------------------------------------------------------------- status

export interface StatusReport {
  serial: string;
  collector: { running: boolean; pid?: number; startedAt?: string; command?: string; stale?: boolean };
  run?: { dir: string; runId: string; started: string; ended?: RunEnd; stored: number; conflicts: number; boots: number; last?: { seq: number; bootId: string; pulledAt: string; leakCount?: number | null } };
  device: {
    state: string;
    agent?: { alive: boolean; pid?: number; state?: string; lastCycleWall?: number; nextCycleWall?: number; lastError?: string; kmemleak?: string; freeKb?: number };
    waitingOnDevice?: number;
    skippedTotal?: number;
    error?: string;
  };
}

async function latestRun(out: string, serial: string): Promise<{ dir: string; json: RunJson } | undefined> {
  const runs = await listRuns(out, serial);
  for (let i = runs.length - 1; i >= 0; i--) {
    const dir = path.join(deviceDirOf(out, serial), runs[i]);
    try {
      return { dir, json: await readRunJson(dir) };
    } catch {
      /* not a complete run folder */
    }
  }
  return undefined;
}

/** `kml status`: read-only; never restarts adbd, never takes the lock. */
export async function statusOne(req: SessionBase, serial: string): Promise<StatusReport> {
  const rep: StatusReport = { serial, collector: { running: false }, device: { state: 'unknown' } };
  let held = await currentLock(lockPathFor(req.out, serial));
  const hostBase = hostLockBase(req.adb.endpoint.port, serial);
  if ((!held || ownerState(held.owner) === 'dead') && hostBase) {
    const other = await currentLock(hostBase);
    if (other && ownerState(other.owner) !== 'dead') held = other;
  }
  if (held) {
    const state = ownerState(held.owner);
    const o: LockOwner = held.owner;
    rep.collector = { running: state !== 'dead', pid: o.pid, startedAt: o.startedAt, command: o.command, stale: state === 'dead' || undefined };
  }
  const latest = await latestRun(req.out, serial);
  if (latest) {
    const m = await readManifest(path.join(latest.dir, MANIFEST));
    const mine = m.entries.filter((e) => e.runId === latest.json.runId);
    const last = mine.filter((e) => !e.conflict).pop();
    rep.run = {
      dir: latest.dir, runId: latest.json.runId, started: latest.json.started, ended: latest.json.ended,
      stored: mine.filter((e) => !e.conflict).length, conflicts: mine.filter((e) => e.conflict).length, boots: latest.json.boots.length,
      last: last ? { seq: last.seq, bootId: last.bootId, pulledAt: last.pulledAt, leakCount: last.leakCount } : undefined,
    };
  }
  try {
    rep.device.state = await req.adb.getState(serial);
    if (!isOnline(rep.device.state)) return rep;
    const port = portFor(req, serial, req.log.child({ serial }));
    await port.attach({ allowAdbRoot: false });
    const st = await port.agentStatus();
    const hb = st.heartbeat ?? {};
    const n = (v?: string) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);
    rep.device.agent = {
      alive: st.alive, pid: st.pid, state: hb.state, lastCycleWall: n(hb.last_cycle_wall), nextCycleWall: n(hb.next_cycle_wall),
      lastError: hb.last_error || undefined, kmemleak: hb.kmemleak, freeKb: n(hb.free_kb),
    };
    rep.device.skippedTotal = st.skippedTotal;
    rep.device.waitingOnDevice = (await port.listComplete()).length;
  } catch (e) {
    rep.device.error = (e as Error).message;
  }
  return rep;
}
