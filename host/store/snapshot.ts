// Writing one snapshot into a run, in an order that survives a crash at any point:
//   1. stage: every file streamed to a temp file in the run dir, hashed on the way, verified
//      against what the device says (size, sha256 or md5), fsynced;
//   2. decide with the index: already stored → drop the temps; conflict → store beside, flagged;
//   3. rename each temp to its final name (an identical file already there is kept; a different
//      one is moved aside, never overwritten), fsync the folders;
//   4. append the manifest line (fsync).
// Only after 4 may the caller delete the device copy. A crash before 4 leaves temps (removed when
// the run is reopened) and/or final files without a manifest line: the rerun pulls again, finds
// identical files and appends the line once. A crash after 4 leaves the device copy, which the
// rerun recognises as already stored and deletes.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ExitCode, KmlError } from '../errors.js';
import type { SnapshotIndex } from './dedup.js';
import { snapshotDigest } from './dedup.js';
import { exists, fsyncDir, hashFile, mkdirDurable, tempPathIn } from './durable.js';
import { checkBootId, checkSeq, insideRun, isKnownDeviceFile, storePathFor } from './layout.js';
import { appendManifest, type ManifestEntry, type ManifestFile } from './manifest.js';

export interface Expect {
  bytes?: number;
  sha256?: string;
  md5?: string;
}

/** The device's copy did not match what the device said about it: pull again, never store. */
export class VerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VerifyError';
  }
}

interface Staged {
  name: string;
  temp: string;
  bytes: number;
  sha256: string;
  source?: { bytes: number; sha256: string };
}

export type CommitStep = 'staged' | 'renamed' | 'dirs-synced' | 'manifest-appended';

export interface CommitResult {
  status: 'stored' | 'already-stored' | 'conflict';
  entry: ManifestEntry;
  /** Final files that existed with other content and were moved aside (crash leftovers). */
  movedAside: string[];
}

export interface SnapshotWriterOptions {
  runDir: string;
  manifestPath: string;
  runId: string;
  serial: string;
  bootId: string;
  seq: number;
  index: SnapshotIndex;
  /** Test hook: throwing from it simulates a crash right after that step. */
  onStep?: (step: CommitStep, detail?: string) => void | Promise<void>;
}

export class SnapshotWriter {
  private readonly staged = new Map<string, Staged>();
  private done = false;
  readonly bootId: string;
  readonly seq: number;

  constructor(private readonly o: SnapshotWriterOptions) {
    this.bootId = checkBootId(o.bootId);
    this.seq = checkSeq(o.seq);
  }

  private checkName(name: string): void {
    if (!isKnownDeviceFile(name)) throw new KmlError(ExitCode.INTERNAL, `refusing to store unknown device file ${JSON.stringify(name.slice(0, 80))}`);
    if (this.staged.has(name)) throw new KmlError(ExitCode.INTERNAL, `${name} staged twice`);
  }

  /** Stream a device file into a temp file, hashing and verifying it. Throws VerifyError on mismatch. */
  async stageStream(name: string, source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, expect: Expect = {}): Promise<{ bytes: number; sha256: string }> {
    this.checkName(name);
    const temp = tempPathIn(this.o.runDir, name);
    const sha = createHash('sha256');
    const md5 = expect.md5 ? createHash('md5') : undefined;
    let bytes = 0;
    const fh = await fs.open(temp, 'wx');
    try {
      try {
        for await (const chunk of source) {
          const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          sha.update(b);
          md5?.update(b);
          bytes += b.length;
          await fh.writeFile(b);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      const sha256 = sha.digest('hex');
      const problem =
        expect.bytes !== undefined && expect.bytes !== bytes ? `size ${bytes} ≠ ${expect.bytes} on the device`
        : expect.sha256 && expect.sha256 !== sha256 ? `sha256 ${sha256.slice(0, 12)}… ≠ device's ${expect.sha256.slice(0, 12)}…`
        : md5 && expect.md5 && md5.digest('hex') !== expect.md5 ? `md5 differs from the device's`
        : undefined;
      if (problem) throw new VerifyError(`${name}: ${problem}`);
      this.staged.set(name, { name, temp, bytes, sha256 });
      return { bytes, sha256 };
    } catch (e) {
      await fs.rm(temp, { force: true }).catch(() => {});
      throw e;
    }
  }

  /**
   * Stage a file that `fill` writes to the temp path itself (e.g. an adb sync pull that hashes on
   * the way) and reports {bytes, sha256} for; then verified like stageStream. `fill` must fsync.
   */
  async stageFilled(name: string, fill: (tempPath: string) => Promise<{ bytes: number; sha256: string }>, expect: Expect = {}): Promise<{ bytes: number; sha256: string }> {
    this.checkName(name);
    const temp = tempPathIn(this.o.runDir, name);
    try {
      const got = await fill(temp);
      let problem =
        expect.bytes !== undefined && expect.bytes !== got.bytes ? `size ${got.bytes} ≠ ${expect.bytes} on the device`
        : expect.sha256 && expect.sha256 !== got.sha256 ? `sha256 ${got.sha256.slice(0, 12)}… ≠ device's ${expect.sha256.slice(0, 12)}…`
        : undefined;
      if (!problem && expect.md5) {
        const md5 = createHash('md5').update(await fs.readFile(temp)).digest('hex');
        if (md5 !== expect.md5) problem = `md5 differs from the device's`;
      }
      if (problem) throw new VerifyError(`${name}: ${problem}`);
      this.staged.set(name, { name, temp, bytes: got.bytes, sha256: got.sha256 });
      return got;
    } catch (e) {
      await fs.rm(temp, { force: true }).catch(() => {});
      throw e;
    }
  }

  /**
   * Stage a file kml converts (meta.txt → meta_<N>.json): `stored` is what goes to disk,
   * `source` the device's bytes (their hash identifies the snapshot).
   */
  async stageConverted(name: string, stored: string | Buffer, source: Buffer): Promise<void> {
    this.checkName(name);
    const temp = tempPathIn(this.o.runDir, name);
    const data = typeof stored === 'string' ? Buffer.from(stored) : stored;
    const fh = await fs.open(temp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      await fs.rm(temp, { force: true }).catch(() => {});
      throw e;
    }
    await fh.close();
    this.staged.set(name, {
      name,
      temp,
      bytes: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
      source: { bytes: source.length, sha256: createHash('sha256').update(source).digest('hex') },
    });
  }

  /** Drop every staged temp (verification failed, pull aborted). */
  async abort(): Promise<void> {
    for (const s of this.staged.values()) await fs.rm(s.temp, { force: true }).catch(() => {});
    this.staged.clear();
    this.done = true;
  }

  get digest(): string {
    return snapshotDigest([...this.staged.values()].map((s) => ({ name: s.name, sha256: s.source?.sha256 ?? s.sha256 })));
  }

  async commit(info: { wallTime: number | null; uptimeS: number | null; leakCount?: number | null; now?: Date }): Promise<CommitResult> {
    if (this.done) throw new KmlError(ExitCode.INTERNAL, 'snapshot writer already used');
    this.done = true;
    const { runDir, index, onStep } = this.o;
    await onStep?.('staged');
    const digest = this.digest;
    const cls = index.classify(this.bootId, this.seq, digest);
    if (cls.kind === 'stored') {
      for (const s of this.staged.values()) await fs.rm(s.temp, { force: true });
      return { status: 'already-stored', entry: cls.entry, movedAside: [] };
    }
    const variant = cls.kind === 'conflict' ? digest.slice(0, 12) : undefined;
    const files: ManifestFile[] = [];
    const dirs = new Set<string>();
    const movedAside: string[] = [];
    const sorted = [...this.staged.values()].sort((a, b) => a.name.localeCompare(b.name));
    for (const s of sorted) {
      const rel = storePathFor(s.name, this.bootId, this.seq, variant);
      const final = insideRun(runDir, rel);
      await mkdirDurable(path.dirname(final));
      dirs.add(path.dirname(final));
      if (await exists(final)) {
        const st = await fs.lstat(final);
        const same = st.isFile() && (await hashFile(final)).sha256 === s.sha256;
        if (same) {
          await fs.rm(s.temp, { force: true });
        } else {
          const aside = `${final}.orphan-${Date.now()}`;
          await fs.rename(final, aside);
          movedAside.push(aside);
          await fs.rename(s.temp, final);
        }
      } else {
        await fs.rename(s.temp, final);
      }
      await onStep?.('renamed', s.name);
      const f: ManifestFile = { name: s.name, path: rel.split(path.sep).join('/'), bytes: s.bytes, sha256: s.sha256 };
      if (s.source) f.source = s.source;
      files.push(f);
    }
    for (const d of dirs) await fsyncDir(d);
    await fsyncDir(runDir); // the temps left it
    await onStep?.('dirs-synced');
    const entry: ManifestEntry = {
      schemaVersion: 1,
      serial: this.o.serial,
      bootId: this.bootId,
      seq: this.seq,
      wallTime: info.wallTime,
      uptimeS: info.uptimeS,
      files,
      pulledAt: (info.now ?? new Date()).toISOString(),
      digest,
      runId: this.o.runId,
      leakCount: info.leakCount ?? null,
    };
    if (variant) entry.conflict = true;
    await appendManifest(this.o.manifestPath, entry);
    index.add(entry);
    await onStep?.('manifest-appended');
    return { status: variant ? 'conflict' : 'stored', entry, movedAside };
  }
}
