// Follow device states: adbkit's tracker (host:track-devices) for prompt news, plus polling,
// because the tracker can lag (adb 29 reported a TCP device offline only at reconnect) and dies
// when the adb server restarts. Emits 'state' (serial, state, previous) with 'absent' on removal.
import { EventEmitter } from 'node:events';
import type { Logger } from '../log.js';
import type { Adb } from './client.js';
import { ABSENT, type DeviceState } from './device-list.js';

type Tracker = Awaited<ReturnType<ReturnType<Adb['trackingClient']>['trackDevices']>>;

export interface DeviceWatcherOptions {
  /** Poll host:devices this often (ms) in addition to the tracker. Default 5000; 0 disables. */
  pollMs?: number;
  /** Tracker restart backoff bounds (ms). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  log?: Logger;
}

export interface DeviceWatcherEvents {
  state: [serial: string, state: DeviceState, previous: DeviceState];
  error: [error: Error];
}

export class DeviceWatcher extends EventEmitter<DeviceWatcherEvents> {
  private readonly states = new Map<string, DeviceState>();
  private tracker?: Tracker;
  private stopped = true;
  private pollTimer?: NodeJS.Timeout;
  private restartTimer?: NodeJS.Timeout;
  private backoff: number;
  private readonly opts: Required<Omit<DeviceWatcherOptions, 'log'>> & { log?: Logger };

  constructor(private readonly adb: Adb, options: DeviceWatcherOptions = {}) {
    super();
    this.opts = { pollMs: options.pollMs ?? 5_000, minBackoffMs: options.minBackoffMs ?? 500, maxBackoffMs: options.maxBackoffMs ?? 10_000, log: options.log };
    this.backoff = this.opts.minBackoffMs;
    // An 'error' event without listeners would throw; errors here are informational.
    this.on('error', () => {});
  }

  /** Current known state of a serial ('absent' if never seen or removed). */
  state(serial: string): DeviceState {
    return this.states.get(serial) ?? ABSENT;
  }

  snapshot(): Map<string, DeviceState> {
    return new Map(this.states);
  }

  private set(serial: string, state: DeviceState): void {
    const prev = this.states.get(serial) ?? ABSENT;
    if (prev === state) return;
    if (state === ABSENT) this.states.delete(serial); else this.states.set(serial, state);
    this.emit('state', serial, state, prev);
  }

  /** Replace the whole picture with a full list (poll result or tracker changeSet base). */
  private apply(list: ReadonlyArray<{ serial: string; state: DeviceState }>): void {
    const seen = new Set<string>();
    for (const d of list) { seen.add(d.serial); this.set(d.serial, d.state); }
    for (const s of [...this.states.keys()]) if (!seen.has(s)) this.set(s, ABSENT);
  }

  /** Start tracking; resolves after the first poll so state() is meaningful at once. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    await this.pollOnce();
    this.startTracker();
    if (this.opts.pollMs > 0) {
      this.pollTimer = setInterval(() => { void this.pollOnce(); }, this.opts.pollMs);
      this.pollTimer.unref?.();
    }
  }

  private async pollOnce(): Promise<void> {
    try {
      this.apply(await this.adb.listDevices({ timeoutMs: 5_000 }));
    } catch (e) {
      this.opts.log?.debug({ err: { message: (e as Error).message } }, 'device poll failed');
      this.emit('error', e as Error);
    }
  }

  private startTracker(): void {
    if (this.stopped) return;
    this.adb.trackingClient().trackDevices().then((tr) => {
      // Listeners go on synchronously here, or the initial 'add' events are missed.
      if (this.stopped) { tr.end(); return; }
      this.tracker = tr;
      tr.on('add', (d: { id: string; type: string }) => this.set(d.id, d.type));
      tr.on('change', (d: { id: string; type: string }) => this.set(d.id, d.type));
      tr.on('remove', (d: { id: string }) => this.set(d.id, ABSENT));
      tr.on('changeSet', () => { this.backoff = this.opts.minBackoffMs; });
      tr.on('error', (e: Error) => {
        this.opts.log?.debug({ err: { message: e.message } }, 'device tracker error');
        this.emit('error', e);
      });
      tr.on('end', () => {
        if (this.tracker === tr) this.tracker = undefined;
        this.scheduleRestart();
      });
    }, (e: Error) => {
      this.opts.log?.debug({ err: { message: e.message } }, 'device tracker could not start');
      this.emit('error', e);
      this.scheduleRestart();
    });
  }

  private scheduleRestart(): void {
    if (this.stopped || this.restartTimer) return;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.maxBackoffMs);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.pollOnce().then(() => this.startTracker());
    }, wait);
    this.restartTimer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.pollTimer = undefined;
    this.restartTimer = undefined;
    const tr = this.tracker;
    this.tracker = undefined;
    tr?.end();
  }
}
