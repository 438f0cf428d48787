// skipped.jsonl: the cycles the device agent skipped during this run (device storage low, a
// snapshot that did not fit), copied from its skipped.log so the run says where it has holes and
// why (`kml report` lists them). One JSON line per skipped cycle, appended and fsynced; keyed by
// boot_id + seq, so copying the same skipped.log lines again adds nothing.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from './durable.js';

export const SKIPPED = 'skipped.jsonl';

export interface SkippedRecord {
  schemaVersion: 1;
  serial: string;
  runId: string;
  bootId: string;
  seq: number;
  /** Device wall clock (epoch s) of the skipped cycle. */
  wallTime: number | null;
  /** The agent's word: low_space, no_space, meta_<ERRNO>, mkdir_<ERRNO>, publish_<ERRNO>. */
  reason: string;
  /** Host time (ISO) the record was stored. */
  recordedAt: string;
}

export const skippedKey = (bootId: string, seq: number): string => `${bootId}#${seq}`;

/** Records of a run; a torn or bad line is ignored (the next append starts a fresh line). */
export function parseSkippedRecords(text: string): SkippedRecord[] {
  const out: SkippedRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const o = JSON.parse(line) as Partial<SkippedRecord>;
      if (o?.schemaVersion !== 1 || typeof o.bootId !== 'string' || typeof o.seq !== 'number' || !Number.isSafeInteger(o.seq) || typeof o.reason !== 'string') continue;
      out.push({
        schemaVersion: 1, serial: String(o.serial ?? ''), runId: String(o.runId ?? ''), bootId: o.bootId, seq: o.seq,
        wallTime: typeof o.wallTime === 'number' ? o.wallTime : null, reason: o.reason.slice(0, 64), recordedAt: String(o.recordedAt ?? ''),
      });
    } catch {
      // torn line (crash or full disk mid-append)
    }
  }
  return out;
}

export async function readSkippedRecords(runDir: string): Promise<SkippedRecord[]> {
  try {
    return parseSkippedRecords(await fs.readFile(path.join(runDir, SKIPPED), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Append and fsync; a write that fails part-way (ENOSPC) is cut off again. */
export async function appendSkippedRecords(runDir: string, recs: SkippedRecord[]): Promise<void> {
  if (!recs.length) return;
  const file = path.join(runDir, SKIPPED);
  let created = false;
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'wx');
    created = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    fh = await fs.open(file, 'a+'); // a+: the last byte is read to see whether a torn line needs ending
  }
  try {
    const before = (await fh.stat()).size;
    let lead = '';
    if (before > 0) {
      const last = Buffer.alloc(1);
      await fh.read(last, 0, 1, before - 1);
      if (last[0] !== 0x0a) lead = '\n';
    }
    try {
      await fh.writeFile(lead + recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
      await fh.sync();
    } catch (e) {
      await fh.truncate(before).catch(() => {});
      throw e;
    }
  } finally {
    await fh.close();
  }
  if (created) await fsyncDir(runDir);
}
