// A second lock per device, host-wide (not per store): two collectors on this host must not
// drive one device even with different --out folders (the second one's doctor may run
// `adb root`, whose adbd restart kills the first one's agent, and both would pull the same
// snapshots). Keyed by adb server port + serial; lives in $XDG_RUNTIME_DIR or the temp dir,
// in a folder only this user can write.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquireLock, type HeldLock, type LockKind } from '../store/lock.js';
import { serialSafe } from '../store/layout.js';

export function hostLockDir(): string | undefined {
  const base = process.env.XDG_RUNTIME_DIR || os.tmpdir();
  const dir = path.join(base, `kml-${process.getuid?.() ?? 'user'}`);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    // Someone else's (or a symlinked) folder in a shared /tmp: do without the host-wide lock.
    if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid())) return undefined;
    return dir;
  } catch {
    return undefined;
  }
}

export function hostLockBase(adbPort: number, serial: string): string | undefined {
  const dir = hostLockDir();
  return dir ? path.join(dir, `device-${adbPort}-${serialSafe(serial)}.lock`) : undefined;
}

/** Take the host-wide device lock (CONFLICT when a live collector holds it); undefined when unavailable. */
export async function lockDeviceOnHost(adbPort: number, serial: string, command: string, kind?: LockKind): Promise<HeldLock | undefined> {
  const base = hostLockBase(adbPort, serial);
  if (!base) return undefined;
  return acquireLock(base, { command, kind, what: `device ${serial} (adb server port ${adbPort}) on this host` });
}
