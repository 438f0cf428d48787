// Opening the store for a collector, in two steps so the device is locked before anything
// touches it (doctor may restart adbd, which would kill another collector's agent):
//   1. lockDevice(): one collector per device per store (ExitCode.CONFLICT otherwise);
//   2. openRunFor(): resume or create the run, and build the exactly-once index over every run
//      of that serial in this store.
import path from 'node:path';
import { ExitCode, KmlError } from '../errors.js';
import { SnapshotIndex } from './dedup.js';
import { acquireLock, type HeldLock, type LockKind } from './lock.js';
import { STORE_LOCK, deviceDirOf } from './layout.js';
import { createRun, entriesOfAllRuns, findResumableRun, openRun, readRunJson, type OpenRun, type RunSettings } from './run.js';

export function lockPathFor(out: string, serial: string): string {
  return path.join(deviceDirOf(out, serial), STORE_LOCK);
}

/** The store folder a --resume RUN_DIR belongs to (checked against the serial). */
export async function outOfRunDir(runDir: string, serial: string): Promise<string> {
  const json = await readRunJson(runDir);
  if (json.serial !== serial) {
    throw new KmlError(ExitCode.USAGE, `--resume ${runDir} is a run of ${json.serial}, not ${serial}`);
  }
  return path.dirname(path.dirname(path.resolve(runDir)));
}

export async function lockDevice(out: string, serial: string, command: string, kind?: LockKind): Promise<HeldLock> {
  return acquireLock(lockPathFor(out, serial), { command, kind, what: `device ${serial} in ${path.resolve(out)}` });
}

export interface OpenRunOptions {
  out: string;
  serial: string;
  /** An explicit run folder to continue (--resume). */
  resume?: string;
  /** Always start a new run (--new-run). */
  newRun?: boolean;
  /** Only continue an existing run; return undefined instead of creating one. */
  noCreate?: boolean;
  settings: RunSettings;
  command: string;
}

export interface OpenedRun {
  run: OpenRun;
  index: SnapshotIndex;
  resumed: boolean;
}

/** Call with the device lock held. */
export async function openRunFor(o: OpenRunOptions): Promise<OpenedRun | undefined> {
  const existing = o.resume ?? (o.newRun ? undefined : await findResumableRun(o.out, o.serial));
  let run: OpenRun | undefined;
  if (existing) run = await openRun(existing, { ...o.settings, command: o.command });
  else if (!o.noCreate) run = await createRun(o.out, o.serial, { ...o.settings, command: o.command });
  if (!run) return undefined;
  const index = new SnapshotIndex(await entriesOfAllRuns(o.out, o.serial));
  return { run, index, resumed: Boolean(existing) };
}
