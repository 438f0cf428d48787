// Opening the store for a collector: lock the device's folder, then resume or create the run,
// then build the exactly-once index over every run of that serial in this store.
import path from 'node:path';
import { ExitCode, KmlError } from '../errors.js';
import { SnapshotIndex } from './dedup.js';
import { acquireLock, type HeldLock } from './lock.js';
import { STORE_LOCK, deviceDirOf } from './layout.js';
import { createRun, entriesOfAllRuns, findResumableRun, openRun, readRunJson, type OpenRun, type RunSettings } from './run.js';

export interface OpenStoreOptions {
  out: string;
  serial: string;
  /** An explicit run folder to continue (--resume). */
  resume?: string;
  /** Always start a new run (--new-run). */
  newRun?: boolean;
  /** Only continue an existing run; never create one (kml pull/stop). */
  noCreate?: boolean;
  settings: RunSettings;
  command: string;
}

export interface OpenStore {
  run: OpenRun;
  index: SnapshotIndex;
  lock: HeldLock;
  resumed: boolean;
}

export function lockPathFor(out: string, serial: string): string {
  return path.join(deviceDirOf(out, serial), STORE_LOCK);
}

export async function openStoreForCollect(o: OpenStoreOptions): Promise<OpenStore | undefined> {
  let out = o.out;
  if (o.resume) {
    const json = await readRunJson(o.resume);
    if (json.serial !== o.serial) {
      throw new KmlError(ExitCode.USAGE, `--resume ${o.resume} is a run of ${json.serial}, not ${o.serial}`);
    }
    out = path.dirname(path.dirname(path.resolve(o.resume)));
  }
  const lock = await acquireLock(lockPathFor(out, o.serial), { command: o.command, what: `device ${o.serial} in ${out}` });
  try {
    let run: OpenRun | undefined;
    let resumed = false;
    const existing = o.resume ?? (o.newRun ? undefined : await findResumableRun(out, o.serial));
    if (existing) {
      run = await openRun(existing, { ...o.settings, command: o.command });
      resumed = true;
    } else if (!o.noCreate) {
      run = await createRun(out, o.serial, { ...o.settings, command: o.command });
    }
    if (!run) {
      await lock.release();
      return undefined;
    }
    const index = new SnapshotIndex(await entriesOfAllRuns(out, o.serial));
    return { run, index, lock, resumed };
  } catch (e) {
    await lock.release();
    throw e;
  }
}
