// The host output folder on a tiny filesystem: a tmpfs the soak mounts over the store folder. The
// host-full fault shrinks it to what is in use plus a sliver and fills that sliver, so kml's next
// writes get ENOSPC; clearing the fault removes the filler and grows the tmpfs again
// (`mount -o remount,size=`). Needs root (CI and the lab machine run as root).
//
// Cleanup: unmount() in the soak's finally block and on SIGINT/SIGTERM, a synchronous umount on
// process exit, and sweepStaleMounts() at start for mounts of earlier soaks whose process died
// (the mount's source names the owning pid: kml-soak-<pid>).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const PAGE = 4096;

function mounts(): Array<{ source: string; target: string; fstype: string }> {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').filter(Boolean).map((l) => {
    const [source, target, fstype] = l.split(' ');
    // /proc/mounts escapes spaces etc. as \040
    return { source, target: target.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))), fstype };
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Unmount tmpfs mounts left by soaks whose process is gone. Returns what it unmounted. */
export function sweepStaleMounts(): string[] {
  const done: string[] = [];
  for (const m of mounts()) {
    const owner = /^kml-soak-(\d+)$/.exec(m.source);
    if (!owner || m.fstype !== 'tmpfs' || pidAlive(Number(owner[1]))) continue;
    try {
      execFileSync('umount', ['-l', m.target], { stdio: 'ignore' });
      done.push(m.target);
    } catch {
      // leave it; the next sweep tries again
    }
  }
  return done;
}

export function canMount(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export class TinyHostFs {
  private mounted = false;
  private readonly filler: string;
  private readonly onExit = () => this.unmountSync();

  private constructor(readonly dir: string, readonly baseMb: number) {
    this.filler = path.join(dir, '.kml-soak-filler');
  }

  static mount(dir: string, baseMb: number): TinyHostFs {
    fs.mkdirSync(dir, { recursive: true });
    const t = new TinyHostFs(dir, baseMb);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${baseMb}m,mode=0755`, `kml-soak-${process.pid}`, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    t.mounted = true;
    process.once('exit', t.onExit);
    return t;
  }

  usage(): { sizeBytes: number; usedBytes: number; freeBytes: number } {
    const s = fs.statfsSync(this.dir);
    return { sizeBytes: s.blocks * s.bsize, usedBytes: (s.blocks - s.bfree) * s.bsize, freeBytes: s.bavail * s.bsize };
  }

  private remount(bytes: number): void {
    const size = Math.ceil(bytes / PAGE) * PAGE;
    execFileSync('mount', ['-o', `remount,size=${size}`, this.dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  }

  /** Shrink to what is used plus `sliverBytes`, then fill the sliver: the next write gets ENOSPC. */
  fill(sliverBytes = 256 * 1024): { sizeBytes: number; usedBytes: number } {
    let lastErr: unknown;
    for (let i = 0; i < 20; i++) {
      try {
        this.remount(this.usage().usedBytes + sliverBytes + i * 64 * 1024);
        lastErr = undefined;
        break;
      } catch (e) {
        lastErr = e; // kml wrote between our statfs and the remount: the size went below usage
      }
    }
    if (lastErr) throw new Error(`could not shrink the tmpfs at ${this.dir}: ${(lastErr as Error).message}`);
    const fd = fs.openSync(this.filler, 'a');
    const block = Buffer.alloc(64 * 1024);
    try {
      for (;;) {
        try {
          fs.writeSync(fd, block);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
      // the last partial block
      for (let n = 32 * 1024; n >= 512; n /= 2) {
        try {
          fs.writeSync(fd, block.subarray(0, n));
        } catch {
          // next smaller size
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    const u = this.usage();
    return { sizeBytes: u.sizeBytes, usedBytes: u.usedBytes };
  }

  /** Remove the filler and grow back to the base size. */
  grow(): void {
    fs.rmSync(this.filler, { force: true });
    this.remount(this.baseMb * 1024 * 1024);
  }

  unmount(): void {
    if (!this.mounted) return;
    process.off('exit', this.onExit);
    this.unmountSync();
  }

  private unmountSync(): void {
    if (!this.mounted) return;
    try {
      execFileSync('umount', [this.dir], { stdio: 'ignore' });
    } catch {
      try {
        execFileSync('umount', ['-l', this.dir], { stdio: 'ignore' });
      } catch {
        // reported by the sweep of the next soak
      }
    }
    this.mounted = false;
  }
}
