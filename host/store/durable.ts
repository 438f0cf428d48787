// Durable file operations: a file is either absent or complete under its final name, and a
// rename is on disk (directory fsynced) before anything downstream (manifest, device delete)
// relies on it. Files and folders are created with the user's umask (no explicit modes).
import { createHash, randomBytes } from 'node:crypto';
import { constants as FS } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { TEMP_PREFIX } from './layout.js';

/** fsync a directory so a rename/create inside it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, FS.O_RDONLY | (FS.O_DIRECTORY ?? 0));
  try {
    await fh.sync();
  } catch (e) {
    // Some filesystems (and all of Windows) refuse fsync on a directory; the rename is still atomic.
    if (!['EINVAL', 'EISDIR', 'EPERM', 'EBADF'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    await fh.close();
  }
}

/** mkdir -p, fsyncing each parent whose entry list changed, so the new folders are durable too. */
export async function mkdirDurable(dir: string): Promise<void> {
  const abs = path.resolve(dir);
  const missing: string[] = [];
  for (let d = abs; ; d = path.dirname(d)) {
    try {
      await fs.stat(d);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      missing.push(d);
      if (path.dirname(d) === d) break;
    }
  }
  if (missing.length === 0) return;
  await fs.mkdir(abs, { recursive: true });
  for (const d of missing) await fsyncDir(path.dirname(d));
}

/** A temp file name in `dir` that kml's startup cleanup recognises. */
export function tempPathIn(dir: string, forName: string): string {
  const base = path.basename(forName).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 60);
  return path.join(dir, `${TEMP_PREFIX}${randomBytes(4).toString('hex')}-${base}`);
}

/** Steps of the atomic write sequence, named so tests can stop after each one. */
export type WriteStep = 'temp-written' | 'temp-synced' | 'renamed' | 'dir-synced';

export interface AtomicWriteOptions {
  /** Test hook: called after each step; throwing from it simulates a crash at that point. */
  onStep?: (step: WriteStep, tempPath: string) => void | Promise<void>;
}

/** temp in the same dir → write → fsync file → rename → fsync dir. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const dir = path.dirname(file);
  const tmp = tempPathIn(dir, file);
  const fh = await fs.open(tmp, 'wx');
  let closed = false;
  try {
    await fh.writeFile(data);
    await opts.onStep?.('temp-written', tmp);
    await fh.sync();
    await fh.close();
    closed = true;
    await opts.onStep?.('temp-synced', tmp);
    await fs.rename(tmp, file);
    await opts.onStep?.('renamed', tmp);
    await fsyncDir(dir);
    await opts.onStep?.('dir-synced', tmp);
  } catch (e) {
    if (!closed) await fh.close().catch(() => {});
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
}

/** sha256 + size of a file on the host, streamed. */
export async function hashFile(file: string): Promise<{ bytes: number; sha256: string }> {
  const h = createHash('sha256');
  const fh = await fs.open(file, 'r');
  let bytes = 0;
  try {
    const buf = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { bytes, sha256: h.digest('hex') };
}

export function sha256Of(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Remove kml temp files left by a crash anywhere under `root` (depth-limited: run dir, boot dirs,
 * mem dirs, conflict dirs). Returns the removed paths. Never follows symlinks.
 */
export async function removeStaleTemps(root: string, maxDepth = 4): Promise<string[]> {
  const removed: string[] = [];
  async function walk(dir: string, depth: number): Promise<void> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const ent of entries) {
      const p = path.join(dir, ent.name);
      if (ent.name.startsWith(TEMP_PREFIX) && (ent.isFile() || ent.isSymbolicLink())) {
        await fs.rm(p, { force: true });
        removed.push(p);
      } else if (ent.isDirectory() && depth < maxDepth) {
        await walk(p, depth + 1);
      }
    }
  }
  await walk(root, 0);
  return removed;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
