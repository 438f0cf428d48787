// One collector per device per store: a lock file holding the owner's pid, its start time and the
// host's boot id. A lock whose owner is gone (kill -9, host reboot, pid reused by another program)
// is stale and taken over; a live owner makes the second collector fail with ExitCode.CONFLICT.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ExitCode, KmlError, ioError } from '../errors.js';
import { fsyncDir } from './durable.js';

export interface LockOwner {
  pid: number;
  hostname: string;
  /** /proc/sys/kernel/random/boot_id of the host when the lock was taken (null off Linux). */
  hostBootId: string | null;
  /** Field 22 of /proc/<pid>/stat: tells a live owner from another process that reused its pid. */
  procStart: string | null;
  startedAt: string;
  command: string;
  runDir?: string;
  /**
   * What the holder does: 'collect' holds the device until asked to stop (`kml stop` sends it
   * SIGTERM); 'pull' and 'stop' are one-shot commands that release it by themselves. Locks
   * written before this field existed are taken for collectors.
   */
  kind?: LockKind;
}

export type LockKind = 'collect' | 'pull' | 'stop';

export function hostBootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

export function procStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parens: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // field 22 overall = index 19 after pid, comm
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export type OwnerState = 'alive' | 'dead' | 'unknown';

/** Is the process that wrote this lock still running? 'unknown' for another host's lock. */
export function ownerState(o: LockOwner): OwnerState {
  if (o.hostname !== os.hostname()) return 'unknown';
  const boot = hostBootId();
  if (o.hostBootId && boot && o.hostBootId !== boot) return 'dead';
  if (!Number.isInteger(o.pid) || o.pid <= 0 || !pidAlive(o.pid)) return 'dead';
  if (o.procStart && procStartTime(o.pid) !== o.procStart) return 'dead';
  return 'alive';
}

export async function readLock(file: string): Promise<LockOwner | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const o = JSON.parse(text) as LockOwner;
    if (typeof o.pid === 'number') return o;
  } catch {
    /* torn lock file: its writer died while writing it */
  }
  return { pid: -1, hostname: os.hostname(), hostBootId: null, procStart: null, startedAt: '', command: '(unreadable lock)' };
}

export interface HeldLock {
  file: string;
  owner: LockOwner;
  /** Stale lock that was taken over, if any. */
  tookOver?: LockOwner;
  release(): Promise<void>;
}

export interface AcquireOptions {
  command: string;
  kind?: LockKind;
  runDir?: string;
  /** What is being locked, for the message ("device 127.0.0.1:5555 in /out"). */
  what: string;
}

function describe(o: LockOwner): string {
  return `pid ${o.pid} on ${o.hostname}, started ${o.startedAt || 'at an unknown time'}${o.command ? ` (${o.command})` : ''}`;
}

/**
 * Lock files are `<base>.<generation>`; the highest generation is the lock. Taking over a stale
 * generation g means creating g+1 with O_EXCL, so among contenders for the same stale lock exactly
 * one wins, and nobody ever removes a lock it has not proved stale.
 */
async function generations(base: string): Promise<number[]> {
  const dir = path.dirname(base);
  const prefix = path.basename(base) + '.';
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names
    .filter((n) => n.startsWith(prefix) && /^\d{1,15}$/.test(n.slice(prefix.length)))
    .map((n) => Number(n.slice(prefix.length)))
    .sort((a, b) => a - b);
}

/** The current lock holder of `base`, if any (live or stale), and its file. */
export async function currentLock(base: string): Promise<{ file: string; owner: LockOwner } | undefined> {
  for (let i = 0; i < 5; i++) {
    const gens = await generations(base);
    if (gens.length === 0) return undefined;
    const file = `${base}.${gens[gens.length - 1]}`;
    const owner = await readLock(file);
    if (owner) return { file, owner };
  }
  return undefined;
}

/** Take the lock or fail with CONFLICT (a live owner) after taking over a stale one if needed. */
export async function acquireLock(base: string, opts: AcquireOptions): Promise<HeldLock> {
  const owner: LockOwner = {
    pid: process.pid,
    hostname: os.hostname(),
    hostBootId: hostBootId(),
    procStart: procStartTime(process.pid),
    startedAt: new Date().toISOString(),
    command: opts.command,
    runDir: opts.runDir,
    kind: opts.kind,
  };
  let tookOver: LockOwner | undefined;
  try {
    await fs.mkdir(path.dirname(base), { recursive: true });
  } catch (e) {
    throw ioError(`creating ${path.dirname(base)}`, e);
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    const gens = await generations(base);
    const top = gens.length ? gens[gens.length - 1] : 0;
    if (gens.length) {
      const cur = await readLock(`${base}.${top}`);
      if (!cur) continue; // released meanwhile
      const state = ownerState(cur);
      if (state === 'alive') {
        throw new KmlError(ExitCode.CONFLICT, `another kml collector already drives ${opts.what}: ${describe(cur)}`, {
          hint: `stop it first (kml stop, or kill ${cur.pid}), or use another --out folder`,
          details: { lock: `${base}.${top}`, owner: cur },
        });
      }
      if (state === 'unknown') {
        throw new KmlError(ExitCode.CONFLICT, `${opts.what} is locked by a kml collector on another host: ${describe(cur)}`, {
          hint: `if that collector is gone, delete ${base}.${top}`,
          details: { lock: `${base}.${top}`, owner: cur },
        });
      }
      tookOver = cur;
    }
    const file = `${base}.${top + 1}`;
    const tmp = `${base}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      await fs.writeFile(tmp, JSON.stringify(owner) + '\n');
      // link() is the O_EXCL create of a file that already has its content: no torn lock files
      await fs.link(tmp, file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue; // another contender won g+1
      throw ioError(`creating lock ${file}`, e);
    } finally {
      await fs.rm(tmp, { force: true }).catch(() => {});
    }
    await fsyncDir(path.dirname(base)).catch(() => {});
    for (const g of gens) await fs.rm(`${base}.${g}`, { force: true }).catch(() => {}); // proved stale
    return {
      file,
      owner,
      tookOver,
      release: async () => {
        await fs.rm(file, { force: true });
      },
    };
  }
  throw new KmlError(ExitCode.CONFLICT, `could not take the lock ${base}: other kml processes keep changing it`);
}
