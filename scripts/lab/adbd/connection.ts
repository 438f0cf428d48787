// One TCP connection from an adb server: CNXN handshake (no AUTH), stream table, dispatch of
// OPEN/OKAY/WRTE/CLSE. Any header we cannot trust drops THIS connection only.
import type net from 'node:net';
import { banner, type DaemonContext } from './config.js';
import {
  A_AUTH,
  A_CLSE,
  A_CNXN,
  A_OKAY,
  A_OPEN,
  A_STLS,
  A_SYNC,
  A_VERSION,
  A_VERSION_SKIP_CHECKSUM,
  A_WRTE,
  MAX_PAYLOAD,
  MAX_PAYLOAD_V1,
  PacketReader,
  ProtocolError,
  commandName,
  encodeHeader,
  type Packet,
} from './packet.js';
import { AdbStream, type CloseReason, type StreamTransport } from './stream.js';
import { openService } from './services/index.js';

/** Streams one connection may hold open at once (a flood of OPENs gets CLSE beyond this). */
const MAX_STREAMS = 1024;
/** Unsent bytes on the socket above which streams hold their next WRTE until 'drain'. */
const SOCKET_HIGH_WATER = 8 * 1024 * 1024;
/** Longest service name we parse (OPEN payload); adb's own limit is the payload size. */
const MAX_SERVICE_NAME = 64 * 1024;

let nextConnectionId = 1;

export class Connection implements StreamTransport {
  readonly id = nextConnectionId++;
  private readonly reader: PacketReader;
  private readonly streams = new Map<number, AdbStream>();
  private nextLocalId = 1;
  private online = false;
  private version = A_VERSION;
  private payloadLimit = MAX_PAYLOAD_V1;
  private dead = false;
  private readonly waitingForDrain = new Set<AdbStream>();

  constructor(
    private readonly socket: net.Socket,
    private readonly ctx: DaemonContext,
  ) {
    // Before CNXN accept up to MAX_PAYLOAD so a host with a big banner still gets through.
    this.reader = new PacketReader(() => (this.online ? this.payloadLimit : MAX_PAYLOAD));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err) => this.drop(`socket error: ${err.message}`, 'info'));
    socket.on('close', () => this.drop('peer closed the connection', 'info'));
    this.ctx.log.info('connection opened', { conn: this.id, peer: `${socket.remoteAddress}:${socket.remotePort}` });
  }

  // ---- StreamTransport ----

  get maxPayload(): number {
    return this.payloadLimit;
  }

  sendWrite(localId: number, remoteId: number, data: Buffer): void {
    this.send(A_WRTE, localId, remoteId, data);
  }

  writable(): boolean {
    return this.socket.writableLength < SOCKET_HIGH_WATER;
  }

  wakeWhenWritable(stream: AdbStream): void {
    this.waitingForDrain.add(stream);
  }

  private onDrain(): void {
    const waiting = [...this.waitingForDrain];
    this.waitingForDrain.clear();
    for (const s of waiting) if (!this.dead) s.flush();
  }

  sendOkay(localId: number, remoteId: number): void {
    this.send(A_OKAY, localId, remoteId);
  }

  sendClose(localId: number, remoteId: number): void {
    this.send(A_CLSE, localId, remoteId);
  }

  forget(stream: AdbStream): void {
    if (this.streams.get(stream.localId) === stream) this.streams.delete(stream.localId);
    this.waitingForDrain.delete(stream);
  }

  onServiceError(stream: AdbStream, err: unknown): void {
    this.ctx.log.error('service failed', { conn: this.id, stream: stream.localId, service: stream.serviceName, err: String(err) });
    stream.abort('protocol');
  }

  // ---- packet handling ----

  private onBytes(chunk: Buffer): void {
    if (this.dead) return;
    this.reader.push(chunk);
    try {
      for (let p = this.reader.next(); p && !this.dead; p = this.reader.next()) this.handle(p);
    } catch (err) {
      if (err instanceof ProtocolError) this.drop(`protocol error: ${err.message}`, 'warn');
      else this.drop(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, 'error');
    }
  }

  private handle(p: Packet): void {
    switch (p.command) {
      case A_CNXN:
        return this.onConnect(p);
      case A_OPEN:
        return this.onOpen(p);
      case A_OKAY:
        return this.onOkay(p);
      case A_WRTE:
        return this.onWrite(p);
      case A_CLSE:
        return this.onClose(p);
      case A_AUTH:
      case A_SYNC:
      case A_STLS:
        // We never ask for AUTH; SYNC is obsolete; STLS is not offered. Ignore, as adbd ignores stray packets.
        this.ctx.log.warn('ignored packet', { conn: this.id, cmd: commandName(p.command) });
        return;
    }
  }

  private onConnect(p: Packet): void {
    if (this.online) {
      // A second CNXN restarts the session: every open stream is gone (adbd: handle_offline).
      this.closeAllStreams('connection');
    }
    this.version = Math.min(p.arg0 >>> 0, A_VERSION);
    const hostMax = p.arg1 >>> 0;
    this.payloadLimit = Math.max(MAX_PAYLOAD_V1, Math.min(hostMax, this.ctx.config.maxPayload));
    this.online = true;
    const reply = Buffer.from(banner(this.ctx.config), 'utf8');
    this.send(A_CNXN, A_VERSION, this.ctx.config.maxPayload, reply);
    this.ctx.log.info('CNXN', {
      conn: this.id,
      hostVersion: `0x${(p.arg0 >>> 0).toString(16)}`,
      hostMaxPayload: hostMax,
      maxPayload: this.payloadLimit,
      hostBanner: p.data.toString('latin1').replace(/\0+$/, '').slice(0, 512),
    });
  }

  private onOpen(p: Packet): void {
    const remoteId = p.arg0 >>> 0;
    if (remoteId === 0) return; // nothing we could address a reply to
    const refuse = (why: string) => {
      this.ctx.log.warn('OPEN refused', { conn: this.id, remoteId, why });
      this.send(A_CLSE, 0, remoteId);
    };
    if (!this.online) return refuse('OPEN before CNXN');
    if (p.arg1 !== 0) return refuse('OPEN with nonzero arg1');
    if (this.streams.size >= MAX_STREAMS) return refuse('too many open streams');
    const nul = p.data.indexOf(0);
    const raw = nul >= 0 ? p.data.subarray(0, nul) : p.data;
    if (raw.length === 0) return refuse('empty service name');
    if (raw.length > MAX_SERVICE_NAME) return refuse('service name too long');
    const name = raw.toString('latin1');
    const localId = this.allocateId();
    const stream = new AdbStream(this, localId, remoteId, name.slice(0, 200));
    let created;
    try {
      created = openService(name, stream, this.ctx);
    } catch (err) {
      this.ctx.log.error('service start failed', { conn: this.id, service: name.slice(0, 200), err: String(err) });
      created = null;
    }
    if (!created) return refuse(`unknown or failed service ${JSON.stringify(name.slice(0, 200))}`);
    this.streams.set(localId, stream);
    // OKAY first: the service may write as soon as it is started.
    this.send(A_OKAY, localId, remoteId);
    this.ctx.log.info('OPEN', { conn: this.id, localId, remoteId, service: name.slice(0, 200) });
    try {
      stream.attach(created.start());
    } catch (err) {
      this.onServiceError(stream, err);
    }
  }

  private onOkay(p: Packet): void {
    const stream = this.streams.get(p.arg1 >>> 0);
    if (stream && stream.remoteId === p.arg0 >>> 0) stream.onAck();
  }

  private onWrite(p: Packet): void {
    const remoteId = p.arg0 >>> 0;
    const localId = p.arg1 >>> 0;
    const stream = this.streams.get(localId);
    if (!stream || stream.remoteId !== remoteId) {
      // Write to a stream that does not exist (never opened, or closed): tell the host it is closed.
      this.ctx.log.warn('WRTE to unknown stream', { conn: this.id, localId, remoteId });
      if (remoteId !== 0) this.send(A_CLSE, localId, remoteId);
      return;
    }
    if (!stream.onWrite(p.data)) {
      this.ctx.log.warn('stream flooded without waiting for OKAY; closing it', { conn: this.id, localId });
      stream.abort('protocol');
    }
  }

  private onClose(p: Packet): void {
    const stream = this.streams.get(p.arg1 >>> 0);
    // arg0 == 0 is "your OPEN failed"; we never OPEN, so only exact matches close a stream.
    if (stream && stream.remoteId === p.arg0 >>> 0) {
      this.ctx.log.info('CLSE from host', { conn: this.id, localId: stream.localId });
      stream.onRemoteClose('remote');
    }
  }

  // ---- plumbing ----

  private allocateId(): number {
    for (;;) {
      const id = this.nextLocalId;
      this.nextLocalId = this.nextLocalId >= 0xfffffffe ? 1 : this.nextLocalId + 1;
      if (!this.streams.has(id)) return id;
    }
  }

  private send(command: number, arg0: number, arg1: number, data: Buffer = EMPTY): void {
    if (this.dead || this.socket.destroyed) return;
    const header = encodeHeader(command, arg0, arg1, data, this.version < A_VERSION_SKIP_CHECKSUM);
    if (data.length === 0) {
      this.socket.write(header);
    } else {
      this.socket.cork();
      this.socket.write(header);
      this.socket.write(data);
      process.nextTick(() => this.socket.uncork());
    }
  }

  private closeAllStreams(reason: CloseReason): void {
    for (const s of [...this.streams.values()]) s.onRemoteClose(reason);
    this.streams.clear();
  }

  /** Tear down this connection: every stream's service is closed (children get SIGHUP). */
  drop(why: string, level: 'info' | 'warn' | 'error'): void {
    if (this.dead) return;
    this.dead = true;
    this.ctx.log[level]('connection closed', { conn: this.id, why, streams: this.streams.size });
    this.closeAllStreams('connection');
    this.socket.destroy();
  }
}

const EMPTY = Buffer.alloc(0);
