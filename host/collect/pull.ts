// One pass of the puller over a device's complete snapshots, oldest first. Per snapshot:
// read meta → already stored? delete on device → else check host space → pull every file into a
// temp, verified against the meta (or a device-side hash) → commit into the store (rename,
// manifest) → only then delete on the device. See host/store/snapshot.ts for the crash story.
import { ExitCode, KmlError, errnoCode } from '../errors.js';
import type { Logger } from '../log.js';
import { sha256Of } from '../store/durable.js';
import type { SnapshotIndex } from '../store/dedup.js';
import { BOOT_ID_RE, isKnownDeviceFile } from '../store/layout.js';
import { metaJson, parseDeviceMeta, type DeviceMeta } from '../store/meta.js';
import type { OpenRun } from '../store/run.js';
import { noteBoot } from '../store/run.js';
import { SnapshotWriter, VerifyError, type CommitStep, type Expect } from '../store/snapshot.js';
import { DEFAULT_RESERVE_BYTES, freeSpace, hasRoom } from '../store/space.js';
import type { DevicePort } from './port.js';

export type SnapshotOutcome =
  | { kind: 'stored' | 'conflict'; seq: number; bootId: string; leakCount: number | null; bytes: number }
  | { kind: 'already-stored'; seq: number; bootId: string }
  | { kind: 'host-full'; seq: number; need: number; free: number }
  | { kind: 'unverifiable'; seq: number; reason: string }
  | { kind: 'vanished'; seq: number };

export interface PullContext {
  port: DevicePort;
  run: OpenRun;
  index: SnapshotIndex;
  log: Logger;
  reserveBytes?: number;
  /** Test hook passed to the store's writer (crash simulation). */
  onStep?: (step: CommitStep | 'before-delete', seq: number, detail?: string) => void | Promise<void>;
}

/** ENOSPC / EDQUOT anywhere in the host write path: pause, don't fail. */
export function isHostFull(e: unknown): boolean {
  const c = errnoCode(e) ?? errnoCode((e as { cause?: unknown })?.cause);
  return c === 'ENOSPC' || c === 'EDQUOT';
}

function expectFor(meta: DeviceMeta, name: string, listedSize: number): Expect {
  return { bytes: meta.size[name] ?? listedSize, sha256: meta.sha256[name], md5: meta.md5[name] };
}

export async function pullSnapshot(ctx: PullContext, seq: number): Promise<SnapshotOutcome> {
  const { port, run, index, log } = ctx;
  let metaBytes: Buffer;
  try {
    metaBytes = await port.readMeta(seq);
  } catch (e) {
    const kind = (e as { kind?: string }).kind;
    if (kind === 'no-such-file') return { kind: 'vanished', seq };
    // The device answered but the meta cannot be had (a folder, endless or oversized): leave this
    // snapshot on the device and go on; retrying it would block every later snapshot.
    if (kind === 'remote-fail' || kind === 'protocol') return { kind: 'unverifiable', seq, reason: `meta.txt unreadable: ${(e as Error).message.slice(0, 200)}` };
    throw e;
  }
  const meta = parseDeviceMeta(metaBytes.toString('utf8'));
  const bootId = (meta.bootId ?? '').toLowerCase();
  if (!BOOT_ID_RE.test(bootId)) return { kind: 'unverifiable', seq, reason: `meta.txt has no valid boot_id (${JSON.stringify((meta.bootId ?? '').slice(0, 40))})` };
  if (meta.seq !== seq) return { kind: 'unverifiable', seq, reason: `meta.txt says seq=${JSON.stringify((meta.fields.seq ?? '').slice(0, 40))} inside snapshots/${seq}` };

  const metaSha = sha256Of(metaBytes);
  if (index.storedByMeta(bootId, seq, metaSha)) {
    // Stored by an earlier pass whose device delete did not happen (crash, disconnect).
    await ctx.onStep?.('before-delete', seq);
    await port.deleteSnapshot(seq);
    log.info({ seq, bootId }, 'snapshot already stored; deleted the device copy');
    return { kind: 'already-stored', seq, bootId };
  }

  const listing = (await port.listFiles(seq)).filter((f) => f.name !== 'meta.txt' && f.name !== '.' && f.name !== '..');
  const unknown = listing.filter((f) => !isKnownDeviceFile(f.name) || !f.isFile);
  if (unknown.length) log.warn({ seq, names: unknown.map((f) => f.name.slice(0, 60)).slice(0, 10) }, 'ignoring unexpected entries in a device snapshot');
  const files = listing.filter((f) => isKnownDeviceFile(f.name) && f.isFile).sort((a, b) => a.name.localeCompare(b.name));
  const missing = Object.keys(meta.size).filter((n) => n !== 'meta.txt' && isKnownDeviceFile(n) && !files.some((f) => f.name === n));
  if (missing.length) return { kind: 'unverifiable', seq, reason: `meta.txt lists ${missing.join(', ')} but the device folder lacks them` };

  const need = files.reduce((a, f) => a + f.size, 0) + metaBytes.length * 4;
  const reserve = ctx.reserveBytes ?? DEFAULT_RESERVE_BYTES;
  const space = await freeSpace(run.dir);
  if (!hasRoom(space, need, reserve)) return { kind: 'host-full', seq, need: need + reserve, free: space.freeBytes };

  if (await noteBoot(run, bootId)) log.info({ bootId }, 'new boot segment');
  const writer = new SnapshotWriter({
    runDir: run.dir,
    manifestPath: run.manifestPath,
    runId: run.json.runId,
    serial: run.json.serial,
    bootId,
    seq,
    index,
    onStep: ctx.onStep ? (step, detail) => ctx.onStep!(step, seq, detail) : undefined,
  });
  let bytes = 0;
  try {
    for (const f of files) {
      const expect = expectFor(meta, f.name, f.size);
      if (!expect.sha256 && !expect.md5) {
        // No hash in the meta (device without sha256sum/md5sum when the agent ran): ask now.
        const h = await port.hashOnDevice(seq, f.name);
        expect.sha256 = h.sha256;
        expect.md5 = h.md5;
      }
      const got = await writer.stageFilled(f.name, (temp) => port.pullFile(seq, f.name, temp), expect);
      bytes += got.bytes;
    }
    await writer.stageConverted('meta.txt', metaJson(meta, metaBytes.toString('utf8'), { serial: run.json.serial }), metaBytes);
  } catch (e) {
    await writer.abort();
    if (e instanceof VerifyError) return { kind: 'unverifiable', seq, reason: e.message };
    if (isHostFull(e)) return { kind: 'host-full', seq, need: need + reserve, free: (await freeSpace(run.dir).catch(() => space)).freeBytes };
    throw e;
  }
  let result;
  try {
    result = await writer.commit({ wallTime: meta.wallTime, uptimeS: meta.uptimeS, leakCount: meta.leakCount });
  } catch (e) {
    if (isHostFull(e)) return { kind: 'host-full', seq, need: need + reserve, free: (await freeSpace(run.dir).catch(() => space)).freeBytes };
    throw e;
  }
  if (result.movedAside.length) log.warn({ seq, movedAside: result.movedAside }, 'files from an unrecorded earlier pull differed; kept them aside');
  if (result.status === 'conflict') {
    log.error({ seq, bootId, digest: result.entry.digest }, 'CONFLICT: the device published a different snapshot under a boot_id+seq already stored; kept both');
  }
  await ctx.onStep?.('before-delete', seq);
  await port.deleteSnapshot(seq);
  if (result.status === 'already-stored') return { kind: 'already-stored', seq, bootId };
  log.info({ seq, bootId, bytes, leaks: meta.leakCount, conflict: result.status === 'conflict' || undefined }, 'snapshot stored');
  return { kind: result.status, seq, bootId, leakCount: meta.leakCount, bytes };
}

export interface PassResult {
  outcomes: SnapshotOutcome[];
  /** Set when the pass stopped early because the host disk is full. */
  hostFull?: { need: number; free: number };
  /** Complete snapshots still on the device after the pass. */
  remaining: number;
}

/**
 * Pull every complete snapshot once, in seq order. `skip` holds seqs that failed verification
 * this session (left on the device, reported, not retried in a tight loop).
 */
export async function pullPass(ctx: PullContext, skip: Map<number, string> = new Map(), signal?: AbortSignal): Promise<PassResult> {
  const seqs = await ctx.port.listComplete();
  const outcomes: SnapshotOutcome[] = [];
  for (const seq of seqs) {
    if (signal?.aborted) break;
    if (skip.has(seq)) continue;
    const o = await pullSnapshot(ctx, seq);
    outcomes.push(o);
    if (o.kind === 'unverifiable') {
      skip.set(seq, o.reason);
      ctx.log.error({ seq, reason: o.reason }, 'snapshot left on the device: it does not match its meta');
    }
    if (o.kind === 'host-full') {
      const done = outcomes.filter((x) => x.kind !== 'host-full').length;
      return { outcomes, hostFull: { need: o.need, free: o.free }, remaining: seqs.length - done };
    }
  }
  const gone = outcomes.filter((o) => o.kind === 'stored' || o.kind === 'conflict' || o.kind === 'already-stored' || o.kind === 'vanished').length;
  return { outcomes, remaining: seqs.length - gone };
}

/** collect refuses a device doctor did not pass: exit 3 (unavailable) or 4 (not capable), with the report. */
export function notReady(text: string, exitCode: number, summary?: string): KmlError {
  const code = exitCode === ExitCode.DEVICE ? ExitCode.DEVICE : ExitCode.NOT_CAPABLE;
  return new KmlError(code, summary ?? 'the device is not ready for kmemleak collection', { hint: text.trim() });
}
