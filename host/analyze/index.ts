// Entry point of the analysis: turn a run (kml store, plain folder of kmemleak_log_N.txt, or one
// file) into the AnalyzedRun model (model.ts). The report command calls analyzeRun() and renders.
//
// One pass, streaming: snapshots are read in order, each file line by line; every record is
// deduplicated inside its snapshot by (address, jiffies), given a stack identity (fingerprint.ts),
// checked against suppression rules (suppress.ts) and folded into its group (trend.ts). Memory:
// the groups, plus the (address, jiffies) keys of the current and previous snapshot.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ExitCode, KmlError } from '../errors.js';
import { KML_VERSION } from '../version.js';
import { Fingerprinter, displayStack, type StackIdentity } from '../kmemleak/fingerprint.js';
import { DEFAULT_HZ, HZ_CANDIDATES, HzEstimator, allocUptimeS, hzFromConfigText, initialJiffies } from '../kmemleak/jiffies.js';
import { LineSplitter } from '../kmemleak/lines.js';
import { KmemleakParser, type ParsedRecord } from '../kmemleak/parser.js';
import { ObjectSet } from '../kmemleak/object-set.js';
import { FORMAT_NAMES, framesOfStackText } from '../kmemleak/record.js';
import { StackInterner } from '../kmemleak/stack-table.js';
import type { ParserCounters } from '../kmemleak/types.js';
import { discoverRun, type RunInput, type SnapshotSource } from './input.js';
import {
  ANALYSIS_SCHEMA_VERSION, type AnalyzedRun, type LeakGroup, type ParseStats, type RunInfo, type SnapshotInfo,
  type SuppressedGroup, type SuppressionUse,
} from './model.js';
import { BUILTIN_SUPPRESSIONS, compileRule, loadSuppressionFile, type CompiledRule, type SuppressionConfig } from './suppress.js';
import { GroupTable, rankGroups, ruleMatchCount, toLeakGroup, trendOf, type GroupAcc, type RecordUpdate } from './trend.js';

export type { AnalyzedRun } from './model.js';

/** What the analysis derives once per distinct stack: its identity and which rules' stack part it matches. */
interface StackFacts {
  id: StackIdentity;
  sm: boolean[];
  /** The group its records go to when no record rule takes them (found once, not per record). */
  group: GroupAcc | null;
  /** Indexes (in groupRules) of the group rules whose stack part matches. */
  groupRuleHits: number[];
  /** Per hit, what its mask is: RULE_ALL, RULE_BOOT (no condition on the object), or RULE_OBJECT (ask the rule). */
  groupRuleKinds: number[];
}

/** StackFacts.groupRuleKinds: the rule's mask is every HZ candidate, the boot-time mask, or the rule's answer for the object. */
const RULE_ALL = 0;
const RULE_BOOT = 1;
const RULE_OBJECT = 2;

export const DEFAULT_BOOT_WINDOW_S = 60;
/** Interval assumed between snapshots when nothing tells the time (the seed's `sleep 600`). */
export const DEFAULT_INTERVAL_S = 600;
const MAX_UNPARSED_SAMPLES = 20;
/** Median gap below which file mtimes are taken for copy times, not snapshot times. */
const MIN_MTIME_GAP_S = 5;

export interface AnalyzeOptions {
  /** Caller frames in the grouping key (default 5). */
  framesInKey?: number;
  /** Kernel HZ when the caller knows it better than run.json (default: run.json, else inferred/assumed). */
  hz?: number;
  /** Allocations within this many seconds of boot are tagged boot-time (default 60). */
  bootWindowS?: number;
  /** Path of a user suppression file (JSON, see suppress.ts). */
  suppressFile?: string;
  /** Apply the built-in suppression list (default true). */
  builtinSuppressions?: boolean;
  /** Extra allocator frames to skip when keying (glob patterns, `*` wildcard). */
  extraSkipFrames?: string[];
  /** Leave out snapshots whose seq is lower than this (`--since N`). */
  sinceSeq?: number;
  /** Size of the "recent" window for status rules (default max(2, ceil(snapshots/4))). */
  recentSnapshots?: number;
  /** Clock for generatedAt (tests pass a fixed one). */
  now?: () => Date;
  /** Called after each MiB of kmemleak text read, and once at the end (a progress line for long runs). */
  onProgress?: (p: AnalyzeProgress) => void;
}

/** How far the kmemleak snapshots have been read. */
export interface AnalyzeProgress {
  snapshotsDone: number;
  snapshotsTotal: number;
  bytesDone: number;
  /** Sum of the snapshot files' sizes when the analysis started. */
  bytesTotal: number;
}


function checkOptions(o: AnalyzeOptions): void {
  const posInt = (name: string, v: number | undefined): void => {
    if (v !== undefined && !(Number.isSafeInteger(v) && v > 0)) throw new KmlError(ExitCode.USAGE, `${name} must be a positive whole number, got ${v}`);
  };
  posInt('frames in key', o.framesInKey);
  posInt('HZ', o.hz);
  posInt('recent snapshots', o.recentSnapshots);
  if (o.bootWindowS !== undefined && !(o.bootWindowS >= 0)) throw new KmlError(ExitCode.USAGE, `boot window must be ≥ 0 seconds, got ${o.bootWindowS}`);
  if (o.sinceSeq !== undefined && !(Number.isSafeInteger(o.sinceSeq) && o.sinceSeq >= 0)) throw new KmlError(ExitCode.USAGE, `--since must be a snapshot number ≥ 0, got ${o.sinceSeq}`);
}

/** Facts from run.json (its `device` block is what doctor found). Tolerant of missing fields. */
function runInfoFrom(input: RunInput): Omit<RunInfo, 'bootIds' | 'hz' | 'pointerBits' | 'formats' | 'snapshotMode'> & { hzConfig: number | null } {
  const rj = input.runJson ?? {};
  const str = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const device = (typeof rj.device === 'object' && rj.device !== null ? rj.device : {}) as Record<string, unknown>;
  const kernel = (typeof device.kernel === 'object' && device.kernel !== null ? device.kernel : {}) as Record<string, unknown>;
  const props: Record<string, string> = {};
  const rawProps = device.props;
  if (rawProps && typeof rawProps === 'object') for (const [k, v] of Object.entries(rawProps)) if (typeof v === 'string') props[k] = v;
  let hzConfig = num(kernel.hz);
  if (hzConfig === null && kernel.config !== undefined) hzConfig = hzFromConfigText(typeof kernel.config === 'string' ? kernel.config : JSON.stringify(kernel.config));
  if (hzConfig !== null && !(hzConfig > 0)) hzConfig = null;
  return {
    serial: str(rj.serial),
    runId: str(rj.runId) ?? (input.source.type === 'store' ? path.basename(input.source.path) : null),
    kernelVersion: str(kernel.release) ?? str(kernel.version),
    cmdline: str(kernel.cmdline),
    intervalS: num(rj.intervalS),
    scanProtocol: str(rj.scanProtocol),
    startedAt: str(rj.started),
    deviceProps: props,
    hzConfig,
  };
}

interface FileParse {
  counters: ParserCounters;
  bytes: number;
  sha256: string | null;
  error?: string;
}

/** Read buffer shared by every file (one at a time): chunks are parsed, never kept, so no garbage buffers pile up. */
let readBuffer: Buffer | null = null;
const READ_SIZE = 1 << 20;

/**
 * Stream one kmemleak file through the parser (hashing it on the way when a hash is expected).
 * Synchronous reads: one file is parsed at a time and nothing else runs meanwhile, so an awaited
 * read per chunk only adds a trip through the event loop (and idle time) per MiB.
 */
function parseFile(file: string, wantHash: boolean, stacks: StackInterner, onRecord: (r: ParsedRecord) => void, onChunk?: (bytes: number) => void): FileParse {
  // No pointers in the stack text: the analysis never reads them (fewer bytes per record to copy, hash and compare).
  const parser = new KmemleakParser({ onParsed: onRecord, maxSamples: MAX_UNPARSED_SAMPLES, stacks, stackPcs: false });
  const splitter = new LineSplitter(parser);
  const hash = wantHash ? createHash('sha256') : null;
  let bytes = 0;
  let error: string | undefined;
  const buf = (readBuffer ??= Buffer.allocUnsafeSlow(READ_SIZE));
  let fd: number | null = null;
  try {
    fd = fs.openSync(file, 'r');
    for (;;) {
      const bytesRead = fs.readSync(fd, buf, 0, READ_SIZE, null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      bytes += bytesRead;
      hash?.update(chunk);
      splitter.pushBuffer(chunk);
      onChunk?.(bytesRead);
    }
  } catch (e) {
    error = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  } finally {
    if (fd !== null) try { fs.closeSync(fd); } catch { /* nothing to do: the file was read or failed already */ }
  }
  splitter.end();
  parser.end(splitter.lastLineUnterminated);
  parser.counters.bytes = bytes;
  return { counters: parser.counters, bytes, sha256: hash ? hash.digest('hex') : null, error };
}

/** Analyse a run. `source` is a path: a store run dir, a folder of kmemleak_log_N.txt, or a file. */
export async function analyzeRun(source: string, options: AnalyzeOptions = {}): Promise<AnalyzedRun> {
  checkOptions(options);
  const now = options.now ?? (() => new Date());
  const input = await discoverRun(source);
  const suppressCfg: SuppressionConfig = options.suppressFile ? await loadSuppressionFile(path.resolve(options.suppressFile)) : { rules: [], skipFrames: [] };
  const framesInKey = options.framesInKey ?? 5;
  const bootWindowS = options.bootWindowS ?? DEFAULT_BOOT_WINDOW_S;
  const builtin = options.builtinSuppressions ?? true;
  const extraSkipFrames = [...(options.extraSkipFrames ?? []), ...suppressCfg.skipFrames];
  const info = runInfoFrom(input);
  const assumptions: string[] = [];

  // HZ: --hz, else run.json, else inferred from the records (a candidate per CONFIG_HZ choice).
  const fixedHz = options.hz ?? info.hzConfig;
  const candidates = fixedHz !== null && fixedHz !== undefined ? [fixedHz] : [...HZ_CANDIDATES];
  const hzEst = new HzEstimator(candidates);
  const allCandidates = (1 << candidates.length) - 1;
  // The estimator's answer is used only when HZ is neither given nor recorded.
  const inferHz = fixedHz === null || fixedHz === undefined;

  const fingerprinter = new Fingerprinter({ framesInKey, extraSkipFrames });
  const rules = [...(builtin ? BUILTIN_SUPPRESSIONS : []), ...suppressCfg.rules].map(compileRule);
  const recordRules = rules.filter((r) => !r.groupRule);
  const groupRules = rules.filter((r) => r.groupRule);
  // Stack part of every rule, memoised on the (cached) stack identity.
  const stackMatches = (id: StackIdentity): boolean[] => {
    let v = id.memo as boolean[] | undefined;
    if (!v) {
      v = rules.map((r) => r.matchesStack({ allFrames: id.allFrames, keyFrames: id.frames, culprit: id.culprit, module: id.module }));
      id.memo = v;
    }
    return v;
  };
  const ruleIndex = new Map<CompiledRule, number>(rules.map((r, i) => [r, i]));
  const table = new GroupTable(candidates.length, groupRules);
  const groupRuleIndex = groupRules.map((r) => ruleIndex.get(r)!);
  // Rules that say nothing about the object (type, size, comm) match every object of a matching stack.
  const groupRuleAnyObject = groupRules.map((r) => r.rule.objectType === undefined && r.rule.size === undefined && r.rule.comm === undefined);
  const recordRuleIndex = recordRules.map((r) => ruleIndex.get(r)!);
  const scratchUptimes = new Float64Array(candidates.length);
  const scratchMasks: number[] = new Array(groupRules.length).fill(0);
  /** Which scratchMasks entries the last record set (the rest are 0). */
  const masksSetAt: number[] = new Array(groupRules.length).fill(0);
  let masksSet = 0;
  const initJiffies = candidates.map(initialJiffies);

  const selected = input.snapshots.filter((s) => options.sinceSeq === undefined || s.seq === null || s.seq >= options.sinceSeq);
  const onProgress = options.onProgress;
  const progress: AnalyzeProgress = { snapshotsDone: 0, snapshotsTotal: selected.length, bytesDone: 0, bytesTotal: 0 };
  if (onProgress) {
    for (const s of selected) {
      if (!s.kmemleakPath) continue;
      try { progress.bytesTotal += fs.statSync(s.kmemleakPath).size; } catch { /* reported when it is read */ }
    }
  }
  const onChunk = onProgress ? (n: number): void => { progress.bytesDone += n; onProgress(progress); } : undefined;
  if (options.sinceSeq !== undefined) assumptions.push(`snapshots before seq ${options.sinceSeq} left out (--since); their objects are not counted`);

  const parseStats: ParseStats = {
    files: 0, lines: 0, bytes: 0, records: 0, truncatedRecords: 0, duplicateRecords: 0, unparsedLines: 0, overlongLines: 0,
    ignoredLines: {}, unparsedSamples: [],
  };
  const snapshots: SnapshotInfo[] = [];
  // Records per format (by ParsedRecord.formatIndex), and the formats in the order first seen.
  const formatCounts = new Float64Array(FORMAT_NAMES.length);
  const formatOrder: number[] = [];
  let bits32 = 0;
  let bits64 = 0;
  // Objects of the snapshot being read and of the previous one (two sets, swapped), valued by group index.
  const objectSets = [new ObjectSet(), new ObjectSet()];
  let prevKeys: ObjectSet | null = null;
  const stacks = new StackInterner();
  const update: RecordUpdate = { snapshot: 0, record: null as unknown as ParsedRecord, id: null as unknown as StackIdentity, recordRule: null, repeat: false, uptimes: scratchUptimes, bootMask: 0, ruleMasks: scratchMasks, ruleMasksSet: 0 };
  let prevBoot: string | null = null;
  let comparable = 0;
  let repeats = 0;
  const inputStats = input.stats;

  for (let index = 0; index < selected.length; index++) {
    const s: SnapshotSource = selected[index];
    progress.snapshotsDone = index;
    const snap: SnapshotInfo = {
      index, seq: s.seq, bootId: s.bootId, wallTime: s.wallTime, wallTimeSource: s.wallTimeSource, uptimeS: s.uptimeS, t: null,
      files: s.files, bytes: 0, records: 0, duplicates: 0, repeatedFromPrevious: 0, unparsedLines: 0, truncatedRecords: 0,
      status: 'ok', inManifest: s.inManifest, meta: s.meta,
    };
    if (s.metaError) snap.error = s.metaError;
    snapshots.push(snap);
    const sameBoot = prevKeys !== null && s.bootId === prevBoot;
    const previous = sameBoot ? prevKeys : null;
    prevBoot = s.bootId;
    if (!s.kmemleakPath) {
      snap.status = 'missing';
      prevKeys = null;
      continue;
    }
    const seen: ObjectSet = objectSets[0] === prevKeys ? objectSets[1] : objectSets[0];
    seen.clear();
    const readUptime = s.uptimeS;
    // Oldest and newest record with an age in this read, for HZ from jiffies/age differences.
    const lo = { set: false, jiffies: 0, ageMs: 0, bits: 64 as 32 | 64 };
    const hi = { set: false, jiffies: 0, ageMs: 0, bits: 64 as 32 | 64 };
    const onRecord = (r: ParsedRecord): void => {
      const place = seen.reserve(r); // one probe: duplicate check now, the insert at the end
      if (place === -1) { snap.duplicates++; return; }
      // The stack's identity, memoised per distinct stack in the table that numbers the stacks.
      const sid = r.stackId();
      const stackTable = r.stackTable!; // set by stackId()
      let facts = stackTable.memo[sid] as StackFacts | undefined;
      if (facts === undefined) {
        const text = stackTable.text(sid);
        const stackId = fingerprinter.identifyStack(text, () => framesOfStackText(text));
        const sm = stackMatches(stackId);
        const hits = groupRuleIndex.flatMap((ri, k) => (sm[ri] ? [k] : []));
        const kinds = hits.map((k) => (!groupRuleAnyObject[k] ? RULE_OBJECT : groupRules[k].rule.bootTime ? RULE_BOOT : RULE_ALL));
        facts = { id: stackId, sm, group: null, groupRuleHits: hits, groupRuleKinds: kinds };
        stackTable.memo[sid] = facts;
      }
      const id = facts.id;
      const sm = facts.sm;
      // Record rules: the first matching one moves the record to a suppressed group.
      let recordRule: CompiledRule | null = null;
      for (let k = 0; k < recordRules.length; k++) {
        if (sm[recordRuleIndex[k]] && recordRules[k].matchesObject(r)) { recordRule = recordRules[k]; break; }
      }
      // Allocation uptime and boot-time tag, per HZ candidate (scratch arrays: copied by the table if kept).
      const uptimes = scratchUptimes;
      let bootMask = 0;
      const comm = r.comm ?? '';
      const bootByTask = comm.startsWith('swapper') || r.pid === 1 || (r.pid === 0 && comm !== 'hardirq' && comm !== 'softirq');
      const jiffies = r.jiffies;
      const wide = r.pointerBits === 64;
      for (let c = 0; c < candidates.length; c++) {
        let t: number;
        if (jiffies === null) t = NaN;
        else if (wide) { // allocUptimeS's 64-bit case, inline (per record and candidate)
          const d = jiffies - initJiffies[c];
          t = d < 0 ? NaN : d / candidates[c];
        } else t = allocUptimeS(jiffies, candidates[c], r.pointerBits, readUptime) ?? NaN;
        uptimes[c] = t;
        if (bootByTask || t <= bootWindowS) bootMask |= 1 << c; // NaN (unknown) compares false
      }
      if (r.jiffies !== null && inferHz) {
        hzEst.observeUptimes(uptimes, readUptime, r.ageMs);
        if (r.ageMs !== null) {
          if (!lo.set || r.jiffies < lo.jiffies) { lo.set = true; lo.jiffies = r.jiffies; lo.ageMs = r.ageMs; lo.bits = r.pointerBits; }
          if (!hi.set || r.jiffies > hi.jiffies) { hi.set = true; hi.jiffies = r.jiffies; hi.ageMs = r.ageMs; hi.bits = r.pointerBits; }
        }
      }
      // Group rule masks: zero but for the rules whose stack part matches this stack.
      const ruleMasks = scratchMasks;
      for (let k = 0; k < masksSet; k++) ruleMasks[masksSetAt[k]] = 0;
      masksSet = 0;
      const hits = facts.groupRuleHits;
      const kinds = facts.groupRuleKinds;
      for (let h = 0; h < hits.length; h++) {
        const k = hits[h];
        const kind = kinds[h];
        const m = kind === RULE_ALL ? allCandidates : kind === RULE_BOOT ? bootMask
          : !groupRules[k].matchesObject(r) ? 0 : groupRules[k].rule.bootTime ? bootMask : allCandidates;
        if (m !== 0) { ruleMasks[k] = m; masksSetAt[masksSet++] = k; }
      }
      update.ruleMasksSet = masksSet;
      const repeat = previous !== null && previous.has(r);
      if (repeat) snap.repeatedFromPrevious++;
      update.snapshot = index;
      update.record = r;
      update.id = id;
      update.recordRule = recordRule;
      update.repeat = repeat;
      update.bootMask = bootMask;
      const g = recordRule === null ? (facts.group ??= table.groupOf(update)) : table.groupOf(update);
      table.addTo(g, update);
      seen.commit(place, r, g.index);
      snap.records++;
      if (formatCounts[r.formatIndex]++ === 0) formatOrder.push(r.formatIndex);
      if (r.pointerBits === 32) bits32++;
      else bits64++;
    };
    const fp = parseFile(s.kmemleakPath, s.sha256 !== null, stacks, onRecord, onChunk);
    // lo and hi are the same record exactly when no later record had other jiffies.
    if (lo.set && hi.set && lo.jiffies !== hi.jiffies && lo.bits === hi.bits) hzEst.observeAgePair(lo.jiffies, lo.ageMs, hi.jiffies, hi.ageMs, lo.bits);
    snap.bytes = fp.bytes;
    snap.unparsedLines = fp.counters.unparsedLines;
    snap.truncatedRecords = fp.counters.truncatedRecords;
    if (fp.error) {
      snap.status = 'unreadable';
      snap.error = fp.error;
      inputStats.unreadable++;
    } else if (s.sha256 !== null && fp.sha256 !== s.sha256) {
      snap.status = 'hash-mismatch';
      snap.error = `content sha256 ${fp.sha256} differs from the manifest's ${s.sha256}`;
      inputStats.hashMismatches++;
    } else if (fp.bytes === 0) {
      snap.status = 'empty';
    }
    // Objects of the previous snapshot that this one did not print again: freed or referenced.
    if (previous) {
      comparable += snap.records;
      repeats += snap.repeatedFromPrevious;
      previous.forEachMissingIn(seen, (gi) => { table.list[gi].vanished++; });
    }
    prevKeys = fp.error ? null : seen;

    parseStats.files++;
    parseStats.lines += fp.counters.lines;
    parseStats.bytes += fp.bytes;
    parseStats.records += fp.counters.records;
    parseStats.truncatedRecords += fp.counters.truncatedRecords;
    parseStats.duplicateRecords += snap.duplicates;
    parseStats.unparsedLines += fp.counters.unparsedLines;
    parseStats.overlongLines += fp.counters.overlongLines;
    for (const [k, v] of Object.entries(fp.counters.ignoredLines)) parseStats.ignoredLines[k] = (parseStats.ignoredLines[k] ?? 0) + v;
    for (const u of fp.counters.unparsedSamples) {
      if (parseStats.unparsedSamples.length >= MAX_UNPARSED_SAMPLES) break;
      parseStats.unparsedSamples.push({ file: s.files.kmemleak ?? '', line: u.line, text: u.text });
    }
  }

  progress.snapshotsDone = selected.length;
  onProgress?.(progress);

  // --- decisions that need the whole run ---------------------------------------------------------
  const n = snapshots.length;
  let hz: RunInfo['hz'];
  if (options.hz !== undefined) hz = { value: options.hz, source: 'option' };
  else if (info.hzConfig !== null) hz = { value: info.hzConfig, source: 'config' };
  else {
    const r = hzEst.result();
    hz = { value: r.hz, source: r.source };
    assumptions.push(r.source === 'inferred'
      ? `HZ not recorded: inferred ${r.hz} (${r.why})`
      : `HZ not recorded and not inferable (${r.why}): assumed ${r.hz}; allocation times and the boot-time tag depend on it`);
  }
  const c = Math.max(0, candidates.indexOf(hz.value));
  if (candidates.indexOf(hz.value) < 0 && candidates.length) assumptions.push(`HZ ${hz.value} is not a standard value; uptimes computed with ${candidates[c]}`);

  const snapshotMode: RunInfo['snapshotMode'] = comparable === 0 ? 'unknown' : repeats / comparable >= 0.5 ? 'persistent' : 'cumulative';
  if (snapshotMode === 'persistent') assumptions.push('snapshots re-print old objects (no clear between reads): only objects not printed by the previous snapshot count as new');

  // Time axis: device wall clock when every snapshot has it, else uptime (one boot), else the interval.
  const interval = info.intervalS ?? DEFAULT_INTERVAL_S;
  const bootIds: string[] = [];
  for (const s of snapshots) if (s.bootId !== null && !bootIds.includes(s.bootId)) bootIds.push(s.bootId);
  // File times are only trusted when they look like the times the files were written: a copied
  // folder (adb pull without -a, cp, unzip) gives every file the copy time, seconds apart at most.
  const mtimeOnly = snapshots.filter((s) => s.wallTimeSource === 'mtime');
  let mtimesUsable = true;
  if (mtimeOnly.length >= 2) {
    const gaps: number[] = [];
    for (let i = 1; i < mtimeOnly.length; i++) gaps.push(Math.abs(mtimeOnly[i].wallTime! - mtimeOnly[i - 1].wallTime!));
    gaps.sort((a, b) => a - b);
    mtimesUsable = gaps[Math.floor(gaps.length / 2)] >= MIN_MTIME_GAP_S;
    if (!mtimesUsable) {
      for (const s of mtimeOnly) { s.wallTime = null; s.wallTimeSource = 'none'; }
      assumptions.push(`file modification times are less than ${MIN_MTIME_GAP_S} s apart (a copied folder?): not used as snapshot times`);
    }
  }
  if (n > 0 && snapshots.every((s) => s.wallTime !== null)) {
    let last = -Infinity;
    let clamped = false;
    for (const s of snapshots) {
      let t = s.wallTime!;
      if (t < last) { t = last; clamped = true; }
      s.t = t;
      last = t;
    }
    if (clamped) assumptions.push('the wall clock went backwards between snapshots; those times were held at the previous value');
    if (snapshots.some((s) => s.wallTimeSource === 'mtime')) assumptions.push('some snapshot times come from file modification times (host clock), not from the device');
  } else if (n > 0 && bootIds.length <= 1 && snapshots.every((s) => s.uptimeS !== null)) {
    for (const s of snapshots) s.t = s.uptimeS;
    assumptions.push('no wall-clock times: the time axis is device uptime');
  } else if (n > 0) {
    snapshots.forEach((s, i) => { s.t = i * interval; });
    assumptions.push(`no usable snapshot times: snapshots assumed ${interval} s apart`);
  }

  let lastData = -1;
  snapshots.forEach((s, i) => { if (s.status !== 'missing' && s.status !== 'unreadable') lastData = i; });
  const recent = options.recentSnapshots ?? Math.max(2, Math.ceil(n / 4));
  const tAxis = snapshots.map((s) => s.t);
  const hasData = snapshots.map((s) => s.status !== 'missing' && s.status !== 'unreadable');
  const trendCtx = { t: tAxis, recent, hasData };
  const groups: LeakGroup[] = [];
  const suppressed: SuppressedGroup[] = [];
  for (const g of table.groups.values()) {
    const tr = trendOf(g.series, trendCtx);
    const lg = toLeakGroup(g, tr, c, displayStack(g.sampleStack));
    let by: CompiledRule | null = g.recordRule;
    if (!by) {
      for (let i = 0; i < groupRules.length; i++) {
        const gr = groupRules[i];
        if (g.seen === 0 || ruleMatchCount(g, i, c) !== g.seen) continue;
        if (gr.rule.unlessGrowing && tr.status === 'growing') continue;
        if (gr.rule.groupCondition === 'all-vanished' && !(snapshotMode === 'persistent' && g.objects > 0 && g.vanished >= g.objects && g.lastSeen < lastData)) continue;
        by = gr;
        break;
      }
    }
    if (by) suppressed.push({ ...lg, suppression: { ruleId: by.rule.id, reason: by.rule.reason, origin: by.rule.origin } });
    else groups.push(lg);
  }
  rankGroups(groups);
  rankGroups(suppressed);

  const used = new Map<string, SuppressionUse>();
  for (const sg of suppressed) {
    let u = used.get(sg.suppression.ruleId);
    if (!u) { u = { ...sg.suppression, groups: 0, objects: 0, bytes: 0 }; used.set(sg.suppression.ruleId, u); }
    u.groups++;
    u.objects += sg.objects;
    u.bytes += sg.bytes;
  }

  const sum = (xs: LeakGroup[], f: (g: LeakGroup) => number): number => xs.reduce((a, g) => a + f(g), 0);
  const { hzConfig: _hzConfig, ...infoRest } = info;
  void _hzConfig;
  return {
    schemaVersion: ANALYSIS_SCHEMA_VERSION,
    kind: 'kml-analysis',
    generatedAt: now().toISOString(),
    kmlVersion: KML_VERSION,
    source: input.source,
    run: {
      ...infoRest,
      bootIds,
      hz,
      pointerBits: bits64 === 0 && bits32 === 0 ? null : bits64 >= bits32 ? 64 : 32,
      formats: Object.fromEntries(formatOrder.map((i) => [FORMAT_NAMES[i], formatCounts[i]])),
      snapshotMode,
    },
    options: {
      framesInKey, bootWindowS, builtinSuppressions: builtin,
      suppressFile: options.suppressFile ? path.resolve(options.suppressFile) : null,
      extraSkipFrames, sinceSeq: options.sinceSeq ?? null, recentSnapshots: recent,
    },
    snapshots,
    groups,
    suppressed,
    suppressionsUsed: [...used.values()].sort((a, b) => b.bytes - a.bytes || a.ruleId.localeCompare(b.ruleId)),
    totals: {
      groups: groups.length, objects: sum(groups, (g) => g.objects), bytes: sum(groups, (g) => g.bytes),
      suppressedGroups: suppressed.length, suppressedObjects: sum(suppressed, (g) => g.objects), suppressedBytes: sum(suppressed, (g) => g.bytes),
    },
    assumptions,
    parseStats,
    inputStats,
  };
}

export { DEFAULT_HZ };
