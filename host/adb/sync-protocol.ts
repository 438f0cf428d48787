// The adb sync protocol (adb/SYNC.TXT, file_sync_protocol.h) spoken over one `sync:` stream.
// kml speaks it itself instead of adbkit's Sync, which hides its socket (no way to enforce a
// deadline), ignores backpressure on pull, fires 'end' before 'error' on a failed pull and only
// offers 32-bit STAT on DeviceClient.
import type { Socket } from 'node:net';
import { AdbError } from './errors.js';
import { SocketReader, writeAll } from './stream.js';

export const SYNC_DATA_MAX = 64 * 1024;
const MAX_PATH_BYTES = 1024;
const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

/** Linux errno numbers adbd puts in stat_v2.error. */
const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 13: 'EACCES', 20: 'ENOTDIR', 36: 'ENAMETOOLONG', 40: 'ELOOP',
};

export interface RemoteStat {
  path: string;
  mode: number;
  size: number;
  mtimeMs: number;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

export interface RemoteEntry {
  /** A name as the device sent it: untrusted (callers validate before using it in a path). */
  name: string;
  mode: number;
  size: number;
  mtimeMs: number;
  isFile: boolean;
  isDirectory: boolean;
}

export function encodeSyncRequest(id: string, arg: string | number): Buffer {
  if (typeof arg === 'number') {
    const b = Buffer.alloc(8);
    b.write(id, 0, 'ascii');
    b.writeUInt32LE(arg >>> 0, 4);
    return b;
  }
  const body = Buffer.from(arg, 'utf8');
  if (body.length > MAX_PATH_BYTES) throw new AdbError('protocol', `device path longer than ${MAX_PATH_BYTES} bytes`);
  const head = Buffer.alloc(8);
  head.write(id, 0, 'ascii');
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
}

export function assertRemotePath(path: string): void {
  if (!path.startsWith('/')) throw new AdbError('protocol', `device path must be absolute: ${JSON.stringify(path)}`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f]/.test(path)) throw new AdbError('protocol', `device path contains control characters: ${JSON.stringify(path)}`);
}

function modeFlags(mode: number) {
  const t = mode & S_IFMT;
  return { isFile: t === S_IFREG, isDirectory: t === S_IFDIR, isSymlink: t === S_IFLNK };
}

/** FAIL + u32 length + message, as thrown by adbd (e.g. "open failed: No such file or directory"). */
async function readSyncFail(reader: SocketReader, path: string): Promise<never> {
  const len = (await reader.readExact(4)).readUInt32LE(0);
  const msg = len ? (await reader.readExact(Math.min(len, 64 * 1024))).toString('utf8') : 'unknown failure';
  const missing = /no such file|ENOENT/i.test(msg);
  throw new AdbError(missing ? 'no-such-file' : 'remote-fail', `${path}: ${msg}`);
}

/** STAT (v1, 32-bit size) or STA2 (v2: 64-bit size and a real errno) of one path. null when missing. */
export async function syncStat(socket: Socket, reader: SocketReader, path: string, v2: boolean): Promise<RemoteStat | null> {
  assertRemotePath(path);
  await writeAll(socket, encodeSyncRequest(v2 ? 'STA2' : 'STAT', path));
  const id = (await reader.readExact(4)).toString('latin1');
  if (id === 'FAIL') return readSyncFail(reader, path);
  if (v2 && id === 'STA2') {
    const b = await reader.readExact(68);
    const error = b.readUInt32LE(0);
    if (error !== 0) {
      if (error === 2 || error === 20) return null;
      throw new AdbError('remote-fail', `${path}: stat failed: ${ERRNO_NAMES[error] ?? `errno ${error}`}`);
    }
    const mode = b.readUInt32LE(20);
    const size = Number(b.readBigUInt64LE(36));
    const mtime = Number(b.readBigInt64LE(52));
    return { path, mode, size, mtimeMs: mtime * 1000, ...modeFlags(mode) };
  }
  if (!v2 && id === 'STAT') {
    const b = await reader.readExact(12);
    const mode = b.readUInt32LE(0);
    const size = b.readUInt32LE(4);
    const mtime = b.readUInt32LE(8);
    // v1 says "error" by answering all zeros; it cannot tell ENOENT from EACCES.
    if (mode === 0) return null;
    return { path, mode, size, mtimeMs: mtime * 1000, ...modeFlags(mode) };
  }
  throw new AdbError('protocol', `unexpected sync answer ${JSON.stringify(id)} to ${v2 ? 'STA2' : 'STAT'}`);
}

/** LIST (v1): directory entries without `.` and `..`. */
export async function syncList(socket: Socket, reader: SocketReader, path: string): Promise<RemoteEntry[]> {
  assertRemotePath(path);
  await writeAll(socket, encodeSyncRequest('LIST', path));
  const entries: RemoteEntry[] = [];
  for (;;) {
    const id = (await reader.readExact(4)).toString('latin1');
    if (id === 'DONE') { await reader.readExact(16); return entries; }
    if (id === 'FAIL') return readSyncFail(reader, path);
    if (id !== 'DENT') throw new AdbError('protocol', `unexpected sync answer ${JSON.stringify(id)} to LIST`);
    const b = await reader.readExact(16);
    const mode = b.readUInt32LE(0);
    const size = b.readUInt32LE(4);
    const mtime = b.readUInt32LE(8);
    const nameLen = b.readUInt32LE(12);
    if (nameLen > 4096) throw new AdbError('protocol', 'directory entry name too long');
    const name = (await reader.readExact(nameLen)).toString('utf8');
    if (name === '.' || name === '..') continue;
    const f = modeFlags(mode);
    entries.push({ name, mode, size, mtimeMs: mtime * 1000, isFile: f.isFile, isDirectory: f.isDirectory });
  }
}

/**
 * RECV: stream a file's bytes into `sink` (awaited per chunk, so a slow disk slows the socket rather
 * than filling memory). Returns the byte count. A FAIL at any point throws; there is no early "end".
 */
export async function syncRecv(socket: Socket, reader: SocketReader, path: string, sink: (chunk: Buffer) => Promise<void>): Promise<number> {
  assertRemotePath(path);
  await writeAll(socket, encodeSyncRequest('RECV', path));
  let total = 0;
  for (;;) {
    const id = (await reader.readExact(4)).toString('latin1');
    if (id === 'DONE') { await reader.readExact(4); return total; }
    if (id === 'FAIL') return readSyncFail(reader, path);
    if (id !== 'DATA') throw new AdbError('protocol', `unexpected sync answer ${JSON.stringify(id)} to RECV`);
    const len = (await reader.readExact(4)).readUInt32LE(0);
    if (len > SYNC_DATA_MAX) throw new AdbError('protocol', `sync DATA chunk too large (${len})`);
    const chunk = await reader.readExact(len);
    total += len;
    await sink(chunk);
  }
}

/** SEND "path,mode": data chunks, DONE with mtime, then the device's OKAY or FAIL. */
export async function syncSend(socket: Socket, reader: SocketReader, path: string, mode: number, data: AsyncIterable<Buffer> | Buffer, mtimeS: number): Promise<number> {
  assertRemotePath(path);
  if (path.includes(',')) throw new AdbError('protocol', `device path for push must not contain a comma: ${JSON.stringify(path)}`);
  await writeAll(socket, encodeSyncRequest('SEND', `${path},${(mode & 0o7777) | S_IFREG}`));
  let total = 0;
  const sendChunk = async (buf: Buffer) => {
    for (let i = 0; i < buf.length; i += SYNC_DATA_MAX) {
      const part = buf.subarray(i, i + SYNC_DATA_MAX);
      await writeAll(socket, Buffer.concat([encodeSyncRequest('DATA', part.length), part]));
      total += part.length;
    }
  };
  if (Buffer.isBuffer(data)) await sendChunk(data);
  else for await (const chunk of data) await sendChunk(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  await writeAll(socket, encodeSyncRequest('DONE', mtimeS));
  const id = (await reader.readExact(4)).toString('latin1');
  if (id === 'FAIL') return readSyncFail(reader, path);
  if (id !== 'OKAY') throw new AdbError('protocol', `unexpected sync answer ${JSON.stringify(id)} to SEND`);
  await reader.readExact(4);
  return total;
}
