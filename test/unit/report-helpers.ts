// Shared by the memory, verdict and report tests: memory samples built from REAL captures with
// controlled changes (a field rewritten per sample), and AnalyzedRun models built by hand so the
// renderers can be tested independently of the kmemleak parser.
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, SHARED_FIXTURES } from '../helpers/paths.js';
import type { AnalyzedRun, LeakGroup, SnapshotInfo } from '../../host/analyze/model.js';
import type { SampleInput } from '../../host/analyze/memory.js';

export const labProc = (f: string) => fs.readFileSync(path.join(SHARED_FIXTURES, 'proc', f), 'utf8');
export const hostProc = (f: string) => fs.readFileSync(path.join(FIXTURES, 'memstate', 'host-6.18', `${f}.txt`), 'utf8');

/** Real lab-kernel captures (a 470 MB QEMU device: the closest thing to a phone we have). */
export const LAB = {
  meminfo: labProc('proc-meminfo.txt'),
  vmstat: labProc('proc-vmstat-head.txt'),
  buddyinfo: labProc('proc-buddyinfo.txt'),
  zoneinfo: labProc('proc-zoneinfo-head.txt'),
  slabinfo: labProc('proc-slabinfo-head.txt'),
};

/** Rewrite "Name:  N kB" in a meminfo text. */
export function setMeminfo(text: string, fields: Record<string, number>): string {
  let out = text;
  for (const [k, v] of Object.entries(fields)) {
    const re = new RegExp(`^${k.replace(/[()]/g, '\\$&')}:\\s+\\d+`, 'm');
    if (!re.test(out)) throw new Error(`no meminfo field ${k}`);
    out = out.replace(re, `${k}:${' '.repeat(Math.max(1, 16 - k.length))}${v}`);
  }
  return out;
}

/** Rewrite "name N" in a vmstat text. */
export function setVmstat(text: string, counters: Record<string, number>): string {
  let out = text;
  for (const [k, v] of Object.entries(counters)) out = out.replace(new RegExp(`^${k} -?\\d+`, 'm'), `${k} ${v}`);
  return out;
}

/** Rewrite one zone's row of a buddyinfo text. */
export function setBuddy(text: string, zone: string, blocks: number[]): string {
  return text.replace(new RegExp(`^(Node 0, zone\\s+${zone})(\\s+\\d+)+\\s*$`, 'm'), (_a, head: string) => `${head}${blocks.map((b) => String(b).padStart(7)).join('')} `);
}

/** Rewrite one slabinfo cache's active_objs/num_objs. */
export function setSlab(text: string, cache: string, objs: number): string {
  return text.replace(new RegExp(`^(${cache})\\s+\\d+\\s+\\d+`, 'm'), (_a, name: string) => `${name}${String(objs).padStart(Math.max(1, 23 - name.length))} ${String(objs).padStart(6)}`);
}

export const T0 = 1_764_000_000; // 2025-11-24, epoch seconds

/** n hourly samples from the lab captures; edit(k, texts) changes sample k's texts. */
export function labSeries(n: number, edit: (k: number, t: SampleInput['texts']) => void, opts: { bootId?: string; stepS?: number } = {}): SampleInput[] {
  const step = opts.stepS ?? 3600;
  return Array.from({ length: n }, (_, k) => {
    const texts: SampleInput['texts'] = { ...LAB };
    edit(k, texts);
    return { snapshot: k, seq: k + 1, bootId: opts.bootId ?? 'b1', t: T0 + k * step, uptimeS: 100 + k * step, texts };
  });
}

// ---------------------------------------------------------------------------------------------
// Hand-built AnalyzedRun models

export function snapshotInfo(i: number, extra: Partial<SnapshotInfo> = {}): SnapshotInfo {
  return {
    index: i, seq: i + 1, bootId: 'b1', wallTime: T0 + i * 3600, wallTimeSource: 'meta', uptimeS: 100 + i * 3600, t: T0 + i * 3600,
    files: { kmemleak: `boot-b1/kmemleak_log_${i + 1}.txt`, meta: `boot-b1/meta_${i + 1}.json`, kmsg: null, mem: {} },
    bytes: 1000, records: 2, duplicates: 0, repeatedFromPrevious: 0, unparsedLines: 0, truncatedRecords: 0,
    status: 'ok', inManifest: true, meta: {}, ...extra,
  };
}

/** A group with `perSnapshot[i]` new objects of `size` bytes in snapshot i. */
export function group(title: string, fp: string, size: number, perSnapshot: number[], extra: Partial<LeakGroup> = {}): LeakGroup {
  let cumO = 0, cumB = 0;
  const series = perSnapshot.flatMap((n, i) => {
    if (n === 0) return [];
    cumO += n; cumB += n * size;
    return [{ snapshot: i, objects: n, bytes: n * size, newObjects: n, newBytes: n * size, cumObjects: cumO, cumBytes: cumB }];
  });
  const culprit = title.replace(/^memory leak in /, '');
  const first = series[0]?.snapshot ?? 0;
  const last = series[series.length - 1]?.snapshot ?? 0;
  const hours = last - first;
  return {
    fingerprint: fp, key: `${culprit} < do_one_initcall`, title, culprit, frames: [culprit, 'do_one_initcall'], module: null,
    sampleStack: ['kmalloc_trace+0x21/0x90', `${culprit}+0x10/0x40`, 'do_one_initcall+0x54/0x200'],
    sample: { snapshot: first, address: 'ff11e87b4318a2a0', size, comm: 'insmod', pid: 154, jiffies: 4294670297, allocUptimeS: 3.0, hex: '00'.repeat(16), objectType: 'normal', line: 1 },
    status: 'growing', tags: {}, bootTime: false,
    objects: cumO, bytes: cumB,
    bytesPerHour: hours > 0 ? cumB / hours : null, objectsPerHour: hours > 0 ? cumO / hours : null,
    firstSeen: first, lastSeen: last, snapshotsWithNew: series.length, series,
    sizes: { min: size, max: size, top: [{ size, count: cumO }] }, comms: [{ comm: 'insmod', count: cumO }], allocUptimeS: { min: 3, max: 3 + hours * 3600 },
    ...extra,
  };
}

export function analyzedRun(groups: LeakGroup[], snapshots: number, extra: Partial<AnalyzedRun> = {}): AnalyzedRun {
  const all = [...groups];
  return {
    schemaVersion: 1, kind: 'kml-analysis', generatedAt: '2025-11-27T00:00:00.000Z', kmlVersion: '0.1.0',
    source: { type: 'store', path: '/runs/dev/run1' },
    run: {
      serial: 'emulator-5554', runId: 'run1', kernelVersion: '6.1.0-kml-lab', cmdline: 'kmemleak=on', intervalS: 3600,
      scanProtocol: 'scan,sleep5,scan,cat,clear', startedAt: '2025-11-24T16:00:00Z', deviceProps: {}, bootIds: ['b1'],
      hz: { value: 1000, source: 'config' }, pointerBits: 64, formats: { 'bracket-hashed/plain': 10 }, snapshotMode: 'cumulative',
    },
    options: { framesInKey: 5, bootWindowS: 60, builtinSuppressions: true, suppressFile: null, extraSkipFrames: [], sinceSeq: null, recentSnapshots: 2 },
    snapshots: Array.from({ length: snapshots }, (_, i) => snapshotInfo(i)),
    groups: all,
    suppressed: [],
    suppressionsUsed: [],
    totals: {
      groups: all.length, objects: all.reduce((s, g) => s + g.objects, 0), bytes: all.reduce((s, g) => s + g.bytes, 0),
      suppressedGroups: 0, suppressedObjects: 0, suppressedBytes: 0,
    },
    assumptions: [],
    parseStats: { files: snapshots, lines: 100, bytes: 5000, records: 10, truncatedRecords: 0, duplicateRecords: 0, unparsedLines: 0, overlongLines: 0, ignoredLines: {}, unparsedSamples: [] },
    inputStats: { snapshotsFound: snapshots, partialSkipped: [], conflictsSkipped: [], missingMeta: 0, missingFiles: [], badManifestLines: 0, hashMismatches: 0, unreadable: 0, runJson: 'ok' },
    ...extra,
  };
}
