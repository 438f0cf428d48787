// `sync:` — the file sync protocol (SYNC.TXT, file_sync_protocol.h, daemon/file_sync_service.cpp).
// Requests are `id[4] len[u32le] path[len]`; they may arrive split over several WRTEs or several
// in one, so everything goes through a byte queue. After any FAIL the service closes the stream,
// as adbd does. Paths are handled as raw bytes (Buffers), never re-encoded.
import type { FileHandle } from 'node:fs/promises';
import fsp from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { ByteQueue } from '../bytes.js';
import type { DaemonContext } from '../config.js';
import { errnoName, errnoNumber, strerror } from '../errno.js';
import type { AdbStream, CloseReason, Service } from '../stream.js';

function mkid(s: string): number {
  return Buffer.from(s, 'latin1').readUInt32LE(0);
}

export const ID_STAT = mkid('STAT'); // lstat, v1 reply
export const ID_STA2 = mkid('STA2'); // stat, stat_v2 reply
export const ID_LST2 = mkid('LST2'); // lstat, stat_v2 reply
export const ID_LIST = mkid('LIST');
export const ID_LIS2 = mkid('LIS2'); // ls_v2: entries as dent_v2
export const ID_DNT2 = mkid('DNT2');
export const ID_SEND = mkid('SEND');
export const ID_RECV = mkid('RECV');
export const ID_DENT = mkid('DENT');
export const ID_DONE = mkid('DONE');
export const ID_DATA = mkid('DATA');
export const ID_OKAY = mkid('OKAY');
export const ID_FAIL = mkid('FAIL');
export const ID_QUIT = mkid('QUIT');

export const SYNC_DATA_MAX = 64 * 1024;
export const SYNC_PATH_MAX = 1024;

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

const SLASH = Buffer.from('/');

function u32(id: number, value: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32LE(id, 0);
  b.writeUInt32LE(value >>> 0, 4);
  return b;
}

function secondsOf(ms: bigint): bigint {
  return ms >= 0n ? ms / 1000n : -((-ms + 999n) / 1000n);
}

/** 72-byte stat_v2 (id, error, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime). */
function statV2(id: number, st: import('node:fs').BigIntStats | null, error: number): Buffer {
  const b = Buffer.alloc(72);
  b.writeUInt32LE(id, 0);
  b.writeUInt32LE(error >>> 0, 4);
  if (st) {
    b.writeBigUInt64LE(BigInt.asUintN(64, st.dev), 8);
    b.writeBigUInt64LE(BigInt.asUintN(64, st.ino), 16);
    b.writeUInt32LE(Number(st.mode & 0xffffffffn), 24);
    b.writeUInt32LE(Number(st.nlink & 0xffffffffn), 28);
    b.writeUInt32LE(Number(st.uid & 0xffffffffn), 32);
    b.writeUInt32LE(Number(st.gid & 0xffffffffn), 36);
    b.writeBigUInt64LE(BigInt.asUintN(64, st.size), 40);
    b.writeBigInt64LE(secondsOf(st.atimeMs), 48);
    b.writeBigInt64LE(secondsOf(st.mtimeMs), 56);
    b.writeBigInt64LE(secondsOf(st.ctimeMs), 64);
  }
  return b;
}

/** 16-byte stat_v1 / the first 16 bytes of a dent_v1: id, mode, size, mtime (sizes truncate to 32 bits, as in adbd). */
function statV1(id: number, st: import('node:fs').BigIntStats | null): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(id, 0);
  if (st) {
    b.writeUInt32LE(Number(st.mode & 0xffffffffn), 4);
    b.writeUInt32LE(Number(st.size & 0xffffffffn), 8);
    b.writeUInt32LE(Number(BigInt.asUintN(32, secondsOf(st.mtimeMs))), 12);
  }
  return b;
}

function dirnameOf(p: Buffer): Buffer {
  const i = p.lastIndexOf(0x2f);
  if (i <= 0) return SLASH;
  return p.subarray(0, i);
}

/** strtoul(s, NULL, 0): 0x.. hex, 0.. octal, else decimal; null if no digits. */
function parseMode(s: string): number | null {
  const t = s.trim();
  let m: RegExpExecArray | null;
  if ((m = /^0[xX]([0-9a-fA-F]+)/.exec(t))) return parseInt(m[1]!, 16);
  if ((m = /^0([0-7]*)/.exec(t))) return m[1] ? parseInt(m[1], 8) : 0;
  if ((m = /^([0-9]+)/.exec(t))) return parseInt(m[1]!, 10);
  return null;
}

/** A SEND in progress: a temp file beside the target (or a symlink target being collected). */
interface Upload {
  finalPath: Buffer;
  mode: number;
  symlink: boolean;
  tmpPath: Buffer | null;
  file: FileHandle | null;
  linkTarget: Buffer[];
}

let uploadCounter = 0;

export class SyncService implements Service {
  private readonly queue = new ByteQueue();
  private closed = false;
  /** No more requests: QUIT, FAIL or close. */
  private done = false;
  private upload: Upload | null = null;
  /** After a failed SEND: throw DATA away until DONE, then close (adbd keeps the host from blocking). */
  private draining = false;

  constructor(
    private readonly stream: AdbStream,
    private readonly ctx: DaemonContext,
  ) {}

  async onData(data: Buffer): Promise<void> {
    if (this.done) return;
    this.queue.push(data);
    await this.pump();
  }

  onClose(_reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    this.done = true;
    this.queue.clear();
    // A client that disconnects mid-push leaves no half-written file behind.
    void this.discardUpload();
  }

  // ---- request loop ----

  private async pump(): Promise<void> {
    while (!this.closed && !this.done) {
      if (this.upload || this.draining) {
        if (!(await this.pumpUpload())) return;
        continue;
      }
      if (this.queue.length < 8) return;
      const head = this.queue.peek(8);
      const id = head.readUInt32LE(0);
      const length = head.readUInt32LE(4);
      if (length > SYNC_PATH_MAX) return this.fail('path too long');
      if (this.queue.length < 8 + length) return;
      this.queue.skip(8);
      const raw = this.queue.take(length);
      // adbd terminates the name at the first NUL (it is a C string).
      const nul = raw.indexOf(0);
      const name = Buffer.from(nul >= 0 ? raw.subarray(0, nul) : raw);
      await this.request(id, name);
    }
  }

  private async request(id: number, name: Buffer): Promise<void> {
    const path = this.absolute(name);
    switch (id) {
      case ID_STAT:
        return this.doStatV1(path);
      case ID_STA2:
      case ID_LST2:
        return this.doStatV2(id, path);
      case ID_LIST:
        return this.doList(path, false);
      case ID_LIS2:
        return this.doList(path, true);
      case ID_RECV:
        return this.doRecv(path);
      case ID_SEND:
        return this.startSend(name);
      case ID_QUIT:
        this.done = true;
        this.stream.end();
        return;
      default:
        return this.fail(`unknown command ${id.toString(16).padStart(8, '0')}`);
    }
  }

  /** adbd's cwd is /, so a relative path is relative to /; an empty one stays empty (ENOENT). */
  private absolute(name: Buffer): Buffer {
    return name.length === 0 || name[0] === 0x2f ? name : Buffer.concat([SLASH, name]);
  }

  private reply(data: Buffer): boolean {
    return this.stream.write(data);
  }

  /** FAIL with a message, then close the stream (adbd's sync loop ends after a failure). */
  private fail(message: string): void {
    const text = Buffer.from(message, 'utf8');
    this.reply(Buffer.concat([u32(ID_FAIL, text.length), text]));
    this.done = true;
    this.stream.end();
  }

  // ---- STAT / STA2 / LST2 / LIST ----

  private async doStatV1(path: Buffer): Promise<void> {
    let st: import('node:fs').BigIntStats | null = null;
    try {
      st = await fsp.lstat(path, { bigint: true });
    } catch {
      st = null; // all zeros means "no such file" to v1 clients
    }
    this.reply(statV1(ID_STAT, st));
  }

  private async doStatV2(id: number, path: Buffer): Promise<void> {
    try {
      const st = id === ID_STA2 ? await fsp.stat(path, { bigint: true }) : await fsp.lstat(path, { bigint: true });
      this.reply(statV2(id, st, 0));
    } catch (err) {
      this.reply(statV2(id, null, errnoNumber(err)));
    }
  }

  /** LIST → dent_v1 (entries that cannot be stat'ed are skipped); LIS2 → dent_v2 (with their errno). */
  private async doList(path: Buffer, v2: boolean): Promise<void> {
    let names: Buffer[] = [];
    try {
      names = [Buffer.from('.'), Buffer.from('..'), ...(await fsp.readdir(path, { encoding: 'buffer' }))];
    } catch {
      names = []; // adbd: opendir failed → just DONE
    }
    const batch: Buffer[] = [];
    let batchBytes = 0;
    for (const name of names) {
      if (this.closed) return;
      let st: import('node:fs').BigIntStats | null = null;
      let error = 0;
      try {
        st = await fsp.lstat(Buffer.concat([path, SLASH, name]), { bigint: true });
      } catch (err) {
        if (!v2) continue;
        error = errnoNumber(err);
      }
      let entry: Buffer;
      if (v2) {
        entry = Buffer.alloc(76);
        statV2(ID_DNT2, st, error).copy(entry, 0);
        entry.writeUInt32LE(name.length, 72);
      } else {
        entry = Buffer.alloc(20);
        statV1(ID_DENT, st).copy(entry, 0);
        entry.writeUInt32LE(name.length, 16);
      }
      // Entries go out in batches, and the last batch with DONE (one WRTE, see doRecv).
      batch.push(entry, name);
      batchBytes += entry.length + name.length;
      if (batchBytes >= SYNC_DATA_MAX) {
        const full = Buffer.concat(batch);
        batch.length = 0;
        batchBytes = 0;
        if (!this.reply(full)) await this.stream.waitDrain();
      }
    }
    // DONE is a whole zeroed entry of the same size.
    const done = Buffer.alloc(v2 ? 76 : 20);
    done.writeUInt32LE(ID_DONE, 0);
    this.reply(Buffer.concat([...batch, done]));
  }

  // ---- RECV ----

  private async doRecv(path: Buffer): Promise<void> {
    let file: FileHandle;
    try {
      file = await fsp.open(path, 'r');
    } catch (err) {
      return this.fail(`open failed: ${strerror(err)}`);
    }
    try {
      // The last DATA is held back and sent together with DONE: a reply split into a DATA
      // WRTE and a lone DONE WRTE costs a Nagle/delayed-ACK round (~40 ms) per file on the host.
      let held: Buffer | null = null;
      for (;;) {
        if (this.closed) return;
        // Header and data in one buffer: DATA chunks are queued without another copy.
        const buf = Buffer.allocUnsafe(8 + SYNC_DATA_MAX);
        let n: number;
        try {
          ({ bytesRead: n } = await file.read(buf, 8, SYNC_DATA_MAX, null));
        } catch (err) {
          if (held) this.reply(held);
          return this.fail(`read failed: ${strerror(err)}`);
        }
        if (n === 0) break;
        buf.writeUInt32LE(ID_DATA, 0);
        buf.writeUInt32LE(n, 4);
        if (held && !this.reply(held)) await this.stream.waitDrain();
        held = buf.subarray(0, 8 + n);
      }
      this.reply(held ? Buffer.concat([held, u32(ID_DONE, 0)]) : u32(ID_DONE, 0));
    } finally {
      await file.close().catch(() => {});
    }
  }

  // ---- SEND ----

  private async startSend(spec: Buffer): Promise<void> {
    const comma = spec.lastIndexOf(0x2c);
    if (comma < 0) return this.fail('missing , in ID_SEND_V1');
    const mode = parseMode(spec.subarray(comma + 1).toString('latin1'));
    if (mode === null) return this.fail('bad mode');
    const finalPath = this.absolute(spec.subarray(0, comma));
    const symlink = (mode & S_IFMT) === S_IFLNK;
    // Copy user permission bits to group and other, as adbd does (0644 → 0666).
    let fileMode = mode & 0o777;
    fileMode |= (fileMode >> 3) & 0o070;
    fileMode |= (fileMode >> 3) & 0o007;
    const upload: Upload = { finalPath, mode: fileMode, symlink, tmpPath: null, file: null, linkTarget: [] };
    if (symlink) {
      this.upload = upload;
      return;
    }
    try {
      const st = await fsp.lstat(finalPath).catch(() => null);
      if (st?.isDirectory()) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
      await this.openTemp(upload);
      this.upload = upload;
    } catch (err) {
      const what = errnoName(err) === 'MKDIRS' ? 'secure_mkdirs failed' : "couldn't create file";
      this.failSend(`${what}: ${strerror((err as { cause?: unknown }).cause ?? err)}`);
    }
  }

  /** Create the temp file beside the target; on ENOENT create the parents (fixed_push_mkdir) and retry. */
  private async openTemp(upload: Upload): Promise<void> {
    const dir = dirnameOf(upload.finalPath);
    const tmp = Buffer.concat([dir, Buffer.from(`/.adbd-push-${process.pid}-${++uploadCounter}-${randomBytes(4).toString('hex')}`)]);
    const open = () => fsp.open(tmp, 'wx', upload.mode);
    try {
      upload.file = await open();
    } catch (err) {
      if (errnoName(err) !== 'ENOENT') throw err;
      try {
        await fsp.mkdir(dir, { recursive: true, mode: 0o775 });
      } catch (mkdirErr) {
        throw Object.assign(new Error('mkdirs'), { code: 'MKDIRS', cause: mkdirErr });
      }
      upload.file = await open();
    }
    upload.tmpPath = tmp;
  }

  /**
   * Handle the DATA/DONE messages of the current SEND (or of a failed one being drained).
   * Returns true when the SEND is complete and the next request may be read.
   */
  private async pumpUpload(): Promise<boolean> {
    const pending: Buffer[] = [];
    for (;;) {
      if (this.queue.length < 8) {
        await this.writeData(pending);
        return false;
      }
      const head = this.queue.peek(8);
      const id = head.readUInt32LE(0);
      const length = head.readUInt32LE(4);
      if (id === ID_DATA) {
        if (length > SYNC_DATA_MAX) {
          // Cannot resync after a bogus length: fail and close.
          await this.discardUpload();
          this.draining = false;
          this.fail('oversize data message');
          return false;
        }
        if (this.queue.length < 8 + length) {
          await this.writeData(pending);
          return false;
        }
        this.queue.skip(8);
        const data = this.queue.take(length);
        if (this.upload) pending.push(data); // when draining, DATA is thrown away
        continue;
      }
      // Gathered DATA goes out with one writev before DONE (or anything else) is acted on.
      await this.writeData(pending);
      if (this.closed) return false;
      this.queue.skip(8);
      if (id === ID_DONE) {
        if (this.upload) {
          await this.finishUpload(length);
          return !this.done;
        }
        // The failed SEND is over; adbd closes the service now.
        this.draining = false;
        this.done = true;
        this.stream.end();
        return false;
      }
      const hadUpload = this.upload !== null;
      await this.discardUpload();
      this.draining = false;
      if (hadUpload) this.fail('invalid data message');
      else {
        this.done = true;
        this.stream.end();
      }
      return false;
    }
  }

  /** Append DATA payloads to the upload; on a write error FAIL and switch to draining. */
  private async writeData(pending: Buffer[]): Promise<void> {
    const upload = this.upload;
    const batch = pending.splice(0);
    if (batch.length === 0 || !upload) return;
    if (upload.symlink) {
      upload.linkTarget.push(...batch);
      if (upload.linkTarget.reduce((n, b) => n + b.length, 0) > SYNC_PATH_MAX * 4) {
        await this.discardUpload();
        this.failSend('symlink failed: File name too long');
      }
      return;
    }
    try {
      await upload.file!.writev(batch);
    } catch (err) {
      await this.discardUpload();
      this.failSend(`write failed: ${strerror(err)}`);
    }
  }

  /** FAIL now, then keep reading DATA until DONE before closing (adbd: handle_send_file fail path). */
  private failSend(message: string): void {
    const text = Buffer.from(message, 'utf8');
    this.reply(Buffer.concat([u32(ID_FAIL, text.length), text]));
    this.upload = null;
    this.draining = true;
  }

  private async finishUpload(mtime: number): Promise<void> {
    const upload = this.upload!;
    this.upload = null;
    try {
      if (upload.symlink) {
        const joined = Buffer.concat(upload.linkTarget);
        const nul = joined.indexOf(0);
        const target = nul >= 0 ? joined.subarray(0, nul) : joined;
        await this.replaceWithSymlink(upload.finalPath, target);
        await fsp.lutimes(upload.finalPath, mtime, mtime).catch(() => {});
      } else {
        const file = upload.file!;
        upload.file = null;
        await file.chmod(upload.mode); // open() applied our umask; the mode must be exact
        await file.close();
        await fsp.rename(upload.tmpPath!, upload.finalPath);
        upload.tmpPath = null;
        await fsp.utimes(upload.finalPath, mtime, mtime);
      }
    } catch (err) {
      await this.discardUploadOf(upload);
      const what = upload.symlink ? 'symlink failed' : "couldn't create file";
      return this.fail(`${what}: ${strerror(err)}`);
    }
    this.reply(u32(ID_OKAY, 0));
  }

  private async replaceWithSymlink(path: Buffer, target: Buffer): Promise<void> {
    const current = await fsp.readlink(path, { encoding: 'buffer' }).catch(() => null);
    if (current && current.equals(target)) return;
    await fsp.unlink(path).catch(() => {});
    try {
      await fsp.symlink(target, path);
    } catch (err) {
      if (errnoName(err) !== 'ENOENT') throw err;
      await fsp.mkdir(dirnameOf(path), { recursive: true, mode: 0o775 });
      await fsp.symlink(target, path);
    }
  }

  private async discardUpload(): Promise<void> {
    const upload = this.upload;
    this.upload = null;
    if (upload) await this.discardUploadOf(upload);
  }

  private async discardUploadOf(upload: Upload): Promise<void> {
    const file = upload.file;
    const tmp = upload.tmpPath;
    upload.file = null;
    upload.tmpPath = null;
    if (file) await file.close().catch(() => {});
    if (tmp) await fsp.unlink(tmp).catch(() => {});
    if (file || tmp) this.ctx.log.info('discarded partial upload', { path: upload.finalPath.toString('latin1').slice(0, 200) });
  }
}
