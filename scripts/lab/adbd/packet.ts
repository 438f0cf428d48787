// adb transport messages: the 24-byte little-endian header and its payload
// (command, arg0, arg1, data_length, data_check, magic = command ^ 0xffffffff).
import { ByteQueue } from './bytes.js';

export const A_SYNC = 0x434e5953;
export const A_CNXN = 0x4e584e43;
export const A_AUTH = 0x48545541;
export const A_OPEN = 0x4e45504f;
export const A_OKAY = 0x59414b4f;
export const A_CLSE = 0x45534c43;
export const A_WRTE = 0x45545257;
export const A_STLS = 0x534c5453;

const KNOWN_COMMANDS = new Set([A_SYNC, A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_STLS]);

export const A_VERSION_MIN = 0x01000000;
/** From this version on, data_check is not computed (sent as 0). */
export const A_VERSION_SKIP_CHECKSUM = 0x01000001;
export const A_VERSION = 0x01000001;

/** Payload limit before CNXN has told us the peer's (protocol.txt: CNXN/AUTH fit in 4096). */
export const MAX_PAYLOAD_V1 = 4096;
/** The largest payload any adb speaks (adb.h MAX_PAYLOAD). */
export const MAX_PAYLOAD = 1024 * 1024;

export const HEADER_SIZE = 24;

export interface Packet {
  command: number;
  arg0: number;
  arg1: number;
  data: Buffer;
}

/** A stream of bytes that cannot be adb messages; the connection must be dropped. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

export function commandName(command: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(command >>> 0);
  return /^[A-Z0-9]{4}$/.test(b.toString('latin1')) ? b.toString('latin1') : `0x${(command >>> 0).toString(16).padStart(8, '0')}`;
}

/** Sum of payload bytes: what adb calls the "checksum" (used only by protocol 0x01000000 peers). */
export function payloadSum(data: Buffer): number {
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += data[i]!;
  return sum >>> 0;
}

export function encodeHeader(command: number, arg0: number, arg1: number, data: Buffer, withChecksum: boolean): Buffer {
  const h = Buffer.allocUnsafe(HEADER_SIZE);
  h.writeUInt32LE(command >>> 0, 0);
  h.writeUInt32LE(arg0 >>> 0, 4);
  h.writeUInt32LE(arg1 >>> 0, 8);
  h.writeUInt32LE(data.length, 12);
  h.writeUInt32LE(withChecksum ? payloadSum(data) : 0, 16);
  h.writeUInt32LE((command ^ 0xffffffff) >>> 0, 20);
  return h;
}

/**
 * Splits a byte stream into packets. `maxPayload()` is consulted for every header so that the
 * limit can grow once CNXN negotiated it. Throws ProtocolError on a header that cannot be
 * trusted (wrong magic, unknown command, oversize length): after that the stream is unusable.
 */
export class PacketReader {
  private readonly queue = new ByteQueue();
  private header: { command: number; arg0: number; arg1: number; length: number } | null = null;

  constructor(private readonly maxPayload: () => number) {}

  push(data: Buffer): void {
    this.queue.push(data);
  }

  /** The next complete packet, or null if more bytes are needed. */
  next(): Packet | null {
    if (!this.header) {
      if (this.queue.length < HEADER_SIZE) return null;
      const h = this.queue.take(HEADER_SIZE);
      const command = h.readUInt32LE(0);
      const length = h.readUInt32LE(12);
      const magic = h.readUInt32LE(20);
      if (magic !== (command ^ 0xffffffff) >>> 0) {
        throw new ProtocolError(`bad magic 0x${magic.toString(16)} for command ${commandName(command)}`);
      }
      if (!KNOWN_COMMANDS.has(command)) throw new ProtocolError(`unknown command ${commandName(command)}`);
      const limit = this.maxPayload();
      if (length > limit) throw new ProtocolError(`${commandName(command)} payload of ${length} bytes exceeds ${limit}`);
      this.header = { command, arg0: h.readUInt32LE(4), arg1: h.readUInt32LE(8), length };
    }
    if (this.queue.length < this.header.length) return null;
    const { command, arg0, arg1, length } = this.header;
    this.header = null;
    // A copy, so that a retained payload does not pin a large socket chunk.
    const data = length === 0 ? Buffer.alloc(0) : this.queue.takeCopy(length);
    return { command, arg0, arg1, data };
  }

  /** Bytes received but not yet returned as packets. */
  get pending(): number {
    return this.queue.length;
  }
}
