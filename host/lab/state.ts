// Per-device state on disk: <lab state dir>/dev-<slot>/. `kml lab up` claims a slot and writes
// config.json; the device's supervisor owns status.json from then on. Files are replaced atomically.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Accel } from './accel.js';
import type { LabBuild, LabSu } from './guest-config.js';

export interface DeviceOptions {
  memMb: number;
  dataSizeMb: number;
  kmemleak: boolean;
  debugfsMounted: boolean;
  /** Absent in configs written before it existed: userdebug-root. */
  build?: LabBuild;
  su?: LabSu;
  cpus: number;
  accelRequest: 'auto' | 'tcg' | 'kvm';
}

export interface DeviceConfig {
  schemaVersion: 1;
  slot: number;
  createdAt: string;
  options: DeviceOptions;
  accel: Accel;
  qemu: string;
  kernelDir: string;
  kernelRelease: string;
  bzImage: string;
  initramfs: string;
  /** Preferred relay port (the previous one of this slot, so serials stay stable); 0 = any. */
  relayPort: number;
  /**
   * Tests: the process that owns this device. When it dies (a crashed test run), the supervisor
   * stops the device and deletes its data disk instead of leaving a VM behind. Unset for `kml lab up`.
   */
  ownerPid?: number;
}

export type DeviceState = 'starting' | 'booting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface DeviceStatus {
  schemaVersion: 1;
  slot: number;
  serial: string;
  relayPort: number;
  forwardPort: number;
  supervisorPid: number;
  qemuPid?: number;
  state: DeviceState;
  plugged: boolean;
  /** Boots of this QEMU process (1 = first boot; guest reboots add one). */
  bootCount: number;
  bootStartedAt?: string;
  /** When adbd last started listening in the guest. */
  adbdListeningAt?: string;
  /** QEMU start (or guest reset) to adbd listening, for the latest boot. */
  lastBootMs?: number;
  accel: Accel;
  kmemleak: boolean;
  /** Absent in status files written before it existed: userdebug-root. */
  build?: LabBuild;
  memMb: number;
  startedAt: string;
  updatedAt: string;
  error?: string;
}

export class DeviceDir {
  constructor(readonly root: string, readonly slot: number) {}
  get dir(): string { return path.join(this.root, `dev-${this.slot}`); }
  file(name: string): string { return path.join(this.dir, name); }
  get configFile(): string { return this.file('config.json'); }
  get statusFile(): string { return this.file('status.json'); }
  get lockFile(): string { return this.file('slot.lock'); }
  get controlSocket(): string { return this.file('control.sock'); }
  get qmpSocket(): string { return this.file('qmp.sock'); }
  get qemuPidFile(): string { return this.file('qemu.pid'); }
  get dataImage(): string { return this.file('data.img'); }
  get cfgDir(): string { return this.file('cfg'); }
  get consoleLog(): string { return this.file('console.log'); }
  get supervisorLog(): string { return this.file('supervisor.log'); }

  readConfig(): DeviceConfig | undefined { return readJson<DeviceConfig>(this.configFile); }
  readStatus(): DeviceStatus | undefined { return readJson<DeviceStatus>(this.statusFile); }
  writeConfig(c: DeviceConfig): void { writeJsonAtomic(this.configFile, c); }
  writeStatus(s: DeviceStatus): void { writeJsonAtomic(this.statusFile, s); }
}

export function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  renameSync(tmp, file);
}

export function pidAlive(pid: number | undefined): boolean {
  if (!pid || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Is `pid` a lab supervisor (not some other process that reused the pid)? */
export function isSupervisor(pid: number | undefined): boolean {
  if (!pidAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('supervisor-main');
  } catch {
    return true; // no /proc: trust the pid
  }
}

/** The slots that have a folder, in order. */
export function listSlots(root: string): number[] {
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names
    .map((n) => /^dev-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

function lockOwner(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Claim the lowest slot nobody holds: its slot.lock is created exclusively with our pid (the
 * supervisor later rewrites it with its own). A lock whose owner is dead is stale and taken over.
 */
export function claimSlot(root: string): DeviceDir {
  mkdirSync(root, { recursive: true });
  for (let slot = 1; slot < 10_000; slot++) {
    const dev = new DeviceDir(root, slot);
    // Private: the control socket drives the device, the data disk holds whatever the user pushed.
    mkdirSync(dev.dir, { recursive: true, mode: 0o700 });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(dev.lockFile, 'wx');
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return dev;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const owner = lockOwner(dev.lockFile);
        if (owner !== undefined && pidAlive(owner)) break; // held: next slot
        try {
          unlinkSync(dev.lockFile); // stale
        } catch {
          // someone else removed it first; retry the exclusive create
        }
      }
    }
  }
  throw new Error('no free lab slot');
}

export function releaseSlot(dev: DeviceDir, pid: number = process.pid): void {
  if (lockOwner(dev.lockFile) === pid) {
    try {
      unlinkSync(dev.lockFile);
    } catch {
      // already gone
    }
  }
}

export function takeOverSlot(dev: DeviceDir, pid: number): void {
  writeFileSync(dev.lockFile, `${pid}\n`);
}

export function slotHeld(dev: DeviceDir): boolean {
  return existsSync(dev.lockFile) && pidAlive(lockOwner(dev.lockFile));
}
