// Exactly-once bookkeeping. A snapshot is identified by (bootId, seq) and its content digest.
//   same key, same digest  → already stored: nothing to write, safe to delete on the device;
//   same key, other digest → conflict: keep both (the newcomer goes to a conflict-<digest> folder),
//                            never overwrite, flag it in the manifest and the log;
//   unknown key            → new.
import { createHash } from 'node:crypto';
import { deviceSha256, type ManifestEntry } from './manifest.js';

/**
 * Digest of a snapshot's device-side content: sha256 over the sorted `name NUL sha256` lines of
 * its files. Independent of where and how the host stores them.
 */
export function snapshotDigest(files: readonly { name: string; sha256: string }[]): string {
  const lines = files.map((f) => `${f.name}\0${f.sha256}\n`).sort();
  return createHash('sha256').update(lines.join('')).digest('hex');
}

export function digestOfEntry(e: ManifestEntry): string {
  return snapshotDigest(e.files.map((f) => ({ name: f.name, sha256: deviceSha256(f) })));
}

export type Classification =
  | { kind: 'new' }
  | { kind: 'stored'; entry: ManifestEntry }
  | { kind: 'conflict'; existing: ManifestEntry[] };

const keyOf = (bootId: string, seq: number): string => `${bootId}#${seq}`;

export class SnapshotIndex {
  private readonly byKey = new Map<string, ManifestEntry[]>();
  private count = 0;
  private conflicts = 0;

  constructor(entries: Iterable<ManifestEntry> = []) {
    for (const e of entries) this.add(e);
  }

  add(e: ManifestEntry): void {
    const k = keyOf(e.bootId, e.seq);
    const list = this.byKey.get(k) ?? [];
    list.push(e);
    this.byKey.set(k, list);
    this.count++;
    if (e.conflict) this.conflicts++;
  }

  get size(): number {
    return this.count;
  }

  get conflictCount(): number {
    return this.conflicts;
  }

  entries(bootId: string, seq: number): readonly ManifestEntry[] {
    return this.byKey.get(keyOf(bootId, seq)) ?? [];
  }

  /** Decide from the full content digest (after every file was pulled and hashed). */
  classify(bootId: string, seq: number, digest: string): Classification {
    const list = this.entries(bootId, seq);
    if (list.length === 0) return { kind: 'new' };
    const same = list.find((e) => e.digest === digest);
    return same ? { kind: 'stored', entry: same } : { kind: 'conflict', existing: [...list] };
  }

  /**
   * Fast path before pulling the big files: the device's meta.txt is written once, before the
   * snapshot is published, and names its seq, boot_id, uptime, wall time and every file's size
   * (and hash when the device can compute one). An identical meta.txt is therefore the same
   * snapshot. Returns the stored entry, or undefined when the full pull must decide.
   */
  storedByMeta(bootId: string, seq: number, metaSha256: string): ManifestEntry | undefined {
    return this.entries(bootId, seq).find((e) => e.files.some((f) => f.name === 'meta.txt' && deviceSha256(f) === metaSha256));
  }

  /** Highest seq stored per boot (for status and gap reporting). */
  lastSeqByBoot(): Map<string, number> {
    const m = new Map<string, number>();
    for (const list of this.byKey.values()) {
      for (const e of list) m.set(e.bootId, Math.max(m.get(e.bootId) ?? -1, e.seq));
    }
    return m;
  }
}
