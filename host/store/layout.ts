// Store layout: every path kml writes under --out is built here, from validated parts only.
// Nothing the device sends (boot ids, sequence numbers, file names) reaches a path unchecked.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ExitCode, KmlError } from '../errors.js';

/** `127.0.0.1:5555` → `127.0.0.1_5555`: every char outside [A-Za-z0-9._-] becomes `_`. */
export function serialSafe(serial: string): string {
  if (!serial) throw new KmlError(ExitCode.USAGE, 'empty device serial');
  let s = serial.replace(/[^A-Za-z0-9._-]/g, '_');
  // `.` and `..` are valid after the substitution but name the wrong folders.
  if (/^\.+$/.test(s)) s = s.replace(/\./g, '_');
  if (s.length > 200) s = s.slice(0, 200);
  return s;
}

/** Run id: UTC timestamp plus a short random suffix, e.g. 20261127T001500Z-3f9a. Sorts by time. */
export function newRunId(now: Date = new Date(), random: string = randomBytes(2).toString('hex')): string {
  const iso = now.toISOString(); // 2026-11-27T00:15:00.123Z
  const stamp = iso.slice(0, 19).replace(/[-:]/g, '') + 'Z';
  return `${stamp}-${random}`;
}

export const RUN_ID_RE = /^\d{8}T\d{6}Z-[0-9a-f]{4,16}$/;

/** A boot id as the kernel prints it (a UUID). Anything else is refused: it becomes a folder name. */
export const BOOT_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function checkBootId(bootId: string): string {
  const b = bootId.trim().toLowerCase();
  if (!BOOT_ID_RE.test(b)) throw new KmlError(ExitCode.INTERNAL, `device sent an invalid boot_id ${JSON.stringify(bootId.slice(0, 80))}`);
  return b;
}

/** Sequence numbers are decimal, no padding, 1..2^53. */
export function checkSeq(seq: number | string): number {
  const n = typeof seq === 'number' ? seq : /^\d{1,15}$/.test(seq) ? Number(seq) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new KmlError(ExitCode.INTERNAL, `device sent an invalid sequence number ${JSON.stringify(String(seq).slice(0, 40))}`);
  return n;
}

/** Memory-state files the agent may publish beside a report; stored under mem_<N>/. */
export const MEM_FILES = ['meminfo.txt', 'vmstat.txt', 'buddyinfo.txt', 'zoneinfo.txt', 'slabinfo.txt', 'pagetypeinfo.txt'] as const;

/** The device files of one snapshot that kml knows how to store. Others are ignored (and logged). */
export const KNOWN_DEVICE_FILES: readonly string[] = ['kmemleak.txt', 'meta.txt', 'kmsg.txt', ...MEM_FILES];

export function isKnownDeviceFile(name: string): boolean {
  return KNOWN_DEVICE_FILES.includes(name);
}

export function runDirOf(out: string, serial: string, runId: string): string {
  return path.join(out, serialSafe(serial), runId);
}

export function deviceDirOf(out: string, serial: string): string {
  return path.join(out, serialSafe(serial));
}

export const RUN_JSON = 'run.json';
export const MANIFEST = 'manifest.jsonl';
export const RUN_LOG = 'kml.log';
export const STORE_LOCK = '.kml-collect.lock';
/** Prefix of every temporary file kml creates in the store; removed when a run is reopened. */
export const TEMP_PREFIX = '.kml-tmp-';

/** Boot segment folder, relative to the run dir. */
export function bootDirName(bootId: string): string {
  return `boot-${checkBootId(bootId)}`;
}

/**
 * Where one device file of snapshot (bootId, seq) is stored, relative to the run dir.
 * `variant` places a conflicting copy (same boot_id+seq, different content) beside the first one
 * without overwriting it: boot-<id>/conflict-<digest12>/...
 */
export function storePathFor(deviceName: string, bootId: string, seq: number, variant?: string): string {
  const n = checkSeq(seq);
  let base = bootDirName(bootId);
  if (variant !== undefined) {
    if (!/^[0-9a-f]{6,64}$/.test(variant)) throw new KmlError(ExitCode.INTERNAL, `bad conflict variant ${variant}`);
    base = path.join(base, `conflict-${variant}`);
  }
  if (deviceName === 'kmemleak.txt') return path.join(base, `kmemleak_log_${n}.txt`);
  if (deviceName === 'meta.txt') return path.join(base, `meta_${n}.json`);
  if (deviceName === 'kmsg.txt') return path.join(base, `kmsg_${n}.txt`);
  if ((MEM_FILES as readonly string[]).includes(deviceName)) return path.join(base, `mem_${n}`, deviceName);
  throw new KmlError(ExitCode.INTERNAL, `not a snapshot file kml stores: ${JSON.stringify(deviceName.slice(0, 80))}`);
}

/** Resolve a run-relative path and prove it stays inside the run dir. */
export function insideRun(runDir: string, rel: string): string {
  const abs = path.resolve(runDir, rel);
  const root = path.resolve(runDir) + path.sep;
  if (!abs.startsWith(root)) throw new KmlError(ExitCode.INTERNAL, `path escapes the run folder: ${rel}`);
  return abs;
}
