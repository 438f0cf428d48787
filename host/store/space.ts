// Host free space: the collector pauses pulling (never the agent, which keeps the snapshots on
// the device) while the store's filesystem is short of room, and resumes when space returns.
import fs from 'node:fs/promises';

export interface FreeSpace {
  /** Bytes available to an unprivileged writer (f_bavail × f_bsize). */
  freeBytes: number;
  totalBytes: number;
}

export async function freeSpace(dir: string): Promise<FreeSpace> {
  const s = await fs.statfs(dir);
  return { freeBytes: Number(s.bavail) * Number(s.bsize), totalBytes: Number(s.blocks) * Number(s.bsize) };
}

/** Default reserve kept free beyond the snapshot itself (manifest, run.json rewrites, log). */
export const DEFAULT_RESERVE_BYTES = 8 * 1024 * 1024;

/**
 * Room for a snapshot of `need` bytes? The temp copy and the final file never coexist for the
 * same file (rename), so `need + reserve` suffices.
 */
export function hasRoom(free: FreeSpace, need: number, reserve = DEFAULT_RESERVE_BYTES): boolean {
  return free.freeBytes >= need + reserve;
}
