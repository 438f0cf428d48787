// manifest.jsonl: one JSON line per stored snapshot, appended and fsynced before the device copy
// is deleted. The reader is tolerant: a torn last line (crash or full disk mid-append) is ignored
// and reported; the appender cuts it off first so the file stays one-record-per-line.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from './durable.js';

export const MANIFEST_SCHEMA_VERSION = 1;

export interface ManifestFile {
  /** Name on the device (kmemleak.txt, meta.txt, meminfo.txt, ...). */
  name: string;
  /** Where it is stored, relative to the run dir (boot-<id>/kmemleak_log_<N>.txt, ...). */
  path: string;
  /** Size and sha256 of the stored file. */
  bytes: number;
  sha256: string;
  /** Size and sha256 of the device's file when the stored file is a conversion (meta.txt → meta_<N>.json). */
  source?: { bytes: number; sha256: string };
}

export interface ManifestEntry {
  schemaVersion: 1;
  serial: string;
  bootId: string;
  seq: number;
  /** Device wall clock (epoch seconds) and uptime when the snapshot was taken, from its meta. */
  wallTime: number | null;
  uptimeS: number | null;
  files: ManifestFile[];
  /** Host time (ISO) when the snapshot became durable in the store. */
  pulledAt: string;
  /** Identity of the device-side content: see snapshotDigest(). */
  digest: string;
  runId: string;
  /** Present (true) when another snapshot with the same bootId+seq but other content was stored first. */
  conflict?: true;
  leakCount?: number | null;
}

/** The device-side content hash of a file (what the agent wrote), whatever form it is stored in. */
export function deviceSha256(f: ManifestFile): string {
  return f.source?.sha256 ?? f.sha256;
}

export interface ManifestRead {
  entries: ManifestEntry[];
  /** The incomplete last line, if the file does not end with a newline. */
  torn?: { line: number; text: string };
  /** Complete lines that are not valid entries (corruption); kept in the file, skipped here. */
  bad: { line: number; text: string; reason: string }[];
  /** Byte length of the valid prefix (everything up to and including the last newline). */
  validBytes: number;
}

function validate(o: unknown): string | undefined {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not an object';
  const e = o as Record<string, unknown>;
  if (e.schemaVersion !== 1) return `unknown schemaVersion ${JSON.stringify(e.schemaVersion)}`;
  if (typeof e.serial !== 'string') return 'serial missing';
  if (typeof e.bootId !== 'string') return 'bootId missing';
  if (typeof e.seq !== 'number' || !Number.isSafeInteger(e.seq)) return 'seq missing';
  if (!Array.isArray(e.files)) return 'files missing';
  for (const f of e.files as unknown[]) {
    const x = f as Partial<ManifestFile> | null;
    if (typeof x !== 'object' || x === null || typeof x.name !== 'string' || typeof x.path !== 'string' || typeof x.sha256 !== 'string' || typeof x.bytes !== 'number') {
      return 'a file entry lacks name, path, bytes or sha256';
    }
  }
  if (typeof e.digest !== 'string') return 'digest missing';
  return undefined;
}

export function parseManifest(text: string): ManifestRead {
  const out: ManifestRead = { entries: [], bad: [], validBytes: 0 };
  const lastNl = text.lastIndexOf('\n');
  const complete = lastNl < 0 ? '' : text.slice(0, lastNl);
  const tail = text.slice(lastNl + 1);
  out.validBytes = Buffer.byteLength(text.slice(0, lastNl + 1));
  const lines = complete === '' && lastNl < 0 ? [] : complete.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      out.bad.push({ line: i + 1, text: line.slice(0, 200), reason: 'not JSON' });
      return;
    }
    const why = validate(o);
    if (why) out.bad.push({ line: i + 1, text: line.slice(0, 200), reason: why });
    else out.entries.push(o as ManifestEntry);
  });
  if (tail !== '') out.torn = { line: lines.length + 1, text: tail.slice(0, 200) };
  return out;
}

export async function readManifest(file: string): Promise<ManifestRead> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], bad: [], validBytes: 0 };
    throw e;
  }
  return parseManifest(text);
}

/** Cut a torn last line off so the next append starts on a line of its own. Returns what was cut. */
export async function repairManifest(file: string): Promise<ManifestRead['torn']> {
  const read = await readManifest(file);
  if (!read.torn) return undefined;
  const fh = await fs.open(file, 'r+');
  try {
    await fh.truncate(read.validBytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return read.torn;
}

/**
 * Append one entry and fsync. If the write fails part-way (ENOSPC), the partial line is cut off
 * again so the manifest never holds half a record that a later append would glue onto.
 */
export async function appendManifest(file: string, entry: ManifestEntry): Promise<void> {
  const line = JSON.stringify(entry) + '\n';
  let created = false;
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'wx');
    created = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    fh = await fs.open(file, 'a');
  }
  try {
    const before = (await fh.stat()).size;
    try {
      await fh.writeFile(line); // loops over short writes; throws ENOSPC
      await fh.sync();
    } catch (e) {
      await fh.truncate(before).catch(() => {});
      throw e;
    }
  } finally {
    await fh.close();
  }
  if (created) await fsyncDir(path.dirname(file));
}
