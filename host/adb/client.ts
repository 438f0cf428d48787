// Device access through the adb server, used by every other part of kml.
//
// - Always 127.0.0.1; the port comes from -P / ANDROID_ADB_SERVER_PORT (adbkit ignores ADB_PORT).
// - Two adbkit clients: one for request/response operations (an idle timeout as a safety net for
//   sockets we gave up on), one for device tracking (no idle timeout: an idle tracker is normal).
// - Every call has an explicit deadline; on expiry its socket is destroyed and an AdbError('timeout')
//   is thrown. Nothing waits forever.
// - Shell uses protocol v2 (real exit status, separate stderr) when the device advertises shell_v2,
//   else v1 with an exit-status marker. Sync (stat/list/pull/push) is spoken by kml itself.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import type { Socket } from 'node:net';
import adbkit from '@devicefarmer/adbkit';
import type { Client } from '@devicefarmer/adbkit';
import pRetry from 'p-retry';
import { ExitCode, KmlError } from '../errors.js';
import type { Logger } from '../log.js';
import { ABSENT, type DeviceEntry, type DeviceState, isOnline, parseDeviceList, stateWord } from './device-list.js';
import { AdbError, type AdbErrorContext, isTransientAdbError, toAdbError } from './errors.js';
import { encodeService, parseTcpSerial, shDisplay, shq, validateSerial } from './quote.js';
import { decodeShellPackets, encodeShellStdin, newSentinelNonce, parseV1Output, ShellPacket, wrapV1Command } from './shell-protocol.js';
import { SocketReader, writeAll } from './stream.js';
import { type RemoteEntry, type RemoteStat, syncList, syncRecv, syncSend, syncStat } from './sync-protocol.js';

const { Adb: AdbKit } = adbkit;
type Connection = Awaited<ReturnType<Client['connection']>>;

/** Default deadlines (ms). Tradefed uses 2 min per command; kml's calls are small and local. */
export const DEFAULT_TIMEOUTS = {
  host: 10_000,
  shell: 30_000,
  sync: 30_000,
  pull: 120_000,
  connect: 15_000,
  waitForDevice: 60_000,
} as const;

/** Sockets we abandoned (after our deadline) die after this much idle time. */
const OPS_IDLE_TIMEOUT_MS = 120_000;
const FEATURES_TTL_MS = 30_000;
const DEFAULT_MAX_OUTPUT = 256 * 1024 * 1024;

export interface AdbEndpoint {
  host: string;
  port: number;
  /** adb binary adbkit runs as `adb -P PORT start-server` when nothing listens on the port. */
  bin: string;
}

/** -P / ANDROID_ADB_SERVER_PORT / 5037, on loopback, like adb itself (ADB_PORT is not adb's variable). */
export function resolveAdbEndpoint(opts: { port?: number | string; bin?: string } = {}): AdbEndpoint {
  const text = opts.port ?? process.env.ANDROID_ADB_SERVER_PORT ?? '5037';
  const port = Number(text);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new KmlError(ExitCode.USAGE, `invalid adb server port: ${JSON.stringify(String(text))}`, { hint: 'use -P PORT or ANDROID_ADB_SERVER_PORT=PORT (1-65535)' });
  }
  return { host: '127.0.0.1', port, bin: opts.bin ?? process.env.KML_ADB_BIN ?? 'adb' };
}

export interface ShellOptions {
  timeoutMs?: number;
  /** Bytes for the command's stdin (v2: streamed; v1: piped in via printf, text only). */
  stdin?: Buffer | string;
  /** Force a protocol (tests, or devices with a broken shell_v2). Default: v2 when advertised. */
  protocol?: 'v1' | 'v2';
  maxOutputBytes?: number;
}

export interface ShellResult {
  stdout: string;
  /** Empty under protocol v1, where stderr arrives merged into stdout. */
  stderr: string;
  exitCode: number;
  protocol: 'v1' | 'v2';
  stdoutBytes: Buffer;
}

export interface PullResult {
  bytes: number;
  sha256: string;
  /** Size the device reported before the transfer (undefined when verifySize is off). */
  remoteSize?: number;
}

export interface WaitOptions {
  timeoutMs?: number;
  pollMs?: number;
  /** For TCP serials: re-issue `adb connect` this often while the serial is absent. */
  reconnectEveryMs?: number;
  signal?: AbortSignal;
  /** Called whenever the observed state changes (for progress/logs). */
  onState?: (state: DeviceState) => void;
}

interface Scope {
  signal: AbortSignal;
  /** Take a pending adbkit Connection: destroyed at the deadline or when the call ends. */
  adopt(p: PromiseLike<Connection>): Promise<{ socket: Socket; reader: SocketReader }>;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    // The listener goes when the timer fires: the signal lives for the whole run and a device
    // waited for overnight is polled twice a second (a listener per poll otherwise piles up).
    const onAbort = () => { clearTimeout(t); resolve(); };
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function shortCmd(cmd: string): string {
  const one = cmd.replace(/\s+/g, ' ').trim();
  return one.length > 80 ? `${one.slice(0, 77)}...` : one;
}

export class Adb {
  readonly endpoint: AdbEndpoint;
  private readonly ops: Client;
  private trackClient?: Client;
  private readonly log?: Logger;
  private readonly featureCache = new Map<string, { at: number; features: string[] }>();

  constructor(endpoint: AdbEndpoint = resolveAdbEndpoint(), opts: { log?: Logger } = {}) {
    this.endpoint = endpoint;
    this.log = opts.log;
    this.ops = this.newClient(OPS_IDLE_TIMEOUT_MS);
  }

  private newClient(timeout?: number): Client {
    const c = AdbKit.createClient({ host: this.endpoint.host, port: this.endpoint.port, bin: this.endpoint.bin, ...(timeout ? { timeout } : {}) });
    // Without a listener, a socket error on any adbkit connection crashes Node.
    c.on('error', (e: Error) => this.log?.debug({ err: { message: e.message } }, 'adb socket error'));
    return c;
  }

  /** The client for trackDevices(): no idle timeout (a quiet tracker is healthy). */
  trackingClient(): Client {
    this.trackClient ??= this.newClient(undefined);
    return this.trackClient;
  }

  private ctx(serial?: string, op?: string): AdbErrorContext {
    return { serial, op, host: this.endpoint.host, port: this.endpoint.port };
  }

  /** Run `fn` with a deadline; every connection it adopts is destroyed at the end or on expiry. */
  private async withDeadline<T>(timeoutMs: number, ctx: AdbErrorContext, fn: (scope: Scope) => Promise<T>): Promise<T> {
    const ac = new AbortController();
    const owned = new Set<Socket>();
    let timer: NodeJS.Timeout | undefined;
    const scope: Scope = {
      signal: ac.signal,
      adopt: async (p) => {
        // If the deadline passes before the connection arrives, destroy it when it does.
        Promise.resolve(p).then((c) => { if (ac.signal.aborted) c.socket.destroy(); }, () => {});
        const conn = await p;
        if (ac.signal.aborted) { conn.socket.destroy(); throw new AdbError('timeout', 'deadline passed'); }
        conn.socket.setTimeout(0); // our deadline governs this socket, not adbkit's idle timeout
        owned.add(conn.socket);
        return { socket: conn.socket, reader: new SocketReader(conn.socket) };
      },
    };
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        ac.abort();
        for (const s of owned) s.destroy();
        const what = ctx.op ? `${ctx.op}: ` : '';
        reject(new AdbError('timeout', `${what}no answer within ${timeoutMs} ms${ctx.serial ? ` from device ${JSON.stringify(ctx.serial)}` : ''}`, {
          serial: ctx.serial,
          hint: 'the device or adb server is slow or stuck; check `adb devices` and retry',
        }));
      }, timeoutMs);
    });
    try {
      return await Promise.race([fn(scope), expired]);
    } catch (e) {
      throw toAdbError(e, ctx);
    } finally {
      clearTimeout(timer);
      for (const s of owned) s.destroy();
    }
  }

  private async openHost(scope: Scope, service: string) {
    const io = await scope.adopt(this.ops.connection());
    await writeAll(io.socket, encodeService(service));
    await io.reader.expectOkay();
    return io;
  }

  private async openDevice(scope: Scope, serial: string, service: string) {
    const io = await scope.adopt(this.ops.getDevice(serial).transport());
    await writeAll(io.socket, encodeService(service));
    await io.reader.expectOkay();
    return io;
  }

  // ---------------------------------------------------------------- host services

  /** A host request answered by OKAY + hex4-length value (host:devices, host-serial:S:features, ...). */
  async hostQuery(service: string, opts: { timeoutMs?: number; serial?: string; op?: string } = {}): Promise<string> {
    const op = opts.op ?? (opts.serial ? service.slice(service.lastIndexOf(':') + 1) : service.replace(/^host:/, ''));
    return this.withDeadline(opts.timeoutMs ?? DEFAULT_TIMEOUTS.host, this.ctx(opts.serial, `adb ${op}`), async (scope) => {
      const { reader } = await this.openHost(scope, service);
      return reader.readHexValue();
    });
  }

  /** adb server protocol version (also a cheap "is the server up" probe). */
  async serverVersion(opts: { timeoutMs?: number } = {}): Promise<number> {
    return parseInt(await this.hostQuery('host:version', opts), 16);
  }

  async listDevices(opts: { timeoutMs?: number } = {}): Promise<DeviceEntry[]> {
    return parseDeviceList(await this.hostQuery('host:devices', opts));
  }

  /** The serial's state as the server lists it, or 'absent'. Never throws for an unknown serial. */
  async getState(serial: string, opts: { timeoutMs?: number } = {}): Promise<DeviceState> {
    validateSerial(serial);
    const list = await this.listDevices(opts);
    return list.find((d) => d.serial === serial)?.state ?? ABSENT;
  }

  /** Throw the right AdbError unless the device is online (device state). */
  async requireOnline(serial: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    const state = await this.getState(serial, opts);
    if (!isOnline(state)) throw this.stateError(serial, state);
  }

  /** An AdbError (ExitCode.DEVICE) describing why a device in `state` cannot be used. */
  stateError(serial: string, state: DeviceState): AdbError {
    const word = stateWord(state);
    const text = state === ABSENT ? "device 'X' not found"
      : word === 'unauthorized' ? 'device unauthorized'
      : word === 'authorizing' ? 'device still authorizing'
      : word === 'no-permissions' ? 'insufficient permissions for device'
      : word === 'offline' || word === 'connecting' ? 'device offline'
      : '';
    if (text) return toAdbError(new Error(text), this.ctx(serial));
    return new AdbError('offline', `device ${JSON.stringify(serial)} is in state "${state}", not "device"`, {
      serial, hint: 'boot the device into Android (not bootloader/recovery/sideload) and retry',
    });
  }

  /** adb transport features (shell_v2, stat_v2, ...), cached briefly; not `pm list features`. */
  async features(serial: string, opts: { timeoutMs?: number; fresh?: boolean } = {}): Promise<string[]> {
    validateSerial(serial);
    const hit = this.featureCache.get(serial);
    if (!opts.fresh && hit && Date.now() - hit.at < FEATURES_TTL_MS) return hit.features;
    const text = await this.hostQuery(`host-serial:${serial}:features`, { timeoutMs: opts.timeoutMs, serial, op: 'features' });
    const features = text.split(',').map((s) => s.trim()).filter(Boolean);
    this.featureCache.set(serial, { at: Date.now(), features });
    return features;
  }

  /** Forget cached features (after an adbd restart, e.g. adb root). */
  forgetDevice(serial: string): void {
    this.featureCache.delete(serial);
  }

  /** `adb connect host:port`; resolves with the server's answer text, throws if it did not connect. */
  async connect(host: string, port: number, opts: { timeoutMs?: number } = {}): Promise<string> {
    const target = `${host}:${port}`;
    validateSerial(target);
    const text = await this.hostQuery(`host:connect:${target}`, { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUTS.connect, serial: target, op: 'connect' });
    if (!/connected to|already connected/.test(text)) {
      throw new AdbError('not-found', `adb connect ${target}: ${text.trim() || 'failed'}`, { serial: target, hint: 'check that the device (or lab VM) listens on that port' });
    }
    return text.trim();
  }

  async disconnect(target: string, opts: { timeoutMs?: number } = {}): Promise<string> {
    validateSerial(target);
    return (await this.hostQuery(`host:disconnect:${target}`, { timeoutMs: opts.timeoutMs, serial: target, op: 'disconnect' })).trim();
  }

  // ---------------------------------------------------------------- shell

  /** Run a device shell command: stdout, stderr (v2) and the real exit code. Never hangs past timeoutMs. */
  async shell(serial: string, cmd: string, opts: ShellOptions = {}): Promise<ShellResult> {
    validateSerial(serial);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUTS.shell;
    const started = Date.now();
    let protocol = opts.protocol;
    if (!protocol) {
      const feats = await this.features(serial, { timeoutMs: Math.min(timeoutMs, DEFAULT_TIMEOUTS.host) });
      protocol = feats.includes('shell_v2') ? 'v2' : 'v1';
    }
    const remaining = Math.max(1, timeoutMs - (Date.now() - started));
    const stdin = typeof opts.stdin === 'string' ? Buffer.from(opts.stdin, 'utf8') : opts.stdin;
    const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
    const op = `shell \`${shortCmd(cmd)}\``;
    this.log?.debug({ serial, cmd: shortCmd(cmd), protocol, timeoutMs }, 'adb shell');
    return this.withDeadline(remaining, this.ctx(serial, op), (scope) =>
      protocol === 'v2' ? this.shellV2(scope, serial, cmd, stdin, max) : this.shellV1(scope, serial, cmd, stdin, max));
  }

  private async shellV2(scope: Scope, serial: string, cmd: string, stdin: Buffer | undefined, max: number): Promise<ShellResult> {
    const { socket, reader } = await this.openDevice(scope, serial, `shell,v2,raw:${cmd}`);
    await writeAll(socket, encodeShellStdin(stdin));
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let total = 0;
    let rest: Buffer = Buffer.alloc(0);
    let exitCode: number | undefined;
    while (exitCode === undefined) {
      const chunk = await reader.readSome();
      if (chunk === null) break;
      const { packets, rest: r } = decodeShellPackets(rest.length ? Buffer.concat([rest, chunk]) : chunk);
      rest = r;
      for (const p of packets) {
        if (p.id === ShellPacket.STDOUT || p.id === ShellPacket.STDERR) {
          total += p.data.length;
          if (total > max) throw new AdbError('protocol', `output larger than ${max} bytes`);
          (p.id === ShellPacket.STDOUT ? out : err).push(Buffer.from(p.data));
        } else if (p.id === ShellPacket.EXIT) {
          exitCode = p.data.length ? p.data[0] : 0;
        }
      }
    }
    if (exitCode === undefined) {
      throw new AdbError('connection', 'shell ended without an exit status (connection dropped?)', { serial });
    }
    const stdoutBytes = Buffer.concat(out);
    return { stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), exitCode, protocol: 'v2', stdoutBytes };
  }

  private async shellV1(scope: Scope, serial: string, cmd: string, stdin: Buffer | undefined, max: number): Promise<ShellResult> {
    let body = cmd;
    if (stdin) {
      // v1 has no way to signal end-of-input: feed the bytes through printf instead.
      if (stdin.includes(0)) throw new AdbError('unsupported', 'binary stdin needs shell protocol v2', { serial });
      if (stdin.length > 32 * 1024) throw new AdbError('unsupported', 'stdin over 32 KiB needs shell protocol v2; push a file instead', { serial });
      body = `printf '%s' ${shq(stdin.toString('utf8'))} | (${cmd}\n)`;
    }
    const nonce = newSentinelNonce();
    const { reader } = await this.openDevice(scope, serial, `shell:${wrapV1Command(body, nonce)}`);
    const all = await reader.readAll(max);
    const parsed = parseV1Output(all, nonce);
    if (!parsed) {
      throw new AdbError('connection', 'shell ended without an exit status (connection dropped?)', { serial });
    }
    return { stdout: parsed.stdout.toString('utf8'), stderr: '', exitCode: parsed.exitCode, protocol: 'v1', stdoutBytes: parsed.stdout };
  }

  /** shell() that throws AdbError('command-failed') with stderr unless the exit code is 0; → stdout. */
  async shellOk(serial: string, cmd: string, opts: ShellOptions = {}): Promise<string> {
    const r = await this.shell(serial, cmd, opts);
    if (r.exitCode !== 0) {
      const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ');
      throw new AdbError('command-failed', `device command \`${shortCmd(cmd)}\` exited ${r.exitCode}${why ? `: ${why}` : ''}`, { serial });
    }
    return r.stdout;
  }

  /** `exec:` — raw, binary-safe stdout (no pty, no exit status, stderr not captured). */
  async execOut(serial: string, cmd: string, opts: { timeoutMs?: number; maxBytes?: number } = {}): Promise<Buffer> {
    validateSerial(serial);
    return this.withDeadline(opts.timeoutMs ?? DEFAULT_TIMEOUTS.shell, this.ctx(serial, `exec-out \`${shortCmd(cmd)}\``), async (scope) => {
      const { reader } = await this.openDevice(scope, serial, `exec:${cmd}`);
      return reader.readAll(opts.maxBytes ?? DEFAULT_MAX_OUTPUT);
    });
  }

  // ---------------------------------------------------------------- sync

  private async syncSession<T>(serial: string, timeoutMs: number, op: string,
    fn: (s: { socket: Socket; reader: SocketReader; v2: boolean }) => Promise<T>): Promise<T> {
    validateSerial(serial);
    const started = Date.now();
    const feats = await this.features(serial, { timeoutMs: Math.min(timeoutMs, DEFAULT_TIMEOUTS.host) });
    const v2 = feats.includes('stat_v2');
    return this.withDeadline(Math.max(1, timeoutMs - (Date.now() - started)), this.ctx(serial, op), async (scope) => {
      const { socket, reader } = await this.openDevice(scope, serial, 'sync:');
      const result = await fn({ socket, reader, v2 });
      socket.end(); // adbkit never sends QUIT either; closing the stream ends the session
      return result;
    });
  }

  /** stat a device path (STA2 when the device has stat_v2); null when it does not exist. */
  async stat(serial: string, path: string, opts: { timeoutMs?: number } = {}): Promise<RemoteStat | null> {
    return this.syncSession(serial, opts.timeoutMs ?? DEFAULT_TIMEOUTS.sync, `stat ${path}`, (s) => syncStat(s.socket, s.reader, path, s.v2));
  }

  /** List a device directory. Names are untrusted: validate before building local paths from them. */
  async readdir(serial: string, path: string, opts: { timeoutMs?: number } = {}): Promise<RemoteEntry[]> {
    return this.syncSession(serial, opts.timeoutMs ?? DEFAULT_TIMEOUTS.sync, `list ${path}`, (s) => syncList(s.socket, s.reader, path));
  }

  /**
   * Pull a device file to localPath (created or truncated, fsync'ed), hashing on the way.
   * With verifySize (default), the byte count must equal the size stat reported just before —
   * turn it off for procfs/sysfs files whose stat size means nothing. On any failure the local
   * file is removed and an AdbError is thrown ('no-such-file' for a missing remote file).
   */
  async pullToFile(serial: string, remote: string, localPath: string, opts: { timeoutMs?: number; verifySize?: boolean; mode?: number } = {}): Promise<PullResult> {
    const verify = opts.verifySize ?? true;
    let fh: Awaited<ReturnType<typeof open>> | undefined;
    try {
      return await this.syncSession(serial, opts.timeoutMs ?? DEFAULT_TIMEOUTS.pull, `pull ${remote}`, async (s) => {
        const st = await syncStat(s.socket, s.reader, remote, s.v2);
        if (!st) throw new AdbError('no-such-file', `pull ${remote}: no such file on the device`, { serial });
        if (!st.isFile && verify) throw new AdbError('remote-fail', `pull ${remote}: not a regular file on the device`, { serial });
        const hash = createHash('sha256');
        fh = await open(localPath, 'w', opts.mode ?? 0o666); // the user's umask decides, as for every store file
        const file = fh;
        const bytes = await syncRecv(s.socket, s.reader, remote, async (chunk) => {
          hash.update(chunk);
          await file.write(chunk);
        });
        if (verify && bytes !== st.size) {
          throw new AdbError('connection', `pull ${remote}: got ${bytes} bytes, the device reported ${st.size}`, { serial });
        }
        await file.sync();
        await file.close();
        fh = undefined;
        return { bytes, sha256: hash.digest('hex'), remoteSize: verify ? st.size : undefined };
      });
    } catch (e) {
      if (fh) await fh.close().catch(() => {});
      await unlink(localPath).catch(() => {});
      throw e;
    }
  }

  /** Pull a (small) device file into memory; no size check (works for /proc files). */
  async pullBuffer(serial: string, remote: string, opts: { timeoutMs?: number; maxBytes?: number } = {}): Promise<Buffer> {
    const max = opts.maxBytes ?? 64 * 1024 * 1024;
    return this.syncSession(serial, opts.timeoutMs ?? DEFAULT_TIMEOUTS.sync, `pull ${remote}`, async (s) => {
      const parts: Buffer[] = [];
      let total = 0;
      await syncRecv(s.socket, s.reader, remote, async (chunk) => {
        total += chunk.length;
        if (total > max) throw new AdbError('protocol', `pull ${remote}: larger than ${max} bytes`);
        parts.push(chunk);
      });
      return Buffer.concat(parts);
    });
  }

  /** Push a local file or bytes to the device with a mode, then check the size by stat. */
  async push(serial: string, source: string | Buffer, remote: string, opts: { mode?: number; timeoutMs?: number } = {}): Promise<{ bytes: number }> {
    const mode = opts.mode ?? 0o644;
    return this.syncSession(serial, opts.timeoutMs ?? DEFAULT_TIMEOUTS.pull, `push ${remote}`, async (s) => {
      const data = Buffer.isBuffer(source) ? source : createReadStream(source, { highWaterMark: 64 * 1024 });
      let bytes: number;
      try {
        bytes = await syncSend(s.socket, s.reader, remote, mode, data, Math.floor(Date.now() / 1000));
      } finally {
        if (!Buffer.isBuffer(data)) data.destroy();
      }
      const st = await syncStat(s.socket, s.reader, remote, s.v2);
      if (!st || st.size !== bytes) {
        throw new AdbError('connection', `push ${remote}: sent ${bytes} bytes, the device has ${st ? st.size : 'no file'}`, { serial });
      }
      return { bytes };
    });
  }

  // ---------------------------------------------------------------- adbd services

  /** Send `root:` and return adbd's answer text (does not wait for the restart; see root.ts). */
  async rootService(serial: string, opts: { timeoutMs?: number } = {}): Promise<string> {
    validateSerial(serial);
    this.forgetDevice(serial);
    return this.withDeadline(opts.timeoutMs ?? DEFAULT_TIMEOUTS.host, this.ctx(serial, 'adb root'), async (scope) => {
      const { reader } = await this.openDevice(scope, serial, 'root:');
      return (await reader.readAll(64 * 1024)).toString('utf8').trim();
    });
  }

  // ---------------------------------------------------------------- waiting

  /**
   * Wait until the serial is in state `device`. Polls the server; for TCP serials (host:port) it
   * re-issues `adb connect` while the serial is absent, because adb 29 drops a TCP device ~60 s
   * after its connection fails and never brings it back by itself. Unauthorized / no-permissions
   * fail at once (they need a human); absent/offline until the deadline.
   */
  async waitForDevice(serial: string, opts: WaitOptions = {}): Promise<void> {
    validateSerial(serial);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUTS.waitForDevice;
    const pollMs = opts.pollMs ?? 500;
    const reconnectEvery = opts.reconnectEveryMs ?? 5_000;
    const tcp = parseTcpSerial(serial);
    const end = Date.now() + timeoutMs;
    let last: DeviceState | undefined;
    let lastError: unknown;
    let lastConnect = 0;
    this.forgetDevice(serial);
    while (!opts.signal?.aborted) {
      let state: DeviceState | undefined;
      try {
        state = await this.getState(serial, { timeoutMs: Math.max(500, Math.min(DEFAULT_TIMEOUTS.host, end - Date.now())) });
        lastError = undefined;
      } catch (e) {
        lastError = e;
        if (!isTransientAdbError(e) && (e as AdbError).kind !== 'server-unreachable') throw e;
      }
      if (state !== undefined && state !== last) {
        last = state;
        opts.onState?.(state);
        this.log?.debug({ serial, state }, 'device state');
      }
      if (state !== undefined && isOnline(state)) return;
      const word = state === undefined ? undefined : stateWord(state);
      if (word === 'unauthorized' || word === 'no-permissions') throw this.stateError(serial, state!);
      if (Date.now() >= end) break;
      if (tcp && state === ABSENT && Date.now() - lastConnect >= reconnectEvery) {
        lastConnect = Date.now();
        try {
          this.log?.info({ serial }, 'reconnecting TCP device');
          await this.connect(tcp.host, tcp.port, { timeoutMs: Math.max(500, Math.min(DEFAULT_TIMEOUTS.connect, end - Date.now())) });
        } catch (e) {
          lastError = e;
          this.log?.debug({ serial, err: { message: (e as Error).message } }, 'adb connect failed');
        }
        continue;
      }
      await sleep(Math.min(pollMs, Math.max(0, end - Date.now())), opts.signal);
    }
    if (opts.signal?.aborted) throw new AdbError('timeout', `waiting for device ${JSON.stringify(serial)} was cancelled`, { serial });
    if (last === undefined && lastError) throw toAdbError(lastError, this.ctx(serial));
    const base = last === undefined || last === ABSENT ? this.stateError(serial, ABSENT) : this.stateError(serial, last);
    throw new AdbError(base.kind, `${base.message} (waited ${Math.round(timeoutMs / 1000)} s)`, {
      serial, hint: base.hint ?? (tcp ? `run \`adb connect ${shDisplay(serial)}\`` : undefined),
    });
  }

  /** Close the tracking client's sockets (operation sockets close after each call). */
  close(): void {
    // adbkit clients hold no sockets of their own; trackers are ended by their owners.
    this.featureCache.clear();
  }
}

export interface RetryOptions {
  retries?: number;
  minTimeoutMs?: number;
  maxTimeoutMs?: number;
  signal?: AbortSignal;
  onRetry?: (error: Error, attempt: number) => void;
}

/**
 * Retry `fn` on transient adb errors (connection dropped, offline, timeout) with exponential
 * backoff; permanent ones (unauthorized, not found, no permissions, command failed) fail at once.
 * Only wrap idempotent operations.
 */
export async function retryTransient<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  return pRetry(fn, {
    retries: opts.retries ?? 4,
    minTimeout: opts.minTimeoutMs ?? 500,
    maxTimeout: opts.maxTimeoutMs ?? 5_000,
    signal: opts.signal,
    shouldRetry: ({ error }) => isTransientAdbError(error),
    onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
      if (retriesLeft > 0 && isTransientAdbError(error)) opts.onRetry?.(error, attemptNumber);
    },
  });
}
