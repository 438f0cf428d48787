// The per-device supervisor: a detached process started by `kml lab up` that owns one lab device's
// QEMU, its QMP socket, the serial console (logged to console.log and used as the guest's control
// channel), the pluggable relay (the device's "USB cable") and the control socket the CLI talks to.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, renameSync, rmSync, statSync, unlinkSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import type { Logger } from '../log.js';
import { serveControl, type ControlReply, type ControlRequest } from './control.js';
import { GUEST_CFG_DIR, guestNode, type Share } from './guest-config.js';
import { QmpClient } from './qmp.js';
import { qemuArgs } from './qemu.js';
import { PluggableRelay } from './relay.js';
import { DeviceDir, pidAlive, takeOverSlot, releaseSlot, type DeviceConfig, type DeviceStatus } from './state.js';

const CONSOLE_LOG_MAX = 16 * 1024 * 1024;
const BOOT_TIMEOUT_MS = 180_000;

type Marker = { kind: 'adbd-listening' | 'adbd-exited' | 'adbd-log' | 'rcs-done' | 'shutdown-done' | 'ctl-done'; text: string; cmd?: string; rc?: number };

/** Recognise the guest's console markers (scripts/lab/guest/*). Kernel text may precede them on a line. */
export function parseConsoleLine(line: string): Marker | undefined {
  const ctl = /KMLCTL-DONE (\S+) rc=(\d+)/.exec(line);
  if (ctl) return { kind: 'ctl-done', text: line, cmd: ctl[1], rc: Number(ctl[2]) };
  if (line.includes('KML-ADBD-LISTENING')) return { kind: 'adbd-listening', text: line };
  if (line.includes('KML-ADBD-EXITED')) return { kind: 'adbd-exited', text: line };
  const log = /KML-ADBD-LOG (.*)$/.exec(line);
  if (log) return { kind: 'adbd-log', text: log[1] };
  if (line.includes('KML-RCS-DONE')) return { kind: 'rcs-done', text: line };
  if (line.includes('KML-SHUTDOWN-DONE')) return { kind: 'shutdown-done', text: line };
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export class Supervisor {
  private qemu?: ChildProcess;
  private qmp?: QmpClient;
  private relay?: PluggableRelay;
  private control?: net.Server;
  private consoleLog?: WriteStream;
  private consoleBuf = '';
  private status!: DeviceStatus;
  private qemuStartedAt = 0;
  private stopping = false;
  private readonly markerWaiters = new Set<(m: Marker) => void>();
  private qemuExit?: Promise<number | null>;
  private shares: Share[] = [];
  private qemuStderr = '';
  private lastResetAt = 0;
  private adbdExitsWhileBooting = 0;
  private adbdLogTail: string[] = [];
  private removeDataOnExit = false;

  constructor(private readonly dev: DeviceDir, private readonly config: DeviceConfig, private readonly log: Logger) {}

  async start(): Promise<void> {
    takeOverSlot(this.dev, process.pid);
    const now = new Date().toISOString();
    this.shares = guestNode(process.execPath).shares;
    this.shares.unshift({ tag: 'kmlcfg', hostPath: this.dev.cfgDir, guestPath: GUEST_CFG_DIR });

    // The relay first: its port is the device's serial. Keep the slot's previous port when free.
    let relayPort = 0;
    for (const wanted of [this.config.relayPort, 0]) {
      const relay = new PluggableRelay({ listenPort: wanted, targetPort: 0, onEvent: (ev, d) => this.log.info(d ?? {}, `relay ${ev}`) });
      try {
        relayPort = await relay.listen();
        this.relay = relay;
        break;
      } catch (e) {
        if (wanted === 0) throw e;
      }
    }
    this.status = {
      schemaVersion: 1,
      slot: this.config.slot,
      serial: `127.0.0.1:${relayPort}`,
      relayPort,
      forwardPort: 0,
      supervisorPid: process.pid,
      state: 'starting',
      plugged: true,
      bootCount: 0,
      accel: this.config.accel,
      kmemleak: this.config.options.kmemleak,
      build: this.config.options.build,
      memMb: this.config.options.memMb,
      startedAt: now,
      updatedAt: now,
    };
    this.saveStatus();

    for (const f of [this.dev.controlSocket, this.dev.qmpSocket]) {
      try {
        unlinkSync(f);
      } catch {
        // not there
      }
    }
    this.control = await serveControl(this.dev.controlSocket, (req) => this.handle(req));
    if (this.config.ownerPid) this.watchOwner(this.config.ownerPid);
    this.openConsoleLog();

    // QEMU's forward port is picked here and can be taken by someone else before QEMU binds it: retry.
    for (let attempt = 1; ; attempt++) {
      const forwardPort = await freePort();
      this.relay!.retarget(forwardPort);
      this.status.forwardPort = forwardPort;
      const exited = await this.startQemu(forwardPort);
      if (!exited) break;
      if (attempt >= 3 || !/host forwarding rule|Address already in use/i.test(this.qemuStderr)) {
        throw new Error(`QEMU exited at start: ${this.qemuStderr.trim().split('\n').slice(-3).join(' | ') || 'no message'}`);
      }
      this.log.warn({ forwardPort }, 'forward port was taken; retrying');
    }
  }

  private watchOwner(pid: number): void {
    const timer = setInterval(() => {
      if (pidAlive(pid)) return;
      clearInterval(timer);
      this.log.warn({ ownerPid: pid }, 'owner process is gone; stopping the device and removing its data disk');
      this.removeDataOnExit = true;
      void this.stop('owner exited');
    }, 2000);
    timer.unref();
  }

  /** Spawn QEMU; resolves true if it exited within its first second (a start failure). */
  private async startQemu(forwardPort: number): Promise<boolean> {
    const c = this.config;
    const args = qemuArgs({
      name: `kml-lab-${c.slot}`,
      accel: c.accel,
      cpus: c.options.cpus,
      memMb: c.options.memMb,
      kernel: c.bzImage,
      initramfs: c.initramfs,
      kmemleak: c.options.kmemleak,
      debugfsMounted: c.options.debugfsMounted,
      forwardPort,
      dataImage: this.dev.dataImage,
      shares: this.shares,
      qmpSocket: this.dev.qmpSocket,
      pidFile: this.dev.qemuPidFile,
    });
    this.log.info({ qemu: c.qemu, args }, 'starting QEMU');
    this.qemuStderr = '';
    const child = spawn(c.qemu, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.qemu = child;
    this.qemuStartedAt = Date.now();
    child.stdin!.on('error', () => {});
    child.stdout!.on('data', (d: Buffer) => this.onConsole(d));
    child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString('utf8');
      this.qemuStderr = (this.qemuStderr + text).slice(-8192);
      this.log.warn({ stderr: text.trim() }, 'qemu stderr');
    });
    this.qemuExit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const early = await Promise.race([this.qemuExit.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
    if (early) return true;

    this.status.qemuPid = child.pid;
    this.status.state = 'booting';
    this.status.bootCount = 1;
    this.status.bootStartedAt = new Date(this.qemuStartedAt).toISOString();
    this.saveStatus();
    void this.qemuExit.then((code) => this.onQemuExit(code));
    await this.connectQmp();
    return false;
  }

  private async connectQmp(): Promise<void> {
    for (let i = 0; i < 50 && !this.qmp; i++) {
      try {
        this.qmp = await QmpClient.connect(this.dev.qmpSocket);
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (!this.qmp) {
      this.log.warn('QMP socket not reachable; hard reset unavailable');
      return;
    }
    this.qmp.onEvent = (event, data) => {
      this.log.info({ event, data }, 'qmp event');
      if (event === 'RESET') {
        // A guest reboot (or our hard reset): a new boot of the same QEMU. One reboot emits a few
        // RESET events within milliseconds (firmware resets); count them as one.
        const now = Date.now();
        if (now - this.lastResetAt < 3000) return;
        this.lastResetAt = now;
        this.status.bootCount += 1;
        this.status.state = this.stopping ? 'stopping' : 'booting';
        this.status.bootStartedAt = new Date().toISOString();
        this.saveStatus();
      }
    };
  }

  private openConsoleLog(): void {
    try {
      if (statSync(this.dev.consoleLog).size > CONSOLE_LOG_MAX) renameSync(this.dev.consoleLog, `${this.dev.consoleLog}.1`);
    } catch {
      // no log yet
    }
    this.consoleLog = createWriteStream(this.dev.consoleLog, { flags: 'a' });
  }

  private onConsole(d: Buffer): void {
    this.consoleLog?.write(d);
    this.consoleBuf += d.toString('utf8');
    let nl: number;
    while ((nl = this.consoleBuf.indexOf('\n')) >= 0) {
      const line = this.consoleBuf.slice(0, nl).replace(/\r$/, '');
      this.consoleBuf = this.consoleBuf.slice(nl + 1);
      const m = parseConsoleLine(line);
      if (m) this.onMarker(m);
    }
    if (this.consoleBuf.length > 4096) this.consoleBuf = this.consoleBuf.slice(-4096);
  }

  private onMarker(m: Marker): void {
    this.log.info({ marker: m.kind, line: m.text }, 'guest');
    if (m.kind === 'adbd-listening') {
      const now = Date.now();
      if (this.status.state === 'booting' && this.status.bootStartedAt) {
        this.status.lastBootMs = now - Date.parse(this.status.bootStartedAt);
      }
      if (!this.stopping) this.status.state = 'running';
      this.status.adbdListeningAt = new Date(now).toISOString();
      this.saveStatus();
    }
    if (m.kind === 'adbd-log') this.adbdLogTail = [...this.adbdLogTail, m.text].slice(-3);
    if (m.kind === 'adbd-exited') {
      this.adbdExitsWhileBooting = this.status.state === 'booting' ? this.adbdExitsWhileBooting + 1 : 0;
      if (this.adbdExitsWhileBooting >= 5 && !this.stopping) {
        // Give the last log lines time to arrive, then give up on this boot.
        setTimeout(() => {
          this.status.error = `adbd keeps exiting in the guest: ${this.adbdLogTail.join(' | ') || 'no log'}`;
          void this.stop('adbd keeps exiting', 'failed');
        }, 300);
      }
    }
    if (m.kind === 'adbd-listening') this.adbdExitsWhileBooting = 0;
    if (m.kind === 'rcs-done' && this.status.state === 'running') {
      // A reboot we did not see as a RESET (no QMP): still a new boot.
      this.status.state = 'booting';
      this.saveStatus();
    }
    for (const w of [...this.markerWaiters]) w(m);
  }

  private waitMarker(pred: (m: Marker) => boolean, timeoutMs: number): Promise<Marker | undefined> {
    return new Promise((resolve) => {
      const waiter = (m: Marker) => {
        if (!pred(m)) return;
        clearTimeout(timer);
        this.markerWaiters.delete(waiter);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.markerWaiters.delete(waiter);
        resolve(undefined);
      }, timeoutMs);
      this.markerWaiters.add(waiter);
    });
  }

  private typeToGuest(line: string): void {
    this.qemu?.stdin?.write(`${line}\n`);
  }

  /** Send a KMLCTL command; resend if the guest's control loop did not answer (it may be restarting). */
  private async guestCommand(cmd: string, tries = 3, ackTimeoutMs = 3000): Promise<Marker | undefined> {
    for (let i = 0; i < tries; i++) {
      const ack = this.waitMarker((m) => m.kind === 'ctl-done' && m.cmd === cmd, ackTimeoutMs);
      this.typeToGuest(`KMLCTL ${cmd}`);
      const m = await ack;
      if (m) return m;
    }
    return undefined;
  }

  private saveStatus(): void {
    this.status.updatedAt = new Date().toISOString();
    this.status.plugged = this.relay?.isPlugged ?? true;
    try {
      this.dev.writeStatus(this.status);
    } catch (e) {
      this.log.error({ err: e }, 'cannot write status');
    }
  }

  private async handle(req: ControlRequest): Promise<ControlReply> {
    this.log.info({ req }, 'control request');
    switch (req.op) {
      case 'status':
        return { ok: true, status: this.status };
      case 'unplug': {
        const n = this.relay!.unplug();
        this.saveStatus();
        return { ok: true, connectionsReset: n, status: this.status };
      }
      case 'replug':
        this.relay!.replug();
        this.saveStatus();
        return { ok: true, status: this.status };
      case 'kill-adbd': {
        const listening = this.waitMarker((m) => m.kind === 'adbd-listening', 60_000);
        const ack = await this.guestCommand('kill-adbd');
        if (!ack) return { ok: false, error: 'the guest did not answer on its control channel' };
        if (ack.rc !== 0) return { ok: false, error: 'adbd was not running' };
        if (req.wait && !(await listening)) return { ok: false, error: 'adbd did not come back within 60 s' };
        return { ok: true, status: this.status };
      }
      case 'reboot':
        return this.reboot(Boolean(req.hard));
      case 'stop':
        setImmediate(() => void this.stop('stop requested'));
        return { ok: true };
      default:
        return { ok: false, error: `unknown op ${(req as { op?: unknown }).op}` };
    }
  }

  private async reboot(hard: boolean): Promise<ControlReply> {
    const before = this.status.bootCount;
    const t0 = Date.now();
    const listening = this.waitMarker((m) => m.kind === 'adbd-listening' && this.status.bootCount > before, BOOT_TIMEOUT_MS);
    let how = hard ? 'hard' : 'graceful';
    if (!hard) {
      const ack = await this.guestCommand('reboot', 2);
      if (!ack) how = 'hard (the guest did not answer)';
    }
    if (how.startsWith('hard')) {
      if (!this.qmp) return { ok: false, error: 'QMP unavailable: cannot reset the guest' };
      await this.qmp.execute('system_reset');
    }
    this.log.info({ how }, 'reboot');
    const m = await listening;
    if (!m) return { ok: false, error: `the device did not come back within ${BOOT_TIMEOUT_MS / 1000} s` };
    return { ok: true, bootMs: Date.now() - t0, status: this.status };
  }

  private onQemuExit(code: number | null): void {
    this.log.info({ code, stopping: this.stopping }, 'QEMU exited');
    if (!this.stopping) {
      this.status.error = `QEMU exited (code ${code}): the guest powered off or crashed; see ${this.dev.consoleLog}`;
      void this.stop('qemu exited', 'stopped');
    }
  }

  /** Power the guest off (cleanly if it listens), stop QEMU, close the relay, release the slot, exit. */
  async stop(reason: string, finalState: 'stopped' | 'failed' = 'stopped'): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ reason }, 'stopping');
    this.status.state = 'stopping';
    this.saveStatus();
    await this.relay?.close();
    const q = this.qemu;
    if (q && q.exitCode === null && q.signalCode === null) {
      const exited = this.qemuExit!;
      const timeout = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms));
      // A clean poweroff leaves /data's ext4 consistent; fall back to QMP quit, then SIGKILL.
      const ack = await this.guestCommand('poweroff', 2, 2000);
      this.log.info({ acknowledged: Boolean(ack) }, 'guest poweroff requested');
      if ((await Promise.race([exited, timeout(ack ? 15_000 : 1000)])) === 'timeout') {
        this.log.warn('guest did not power off; QMP quit');
        await Promise.race([this.qmp?.execute('quit').catch(() => undefined), timeout(2000)]);
        if ((await Promise.race([exited, timeout(5_000)])) === 'timeout') {
          this.log.warn('QEMU still running; SIGKILL');
          q.kill('SIGKILL');
          await exited;
        }
      }
    }
    this.qmp?.close();
    this.control?.close();
    for (const f of [this.dev.controlSocket, this.dev.qmpSocket, this.dev.qemuPidFile]) {
      try {
        unlinkSync(f);
      } catch {
        // already gone
      }
    }
    this.status.state = finalState;
    this.status.qemuPid = undefined;
    this.saveStatus();
    await new Promise<void>((r) => (this.consoleLog ? this.consoleLog.end(() => r()) : r()));
    if (this.removeDataOnExit) rmSync(this.dev.dataImage, { force: true });
    releaseSlot(this.dev);
    this.log.info('supervisor exiting');
    process.exit(0);
  }

  async fail(e: unknown): Promise<void> {
    const message = (e as Error)?.message ?? String(e);
    this.log.error({ err: e }, 'supervisor failed');
    if (this.status) {
      this.status.error = message;
      this.saveStatus();
      await this.stop('failure', 'failed');
    } else {
      const now = new Date().toISOString();
      this.dev.writeStatus({
        schemaVersion: 1, slot: this.config.slot, serial: '', relayPort: 0, forwardPort: 0, supervisorPid: process.pid,
        state: 'failed', plugged: false, bootCount: 0, accel: this.config.accel, kmemleak: this.config.options.kmemleak, build: this.config.options.build,
        memMb: this.config.options.memMb, startedAt: now, updatedAt: now, error: message,
      });
      releaseSlot(this.dev);
      process.exit(1);
    }
  }
}
