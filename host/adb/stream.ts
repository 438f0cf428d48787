// A byte reader over one adb socket, with backpressure (the socket is paused while our buffer is
// full), exact reads, and clean/unclean EOF told apart. adbkit's Parser ignores backpressure and its
// sync pull fires 'end' before 'error', so after the service handshake kml reads sockets itself.
import type { Socket } from 'node:net';
import { AdbError } from './errors.js';

const HIGH_WATER = 1 << 20;

export class SocketReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private failure?: Error;
  private wake?: () => void;

  constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      if (this.buffered >= HIGH_WATER) socket.pause();
      this.notify();
    });
    socket.on('end', () => { this.ended = true; this.notify(); });
    socket.on('close', () => { this.ended = true; this.notify(); });
    socket.on('error', (e: Error) => { this.failure ??= e; this.notify(); });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private waitForData(): Promise<void> {
    return new Promise((resolve) => { this.wake = resolve; });
  }

  /** Remove and return the first n buffered bytes, copying only when n spans several chunks. */
  private take(n: number): Buffer {
    let out: Buffer;
    const head = this.chunks[0];
    if (head.length >= n) {
      out = head.subarray(0, n);
      if (head.length === n) this.chunks.shift();
      else this.chunks[0] = head.subarray(n);
    } else {
      const parts: Buffer[] = [];
      let need = n;
      while (need > 0) {
        const c = this.chunks[0];
        if (c.length <= need) { parts.push(c); this.chunks.shift(); need -= c.length; }
        else { parts.push(c.subarray(0, need)); this.chunks[0] = c.subarray(need); need = 0; }
      }
      out = Buffer.concat(parts, n);
    }
    this.buffered -= n;
    if (this.buffered < HIGH_WATER && this.socket.isPaused()) this.socket.resume();
    return out;
  }

  /** Exactly n bytes; null on a clean EOF before the first byte; throws on EOF mid-way. */
  async readExactOrEof(n: number): Promise<Buffer | null> {
    for (;;) {
      if (this.buffered >= n) return this.take(n);
      if (this.failure) throw this.failure;
      if (this.ended) {
        if (this.buffered === 0) return null;
        throw new AdbError('connection', `connection closed mid-message (${this.buffered} of ${n} bytes)`);
      }
      if (this.socket.isPaused()) this.socket.resume();
      await this.waitForData();
    }
  }

  /** Exactly n bytes or an error. */
  async readExact(n: number): Promise<Buffer> {
    const b = await this.readExactOrEof(n);
    if (b === null) throw new AdbError('connection', 'connection closed by the device or adb server');
    return b;
  }

  /** Whatever is buffered (waiting for at least one byte); null at EOF. */
  async readSome(): Promise<Buffer | null> {
    for (;;) {
      if (this.buffered > 0) return this.take(this.buffered);
      if (this.failure) throw this.failure;
      if (this.ended) return null;
      if (this.socket.isPaused()) this.socket.resume();
      await this.waitForData();
    }
  }

  /** Everything until EOF, refusing to hold more than maxBytes in memory. */
  async readAll(maxBytes: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let total = 0;
    for (let b = await this.readSome(); b !== null; b = await this.readSome()) {
      total += b.length;
      if (total > maxBytes) throw new AdbError('protocol', `answer larger than ${maxBytes} bytes`);
      parts.push(b);
    }
    return Buffer.concat(parts);
  }

  /** The adb smart-socket status: OKAY, or FAIL + hex4 length + message (thrown). */
  async expectOkay(): Promise<void> {
    const status = (await this.readExact(4)).toString('latin1');
    if (status === 'OKAY') return;
    if (status === 'FAIL') {
      const len = parseInt((await this.readExact(4)).toString('latin1'), 16);
      const msg = Number.isFinite(len) && len > 0 ? (await this.readExact(len)).toString('utf8') : '';
      const e = new Error(msg || 'request refused');
      e.name = 'FailError';
      throw e;
    }
    throw new AdbError('protocol', `unexpected adb status ${JSON.stringify(status)} (expected OKAY or FAIL)`);
  }

  /** A hex4-length-prefixed value (host:devices, features, get-state answers). */
  async readHexValue(): Promise<string> {
    const len = parseInt((await this.readExact(4)).toString('latin1'), 16);
    if (!Number.isFinite(len) || len < 0) throw new AdbError('protocol', 'bad length in adb answer');
    return len === 0 ? '' : (await this.readExact(len)).toString('utf8');
  }
}

/** Write and wait until the bytes left our process (or the socket failed). */
export function writeAll(socket: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) { reject(new AdbError('connection', 'connection already closed')); return; }
    socket.write(data, (err) => (err ? reject(err) : resolve()));
  });
}
