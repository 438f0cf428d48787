// The puller for one device: keeps its agent alive, pulls what it publishes, rides out
// disconnects, reboots, adb server restarts and a full host disk, and ends the run cleanly.
//
//   loop: boot_id changed? → doctor again (re-root, remount debugfs), restart the agent
//         agent dead?      → restart it (adbd restarts kill it)
//         pull pass        → every complete snapshot, oldest first, exactly once
//         adb trouble      → wait for the device (reconnecting TCP serials), then carry on
//         host disk full   → pause pulling (the agent keeps the snapshots), poll free space
//   end:  --count / --duration / stop signal → stop the agent, final pull, close the run
import { EventEmitter } from 'node:events';
import { AdbError } from '../adb/index.js';
import { ExitCode, KmlError, errnoCode, isKmlError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SnapshotIndex } from '../store/dedup.js';
import { endRun, type OpenRun, type RunEnd } from '../store/run.js';
import type { CommitStep } from '../store/snapshot.js';
import type { AgentSettings, DevicePort, DoctorOutcome } from './port.js';
import { isHostFull, pullPass, type PassResult, type PullContext } from './pull.js';
import { SkipRecorder } from './skipped.js';

export type WorkerState =
  | 'starting' | 'collecting' | 'waiting-device' | 'host-full' | 'rebooted' | 'stopping' | 'done' | 'failed';

export interface WorkerStatus {
  serial: string;
  state: WorkerState;
  runDir: string;
  bootId?: string;
  /** Snapshots stored in this run (conflicting copies not counted). */
  stored: number;
  conflicts: number;
  /** Snapshots found already stored (re-seen after a crash) and deleted on the device. */
  alreadyStored: number;
  lastSeq?: number;
  lastLeaks?: number | null;
  lastPulledAt?: string;
  agentAlive?: boolean;
  agentPid?: number;
  lastCycleWall?: number;
  nextCycleWall?: number;
  skippedTotal?: number;
  /** Complete snapshots on the device after the last pass. */
  waitingOnDevice?: number;
  /** Snapshots left on the device because they did not match their meta: seq → reason. */
  unverifiable: Record<number, string>;
  recoveries: { deviceLost: number; reboots: number; agentRestarts: number; hostFull: number };
  message?: string;
}

export interface WorkerOptions {
  agent: Omit<AgentSettings, 'count'>;
  /** End after this many snapshots are stored in the run. */
  count?: number;
  /** End this long after the run started (run.json `started`). */
  durationMs?: number;
  /** Start the agent, pull once, and leave it running. */
  detach?: boolean;
  /** How often to look for new snapshots (default: interval/4, 0.5–10 s). */
  pollMs?: number;
  reserveBytes?: number;
  /** Give up on a lost device after this long (default: never, until the end condition). */
  lostDeviceTimeoutMs?: number;
  /** How long the final pull may wait for a lost device (default 60 s). */
  finalTimeoutMs?: number;
  /** Test hook: crash simulation inside the store's write sequence. */
  onStep?: (step: CommitStep | 'before-delete', seq: number, detail?: string) => void | Promise<void>;
}

export interface WorkerResult {
  exitCode: number;
  end?: RunEnd;
  status: WorkerStatus;
  error?: KmlError;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Is this transport trouble (device gone, offline, server restarting, a dropped or stalled
 * connection)? Then kml waits for the device. A device that answers but refuses an operation
 * (a command exits non-zero, the agent does not come up, a sync FAIL) is not: kml retries
 * that with a backoff instead.
 */
export function isDeviceTrouble(e: unknown): boolean {
  return e instanceof AdbError && !['command-failed', 'unsupported', 'remote-fail', 'no-such-file'].includes(e.kind);
}

export class CollectWorker extends EventEmitter<{ status: [WorkerStatus] }> {
  readonly status: WorkerStatus;
  private readonly skip = new Map<number, string>();
  private readonly ctx: PullContext;
  private readonly pollMs: number;
  private hostFullLogged = false;
  private readonly skips: SkipRecorder;

  constructor(
    private readonly port: DevicePort,
    private readonly runFolder: OpenRun,
    index: SnapshotIndex,
    private readonly log: Logger,
    private readonly opts: WorkerOptions,
  ) {
    super();
    const stored = runFolder.entries.filter((e) => !e.conflict && e.runId === runFolder.json.runId);
    const last = stored[stored.length - 1];
    this.status = {
      serial: port.serial,
      state: 'starting',
      runDir: runFolder.dir,
      stored: stored.length,
      conflicts: runFolder.entries.filter((e) => e.conflict).length,
      alreadyStored: 0,
      lastSeq: last?.seq,
      lastLeaks: last?.leakCount,
      lastPulledAt: last?.pulledAt,
      unverifiable: {},
      recoveries: { deviceLost: 0, reboots: 0, agentRestarts: 0, hostFull: 0 },
    };
    this.ctx = { port, run: runFolder, index, log, reserveBytes: opts.reserveBytes, onStep: opts.onStep };
    this.pollMs = opts.pollMs ?? Math.min(10_000, Math.max(500, (opts.agent.intervalS * 1000) / 4));
    this.skips = new SkipRecorder(port, runFolder, log);
  }

  /**
   * Copy the agent's newly skipped cycles into the run (skipped.jsonl). A failure (device gone,
   * host disk full) is only logged: the next round tries again, the device keeps its log.
   */
  private async recordSkips(force: boolean): Promise<void> {
    try {
      await this.skips.sync(this.status.skippedTotal, force);
    } catch (e) {
      this.log.warn({ err: { message: (e as Error).message } }, 'could not record the agent\'s skipped cycles yet; retrying later');
    }
  }

  private update(patch: Partial<WorkerStatus>): void {
    Object.assign(this.status, patch);
    this.emit('status', this.status);
  }

  /** Cycles the agent should still run for --count: wanted − stored − waiting on the device. */
  private agentCount(waiting: number): number {
    if (!this.opts.count) return 0;
    return Math.max(0, this.opts.count - this.status.stored - waiting);
  }

  private countReached(): boolean {
    return this.opts.count !== undefined && this.status.stored >= this.opts.count;
  }

  private durationReached(): boolean {
    if (this.opts.durationMs === undefined) return false;
    return Date.now() - Date.parse(this.runFolder.json.started) >= this.opts.durationMs;
  }

  private account(pass: PassResult): void {
    for (const o of pass.outcomes) {
      if (o.kind === 'stored') {
        this.status.stored++;
        this.status.lastSeq = o.seq;
        this.status.lastLeaks = o.leakCount;
        this.status.lastPulledAt = new Date().toISOString();
      } else if (o.kind === 'conflict') {
        this.status.conflicts++;
      } else if (o.kind === 'already-stored') {
        this.status.alreadyStored++;
      } else if (o.kind === 'unverifiable') {
        this.status.unverifiable[o.seq] = o.reason;
      }
    }
    this.status.waitingOnDevice = pass.remaining;
    if (pass.hostFull) {
      if (!this.hostFullLogged) {
        this.status.recoveries.hostFull++;
        this.log.warn({ needBytes: pass.hostFull.need, freeBytes: pass.hostFull.free, runDir: this.runFolder.dir },
          'host disk nearly full: pulling paused (the device keeps its snapshots); resuming when space returns');
        this.hostFullLogged = true;
      }
      this.update({ state: 'host-full', message: `host disk full: ${Math.round(pass.hostFull.free / 1048576)} MiB free, need ${Math.round(pass.hostFull.need / 1048576)} MiB` });
    } else {
      if (this.hostFullLogged) this.log.info('host disk has room again: pulling resumed');
      this.hostFullLogged = false;
      this.update(this.status.state === 'stopping' ? {} : { state: 'collecting', message: undefined });
    }
  }

  /** Doctor said ready at start (the command ran it); remember its boot id and start the agent. */
  async start(first: DoctorOutcome): Promise<void> {
    this.update({ bootId: first.bootId ?? (await this.port.bootId()) });
    // before the agent runs: what skipped.log holds now belongs to earlier runs
    await this.skips.init().catch((e) => this.log.warn({ err: { message: (e as Error).message } }, 'could not read the agent\'s skipped.log'));
    await this.ensureAgent(true);
  }

  private async ensureAgent(initial: boolean): Promise<void> {
    const st = await this.port.agentStatus();
    this.noteAgent(st.alive, st.pid, st.heartbeat, st.skippedTotal);
    if (st.alive) return;
    // snapshots left on the device as unverifiable will not be stored: they do not count
    const waiting = (await this.port.listComplete()).filter((seq) => !this.skip.has(seq)).length;
    const count = this.agentCount(waiting);
    if (this.opts.count && count === 0) return; // enough cycles already ran; just pull
    const r = await this.port.startAgent({ ...this.opts.agent, count });
    if (!initial && r.started) {
      this.status.recoveries.agentRestarts++;
      this.log.warn({ pid: r.pid, count: count || undefined }, 'agent was not running (adbd restart or crash): restarted it');
    } else if (r.started) {
      this.log.info({ pid: r.pid, interval: this.opts.agent.intervalS, count: count || undefined, finished: r.finished || undefined }, 'agent started');
    }
    this.update({ agentAlive: !r.finished, agentPid: r.pid });
  }

  private noteAgent(alive: boolean, pid?: number, hb?: Record<string, string>, skipped?: number): void {
    const n = (v?: string) => (v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);
    this.update({
      agentAlive: alive,
      agentPid: pid,
      lastCycleWall: n(hb?.last_cycle_wall) ?? this.status.lastCycleWall,
      nextCycleWall: n(hb?.next_cycle_wall) ?? this.status.nextCycleWall,
      skippedTotal: skipped ?? this.status.skippedTotal,
    });
  }

  private async onReboot(newBoot: string, signal: AbortSignal): Promise<void> {
    this.status.recoveries.reboots++;
    this.log.warn({ from: this.status.bootId, to: newBoot }, 'device rebooted: checking it again and restarting the agent');
    this.update({ state: 'rebooted', agentAlive: false });
    let last: DoctorOutcome | undefined;
    for (let i = 0; i < 6 && !signal.aborted; i++) {
      last = await this.port.doctor();
      if (last.ready) break;
      this.log.warn({ attempt: i + 1, report: last.text }, 'device not ready after reboot; retrying');
      await sleep(10_000, signal);
    }
    if (!last?.ready) {
      throw new KmlError(last?.exitCode === ExitCode.DEVICE ? ExitCode.DEVICE : ExitCode.NOT_CAPABLE,
        'the device is no longer ready for kmemleak collection after a reboot', { hint: last?.text });
    }
    this.update({ bootId: newBoot });
    await this.ensureAgent(false);
  }

  /** One round: reboot check, agent check, pull pass. */
  private async tick(signal: AbortSignal): Promise<void> {
    const boot = await this.port.bootId();
    if (boot !== this.status.bootId) await this.onReboot(boot, signal);
    await this.ensureAgent(false);
    const pass = await pullPass(this.ctx, this.skip, signal);
    this.account(pass);
    await this.recordSkips(false);
  }

  /** Wait for a lost device; returns false when stopped or given up. */
  private async waitForDevice(e: unknown, signal: AbortSignal, limitMs?: number): Promise<boolean> {
    const lostAt = Date.now();
    this.status.recoveries.deviceLost++;
    this.log.warn({ err: { message: (e as Error).message } }, 'device unreachable: waiting for it to come back');
    this.update({ state: 'waiting-device', message: (e as Error).message });
    while (!signal.aborted) {
      if (limitMs !== undefined && Date.now() - lostAt >= limitMs) return false;
      try {
        await this.port.waitOnline(Math.min(30_000, limitMs ?? 30_000), signal);
        this.log.info({ afterMs: Date.now() - lostAt }, 'device connection re-established');
        this.update({ state: 'collecting', message: undefined });
        return true;
      } catch (err) {
        if (signal.aborted) return false;
        if (!isDeviceTrouble(err)) throw err;
        await sleep(1_000, signal);
      }
    }
    return false;
  }

  /**
   * Run until an end condition or `stop` aborts; then final pull and close the run.
   * `stopReason()` tells why stop was aborted ('signal' or 'stop').
   */
  async run(stop: AbortSignal, stopReason: () => RunEnd['reason'] = () => 'signal'): Promise<WorkerResult> {
    let reason: RunEnd['reason'] | undefined;
    let consecutiveErrors = 0;
    try {
      if (this.opts.detach) {
        await this.tick(stop);
        this.log.info('detached: the agent keeps running; `kml pull` / `kml stop` / `kml collect` continue this run');
        this.update({ state: 'done', message: 'detached' });
        return { exitCode: ExitCode.OK, status: this.status };
      }
      this.update({ state: 'collecting' });
      for (;;) {
        if (stop.aborted) { reason = stopReason(); break; }
        if (this.countReached()) { reason = 'count'; break; }
        if (this.durationReached()) { reason = 'duration'; break; }
        try {
          await this.tick(stop);
          consecutiveErrors = 0;
        } catch (e) {
          if (stop.aborted) continue;
          if (isDeviceTrouble(e)) {
            const back = await this.waitForDevice(e, stop, this.opts.lostDeviceTimeoutMs);
            if (!back && !stop.aborted) throw e;
            continue;
          }
          if (isHostFull(e)) {
            this.account({ outcomes: [], hostFull: { need: 0, free: 0 }, remaining: this.status.waitingOnDevice ?? 0 });
          } else if (e instanceof AdbError || (isKmlError(e) && (e.exitCode === ExitCode.DEVICE || e.exitCode === ExitCode.CONFLICT))) {
            // A device command failed (rm, agent launch): log, back off, try again next round.
            consecutiveErrors++;
            this.log.error({ err: { message: (e as Error).message }, consecutiveErrors }, 'device operation failed; retrying');
            await sleep(Math.min(30_000, this.pollMs * 2 ** Math.min(consecutiveErrors, 5)), stop);
          } else {
            throw e;
          }
        }
        await sleep(this.status.state === 'host-full' ? Math.min(this.pollMs, 2_000) : this.pollMs, stop);
      }
    } catch (e) {
      const err = isKmlError(e) ? e : errnoCode(e) ? new KmlError(ExitCode.IO, `local I/O failed: ${(e as Error).message}`, { cause: e })
        : new KmlError(ExitCode.INTERNAL, `internal error: ${(e as Error)?.message ?? String(e)}`, { cause: e });
      this.log.error({ err: { message: err.message, hint: err.hint, stack: (e as Error)?.stack } }, 'collector failed');
      const end: RunEnd = { at: new Date().toISOString(), reason: 'error', clean: false, message: err.message };
      await endRun(this.runFolder, { reason: 'error', clean: false, message: err.message }).catch(() => {});
      this.update({ state: 'failed', message: err.message });
      return { exitCode: err.exitCode, end, status: this.status, error: err };
    }
    return this.finish(reason);
  }

  /** Stop the agent, pull what is left, close the run (clean only if nothing is left behind). */
  async finish(reason: RunEnd['reason']): Promise<WorkerResult> {
    this.update({ state: 'stopping' });
    this.log.info({ reason }, 'stopping: final pull, then stop the agent');
    const limit = this.opts.finalTimeoutMs ?? 60_000;
    const deadline = Date.now() + limit;
    const giveUp = new AbortController();
    const timer = setTimeout(() => giveUp.abort(), limit);
    let agentStopped = false;
    let remaining: number | undefined;
    let lastErr: unknown;
    try {
      while (Date.now() < deadline) {
        try {
          if (!agentStopped) {
            await this.port.stopAgent();
            agentStopped = true;
            this.update({ agentAlive: false });
          }
          const pass = await pullPass(this.ctx, this.skip, giveUp.signal);
          this.account(pass);
          await this.recordSkips(true);
          remaining = pass.remaining;
          if (pass.hostFull) lastErr = new KmlError(ExitCode.IO, 'host disk full during the final pull');
          break;
        } catch (e) {
          lastErr = e;
          if (!isDeviceTrouble(e)) break;
          const back = await this.waitForDevice(e, giveUp.signal, Math.max(0, deadline - Date.now()));
          if (!back) break;
        }
      }
    } finally {
      clearTimeout(timer);
    }
    const unverifiable = Object.keys(this.status.unverifiable).length;
    const clean = agentStopped && remaining === 0 && unverifiable === 0;
    const left = remaining ?? this.status.waitingOnDevice;
    const message = clean ? undefined
      : !agentStopped ? `could not stop the agent: ${(lastErr as Error)?.message ?? 'device unreachable'}`
      : remaining !== 0 ? `${left ?? 'some'} snapshot(s) still on the device: run \`kml pull\` (or \`kml stop\`) when it is reachable`
      : `${unverifiable} snapshot(s) left on the device because they do not match their meta`;
    const end: RunEnd = { at: new Date().toISOString(), reason, clean, ...(message ? { message } : {}) };
    try {
      await endRun(this.runFolder, { reason, clean, ...(message ? { message } : {}) });
    } catch (e) {
      // run.json could not be rewritten (host disk full): the run stays open, i.e. resumable.
      this.log.error({ err: { message: (e as Error).message } }, 'could not record the end of the run in run.json');
      this.update({ state: 'done', message: `could not write run.json: ${(e as Error).message}` });
      return { exitCode: ExitCode.IO, end, status: this.status, error: new KmlError(ExitCode.IO, `could not record the end of the run: ${(e as Error).message}`, { hint: 'free some space; rerun the command to close the run' }) };
    }
    if (clean) this.log.info({ reason, stored: this.status.stored }, 'run closed');
    else this.log.warn({ reason, message }, 'run left open');
    this.update({ state: 'done', message });
    let exitCode: number = ExitCode.OK;
    if (!clean && lastErr) exitCode = isKmlError(lastErr) ? lastErr.exitCode : isDeviceTrouble(lastErr) ? ExitCode.DEVICE : isHostFull(lastErr) ? ExitCode.IO : ExitCode.INTERNAL;
    // Snapshots left on the device (unverifiable, or not pulled) without an error to blame: the run
    // did not end as asked, and a script must not read 0.
    let error = !clean && isKmlError(lastErr) ? lastErr : undefined;
    if (!clean && !lastErr) {
      exitCode = ExitCode.DEVICE;
      error = new KmlError(ExitCode.DEVICE, message ?? 'the run did not end cleanly', {
        hint: unverifiable ? `look at snapshots/${Object.keys(this.status.unverifiable).join(', ')} in the agent folder on the device; \`kml pull\` tries again` : 'run `kml pull` when the device is reachable',
      });
    }
    return { exitCode, end, status: this.status, error };
  }

  /** `kml pull`: one pass over what is complete now (no agent changes). */
  async pullOnce(): Promise<WorkerResult> {
    this.update({ state: 'collecting' });
    const pass = await pullPass(this.ctx, this.skip);
    this.account(pass);
    await this.recordSkips(true);
    this.update({ state: 'done' });
    if (pass.hostFull) {
      return { exitCode: ExitCode.IO, status: this.status, error: new KmlError(ExitCode.IO, 'host disk full: pulled what fitted', { hint: 'free some space and run `kml pull` again' }) };
    }
    return { exitCode: ExitCode.OK, status: this.status };
  }
}
