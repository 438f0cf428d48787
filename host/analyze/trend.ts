// Per-group accumulation over a run, and the trend rules: objects/bytes per snapshot, cumulative
// new objects, least-squares slope per hour, first/last seen, status, ranking.
//
// Memory is bounded by the number of distinct groups (and, per group, by the snapshots where it
// appeared), never by the number of records: each record updates counters and is forgotten.
//
// "New" objects: with the kml/seed protocol (cat, clear, scan) every snapshot holds only objects
// reported since the last clear, so every object is new. Without clear, a snapshot re-prints
// every still-unreferenced object; an object printed by the previous snapshot of the same boot
// (same address and jiffies) is a repeat, not a new leak. Counting only new objects makes both
// protocols give the same cumulative curve.
import type { KmemleakFrame } from '../kmemleak/types.js';
import type { ParsedRecord } from '../kmemleak/record.js';
import type { StackIdentity } from '../kmemleak/fingerprint.js';
import type { CompiledRule } from './suppress.js';
import type { GroupPoint, LeakGroup, LeakStatus, SampleRecord, SuppressedGroup } from './model.js';

const MAX_SIZES = 256;
const MAX_COMMS = 64;
const TOP = 8;

export interface GroupAcc {
  /** Position in GroupTable.list. */
  index: number;
  id: StackIdentity;
  /** Record-level rule that routed these records here (suppressed from the start), or null. */
  recordRule: CompiledRule | null;
  series: GroupPoint[];
  /** The last point of `series` (the one a record of the current snapshot updates), or null. */
  last: GroupPoint | null;
  objects: number;
  bytes: number;
  /** Records added, repeats included (the denominator of "every object matches"). */
  seen: number;
  sizes: Map<number, number>;
  minSize: number;
  maxSize: number;
  comms: Map<string, number>;
  percpu: number;
  truncated: number;
  fromDmesg: number;
  /**
   * Per-candidate counters in one block (a record updates them all: one stretch of memory, not a
   * handful of arrays scattered over the heap), `n` numbers each, one per HZ candidate: records
   * tagged boot-time, allocation uptime min, max, then per group rule the records matching it
   * (read with ruleMatchCount).
   */
  acc: Float64Array;
  /** Number of HZ candidates. */
  n: number;
  /**
   * Records of the same size (comm) as the group's previous record are counted here and added to
   * `sizes` (`comms`) when the size (comm) changes or the group is read (see settleGroup): most
   * records of a group repeat the previous one's, and a Map lookup per record is a cache miss.
   */
  runSize: number;
  runSizeCount: number;
  runComm: string | null;
  runCommCount: number;
  /** New objects that were gone from the next snapshot of the same boot (freed or referenced again). */
  vanished: number;
  sample: SampleRecord;
  sampleStack: KmemleakFrame[];
  /** Per HZ candidate: the sample's allocation uptime (NaN: unknown). */
  sampleUptime: Float64Array;
  firstSeen: number;
  lastSeen: number;
}

export interface RecordUpdate {
  snapshot: number;
  /** The parser's scratch record: read now, never kept. */
  record: ParsedRecord;
  id: StackIdentity;
  recordRule: CompiledRule | null;
  /** Printed by the previous snapshot of the same boot. */
  repeat: boolean;
  /**
   * Per HZ candidate: reconstructed allocation uptime, NaN when unknown (a typed array: a double
   * stored in a plain array is a heap object, one per record and candidate for the GC).
   */
  uptimes: Float64Array;
  /** Bit c set: boot-time under HZ candidate c. */
  bootMask: number;
  /** Per group rule: bitmask over HZ candidates of "this record matches the rule". */
  ruleMasks: number[];
  /** How many ruleMasks entries are not 0, when the caller knows (0: addTo skips them). */
  ruleMasksSet?: number;
}

export class GroupTable {
  readonly groups = new Map<string, GroupAcc>();
  /** The same groups by index, in creation order. */
  readonly list: GroupAcc[] = [];

  /** Group keys of suppressed records, made once per stack and rule (a new string per record costs a hash each). */
  private readonly ruleKeys = new Map<StackIdentity, Map<CompiledRule, string>>();

  constructor(private readonly nCandidates: number, private readonly groupRules: readonly CompiledRule[]) {}

  private ruleKey(id: StackIdentity, rule: CompiledRule): string {
    let byRule = this.ruleKeys.get(id);
    if (!byRule) { byRule = new Map(); this.ruleKeys.set(id, byRule); }
    let key = byRule.get(rule);
    if (key === undefined) { key = `${id.fingerprint}|${rule.rule.id}`; byRule.set(rule, key); }
    return key;
  }

  /** Add one (deduplicated) record; returns the group it went to. */
  add(u: RecordUpdate): GroupAcc {
    const g = this.groupOf(u);
    this.addTo(g, u);
    return g;
  }

  /**
   * The group a record goes to, made (with the record as its sample) if new. Depends only on
   * the record's stack identity and record rule, so a caller may keep it per stack.
   */
  groupOf(u: RecordUpdate): GroupAcc {
    const key = u.recordRule ? this.ruleKey(u.id, u.recordRule) : u.id.fingerprint;
    let g = this.groups.get(key);
    const r = u.record;
    if (!g) {
      g = {
        index: this.list.length,
        id: u.id, recordRule: u.recordRule, series: [], last: null, objects: 0, bytes: 0, seen: 0,
        sizes: new Map(), minSize: Infinity, maxSize: 0, comms: new Map(),
        percpu: 0, truncated: 0, fromDmesg: 0,
        acc: countersOf(this.nCandidates, this.groupRules.length), n: this.nCandidates,
        runSize: NaN, runSizeCount: 0, runComm: null, runCommCount: 0,
        vanished: 0,
        sample: {
          snapshot: u.snapshot, address: r.address, size: r.size, comm: r.comm, pid: r.pid, jiffies: r.jiffies,
          allocUptimeS: null, hex: r.hex, objectType: r.objectType, line: r.line,
        },
        sampleStack: r.frames(),
        sampleUptime: u.uptimes.slice(), // the caller reuses its array
        firstSeen: u.snapshot, lastSeen: u.snapshot,
      };
      this.groups.set(key, g);
      this.list.push(g);
    }
    return g;
  }

  /** Add one (deduplicated) record to its group (groupOf's answer for it). */
  addTo(g: GroupAcc, u: RecordUpdate): void {
    const r = u.record;
    let p = g.last;
    if (p === null || p.snapshot !== u.snapshot) {
      p = { snapshot: u.snapshot, objects: 0, bytes: 0, newObjects: 0, newBytes: 0, cumObjects: g.objects, cumBytes: g.bytes };
      g.series.push(p);
      g.last = p;
    }
    p.objects++;
    p.bytes += r.size;
    if (!u.repeat) {
      p.newObjects++;
      p.newBytes += r.size;
      g.objects++;
      g.bytes += r.size;
      p.cumObjects = g.objects;
      p.cumBytes = g.bytes;
    }
    g.seen++;
    g.lastSeen = u.snapshot;
    if (r.size === g.runSize) g.runSizeCount++;
    else {
      settleSize(g);
      const sizeCount = g.sizes.get(r.size);
      if (sizeCount !== undefined) g.sizes.set(r.size, sizeCount + 1);
      else if (g.sizes.size < MAX_SIZES) g.sizes.set(r.size, 1);
      g.runSize = r.size;
    }
    if (r.size < g.minSize) g.minSize = r.size;
    if (r.size > g.maxSize) g.maxSize = r.size;
    const comm = r.comm ?? '?';
    if (comm === g.runComm) g.runCommCount++;
    else {
      settleComm(g);
      const commCount = g.comms.get(comm);
      if (commCount !== undefined) g.comms.set(comm, commCount + 1);
      else if (g.comms.size < MAX_COMMS) g.comms.set(comm, 1);
      g.runComm = comm;
    }
    if (r.objectType === 'percpu') g.percpu++;
    if (r.truncated) g.truncated++;
    if (r.fromDmesg) g.fromDmesg++;
    const n = this.nCandidates;
    const a = g.acc;
    for (let c = 0; c < n; c++) {
      if (u.bootMask & (1 << c)) a[c]++;
      const t = u.uptimes[c];
      if (t === t) { // not NaN (unknown)
        if (t < a[n + c]) a[n + c] = t;
        if (t > a[2 * n + c]) a[2 * n + c] = t;
      }
    }
    if (u.ruleMasksSet === 0) return;
    for (let i = 0; i < u.ruleMasks.length; i++) {
      const m = u.ruleMasks[i];
      if (m === 0) continue;
      const row = (3 + i) * n;
      for (let c = 0; c < n; c++) if (m & (1 << c)) a[row + c]++;
    }
  }
}

/** A group's counter block (GroupAcc.acc) and its views. */
function countersOf(n: number, rules: number): Float64Array {
  const acc = new Float64Array((3 + rules) * n);
  acc.fill(Infinity, n, 2 * n);
  acc.fill(-Infinity, 2 * n, 3 * n);
  return acc;
}

/** Records of the group matching group rule `i` under HZ candidate `c`. */
export function ruleMatchCount(g: GroupAcc, i: number, c: number): number {
  return g.acc[(3 + i) * g.n + c];
}

/** Add the records counted in the group's current size run to `sizes` (if the size is there: it was capped otherwise). */
function settleSize(g: GroupAcc): void {
  if (g.runSizeCount > 0) {
    const v = g.sizes.get(g.runSize);
    if (v !== undefined) g.sizes.set(g.runSize, v + g.runSizeCount);
    g.runSizeCount = 0;
  }
}

function settleComm(g: GroupAcc): void {
  if (g.runCommCount > 0) {
    const v = g.comms.get(g.runComm!);
    if (v !== undefined) g.comms.set(g.runComm!, v + g.runCommCount);
    g.runCommCount = 0;
  }
}

/** Bring `sizes` and `comms` up to date (before reading them). */
export function settleGroup(g: GroupAcc): void {
  settleSize(g);
  settleComm(g);
}

// --- statistics -------------------------------------------------------------------------------------

/** Least-squares slope of y over x; null when fewer than 2 distinct x. */
export function leastSquaresSlope(xs: ArrayLike<number>, ys: ArrayLike<number>, n = xs.length): number | null {
  if (n < 2) return null;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < n; i++) { sx += xs[i]; sy += ys[i]; }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i] - mx;
    num += dx * (ys[i] - my);
    den += dx * dx;
  }
  return den === 0 ? null : num / den;
}

export interface TrendContext {
  /** Time axis per snapshot index (seconds), null where unknown. */
  t: readonly (number | null)[];
  /** The last `recent` snapshots with data form the "recent" window of the status rules. */
  recent: number;
  /** Per snapshot index: whether its kmemleak text was read (missing/unreadable ones say nothing). */
  hasData: readonly boolean[];
}

export interface TrendResult {
  status: LeakStatus;
  bytesPerHour: number | null;
  objectsPerHour: number | null;
  snapshotsWithNew: number;
}

/**
 * Status (see LeakStatus in model.ts) and slopes. The slope is fitted over cumulative new bytes
 * from the snapshot before the group first appeared (a real observation of zero) to the end of
 * the run, cumulative values carried forward between appearances.
 */
/** Per context (one per analysis, shared by its groups): the last snapshot with data and where "recent" starts. */
const windows = new WeakMap<TrendContext, { lastData: number; recentStart: number }>();

function windowOf(ctx: TrendContext): { lastData: number; recentStart: number } {
  let w = windows.get(ctx);
  if (!w) {
    const n = ctx.t.length;
    // Snapshots without data (file missing or unreadable) neither end the run nor count as recent.
    const withData: number[] = [];
    for (let i = 0; i < n; i++) if (ctx.hasData[i] !== false) withData.push(i);
    w = {
      lastData: withData.length ? withData[withData.length - 1] : n - 1,
      recentStart: withData.length ? withData[Math.max(0, withData.length - ctx.recent)] : 0,
    };
    windows.set(ctx, w);
  }
  return w;
}

/** Points fitted by trendOf (reused: one group at a time). */
let fitX = new Float64Array(256);
let fitBytes = new Float64Array(256);
let fitObjects = new Float64Array(256);

export function trendOf(series: readonly GroupPoint[], ctx: TrendContext): TrendResult {
  const n = ctx.t.length;
  const { lastData, recentStart } = windowOf(ctx);
  let snapshotsWithNew = 0;
  let lastNew = -1;
  for (const p of series) if (p.newObjects > 0) { snapshotsWithNew++; lastNew = p.snapshot; }
  const first = series.length ? series[0].snapshot : lastData;
  let status: LeakStatus;
  if (first >= lastData) status = 'new';
  else if (snapshotsWithNew >= 2) status = lastNew >= recentStart ? 'growing' : 'steady';
  else status = 'one-shot';

  if (fitX.length < n) {
    fitX = new Float64Array(n);
    fitBytes = new Float64Array(n);
    fitObjects = new Float64Array(n);
  }
  const xs = fitX;
  const yb = fitBytes;
  const yo = fitObjects;
  let m = 0;
  let k = 0;
  let cumB = 0;
  let cumO = 0;
  let start = first;
  for (let i = first - 1; i >= 0; i--) if (ctx.hasData[i] !== false) { start = i; break; }
  for (let i = start; i < n; i++) {
    while (k < series.length && series[k].snapshot <= i) { cumB = series[k].cumBytes; cumO = series[k].cumObjects; k++; }
    const t = ctx.t[i];
    if (t === null || t === undefined || ctx.hasData[i] === false) continue;
    xs[m] = t / 3600;
    yb[m] = cumB;
    yo[m] = cumO;
    m++;
  }
  return { status, bytesPerHour: leastSquaresSlope(xs, yb, m), objectsPerHour: leastSquaresSlope(xs, yo, m), snapshotsWithNew };
}

function top<K>(m: Map<K, number>): Array<[K, number]> {
  return [...m.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).slice(0, TOP);
}

/** Turn an accumulator into the model's LeakGroup, for HZ candidate `c`. */
export function toLeakGroup(g: GroupAcc, tr: TrendResult, c: number, sampleStack: string[]): LeakGroup {
  settleGroup(g);
  const bootCount = g.acc[c] ?? 0;
  const allocMin = g.acc[g.n + c];
  const allocMax = g.acc[2 * g.n + c];
  return {
    fingerprint: g.id.fingerprint,
    key: g.id.key,
    title: g.id.title,
    culprit: g.id.culprit,
    frames: g.id.frames,
    module: g.id.module,
    sampleStack,
    sample: { ...g.sample, allocUptimeS: round3(g.sampleUptime[c] ?? null) }, // NaN → null
    status: tr.status,
    tags: { 'boot-time': bootCount, percpu: g.percpu, truncated: g.truncated, repeated: g.seen - g.objects, dmesg: g.fromDmesg, vanished: g.vanished },
    bootTime: g.seen > 0 && bootCount === g.seen,
    objects: g.objects,
    bytes: g.bytes,
    bytesPerHour: round3(tr.bytesPerHour),
    objectsPerHour: round3(tr.objectsPerHour),
    firstSeen: g.firstSeen,
    lastSeen: g.lastSeen,
    snapshotsWithNew: tr.snapshotsWithNew,
    series: g.series,
    sizes: { min: g.minSize === Infinity ? 0 : g.minSize, max: g.maxSize, top: top(g.sizes).map(([size, count]) => ({ size, count })) },
    comms: top(g.comms).map(([comm, count]) => ({ comm, count })),
    allocUptimeS: allocMin === Infinity ? null : { min: round3(allocMin)!, max: round3(allocMax)! },
  };
}

function round3(x: number | null): number | null {
  return x === null || !Number.isFinite(x) ? null : Math.round(x * 1000) / 1000;
}

/** Ranking: bytes per hour desc (unknown last), then bytes desc, then fingerprint for stability. */
export function rankGroups<T extends LeakGroup | SuppressedGroup>(groups: T[]): T[] {
  return groups.sort((a, b) => {
    const ra = a.bytesPerHour ?? -Infinity;
    const rb = b.bytesPerHour ?? -Infinity;
    if (ra !== rb) return rb - ra;
    if (a.bytes !== b.bytes) return b.bytes - a.bytes;
    return a.fingerprint < b.fingerprint ? -1 : a.fingerprint > b.fingerprint ? 1 : 0;
  });
}
