// The data model of an analysed run: what `analyzeRun()` returns and what `kml report --format json`
// writes. It is the source of truth every renderer (text, HTML, JUnit, Markdown, diff) reads, so it
// is versioned like Perfetto's protos: fields are only ever added; a removal or a change of meaning
// bumps ANALYSIS_SCHEMA_VERSION. Every field is documented here, once.
//
// Conventions used throughout:
// - Times: wall-clock times are Unix epoch SECONDS (number, may have a fraction); uptimes are
//   seconds since the device booted. `null` means "not known", never 0.
// - Sizes are bytes. Rates are per hour of wall time.
// - Snapshot references are the snapshot's `index` in `AnalyzedRun.snapshots` (0-based, in analysis
//   order), never the device sequence number (`seq`), because seq may restart or have gaps.
// - Kernel strings (comm, symbols, modules) are copied verbatim; renderers must escape them.

/** Bump only on an incompatible change (removed field, changed meaning). Additions keep the version. */
export const ANALYSIS_SCHEMA_VERSION = 1 as const;

export interface AnalyzedRun {
  /** Always ANALYSIS_SCHEMA_VERSION for this shape. Readers refuse versions they do not know. */
  schemaVersion: typeof ANALYSIS_SCHEMA_VERSION;
  /** Constant tag so a JSON file can be recognised without guessing. */
  kind: 'kml-analysis';
  /** When this analysis was made (ISO 8601, UTC). */
  generatedAt: string;
  /** kml version that produced it (package.json). */
  kmlVersion: string;
  /** What was read: kml store, plain folder of kmemleak_log_N.txt, or one file. */
  source: RunSource;
  /** Facts about the run and the device (from run.json when present) and derived kernel facts. */
  run: RunInfo;
  /** The options the analysis used, after defaults were applied (so a report can be reproduced). */
  options: EffectiveOptions;
  /** Every snapshot considered, in analysis order (seq order within a store; N order in a folder). */
  snapshots: SnapshotInfo[];
  /** Leak groups that were NOT suppressed, ranked: bytes per hour desc, then total bytes desc. */
  groups: LeakGroup[];
  /** Groups hidden by a suppression rule: still fully counted, shown in their own table. */
  suppressed: SuppressedGroup[];
  /** One line per rule that matched anything (LSan's "Suppressions used"). */
  suppressionsUsed: SuppressionUse[];
  /** Run-wide totals over `groups` and `suppressed`. */
  totals: RunTotals;
  /**
   * Things the analysis had to assume, in plain words (e.g. "HZ unknown: assumed 250"). A report
   * should print them: they qualify the numbers.
   */
  assumptions: string[];
  /** How much of the input was understood: per-file and total parser counters. */
  parseStats: ParseStats;
  /** What the input reader found and skipped (half-written snapshots, missing meta, bad hashes). */
  inputStats: InputStats;
  /**
   * Memory-state analysis (meminfo/vmstat/buddyinfo/zoneinfo/slabinfo/pagetypeinfo, OOM/LMK events,
   * verdict). Filled by the report side (host/analyze/memory*.ts, verdict.ts); absent when not run.
   * Typed by its owner; `unknown` here so this file does not depend on it.
   */
  memory?: unknown;
  /** Verdict table (kernel slab leak, page-level leak, user-space overuse, fragmentation). Owner: verdict.ts. */
  verdict?: unknown;
}

// ---------------------------------------------------------------------------------------------
// Source and run

export interface RunSource {
  /** 'store' = kml's host store run directory; 'folder' = plain folder of kmemleak_log_N.txt; 'file' = one file. */
  type: 'store' | 'folder' | 'file';
  /** Absolute path that was given. */
  path: string;
}

export interface RunInfo {
  /** Device serial (run.json), or null outside a store. */
  serial: string | null;
  /** Run id (store directory name), or null. */
  runId: string | null;
  /** Kernel release string (`uname -r`), if recorded. */
  kernelVersion: string | null;
  /** Kernel command line, if recorded. */
  cmdline: string | null;
  /** Collection interval in seconds (run.json), if recorded. */
  intervalS: number | null;
  /** Scan protocol the collector used (run.json, free text such as "scan,sleep5,scan,cat,clear"), if recorded. */
  scanProtocol: string | null;
  /** When collection started (ISO 8601), if recorded. */
  startedAt: string | null;
  /** Device properties recorded by the collector (ro.product.model, ...), verbatim; {} if none. */
  deviceProps: Record<string, string>;
  /** Distinct boot ids in snapshot order (a reboot during the run shows as two entries). */
  bootIds: string[];
  /** Kernel timer frequency used to turn jiffies into uptime, and where it came from. */
  hz: { value: number; source: 'option' | 'config' | 'inferred' | 'assumed' };
  /** Pointer width seen in object addresses (8 hex digits = 32, more = 64), null if no record. */
  pointerBits: 32 | 64 | null;
  /**
   * Report-format eras seen, by record count: keys like "bracket-hashed/age", "bare/crc",
   * "bracket-raw/age+terminator" (see kmemleak/types.ts RecordFormat). Helps explain the kernel.
   */
  formats: Record<string, number>;
  /** Whether snapshots look cleared between reads ('cumulative') or re-print old objects ('persistent'). */
  snapshotMode: 'cumulative' | 'persistent' | 'unknown';
}

export interface EffectiveOptions {
  /** Caller frames in the grouping key (after allocator frames are skipped). */
  framesInKey: number;
  /** An allocation within this many seconds of boot is tagged boot-time. */
  bootWindowS: number;
  /** Built-in suppression rules applied? */
  builtinSuppressions: boolean;
  /** User suppression file, if any (absolute path). */
  suppressFile: string | null;
  /** Extra allocator-frame patterns the user added (globs). */
  extraSkipFrames: string[];
  /** Snapshots with a lower seq were left out (`--since`), or null. */
  sinceSeq: number | null;
  /** Window used for the status rules: the last `recentSnapshots` snapshots are "recent". */
  recentSnapshots: number;
}

// ---------------------------------------------------------------------------------------------
// Snapshots

export interface SnapshotInfo {
  /** Position in `snapshots` (0-based). Everything else refers to snapshots by this. */
  index: number;
  /** Device sequence number N (kmemleak_log_N.txt / snapshots/N), or null for a single file. */
  seq: number | null;
  /** Boot id the snapshot belongs to (store: boot-<id>/), or null when unknown (plain folder). */
  bootId: string | null;
  /** Wall time of the read (epoch seconds), or null. See `wallTimeSource`. */
  wallTime: number | null;
  /** Where wallTime came from: meta/manifest (device clock), file mtime (host clock), or none. */
  wallTimeSource: 'manifest' | 'meta' | 'mtime' | 'none';
  /** Device uptime at the read (seconds), or null. */
  uptimeS: number | null;
  /**
   * Time axis used for slopes: wall time when known, else derived (uptime/interval), in epoch-like
   * seconds; strictly non-decreasing over `snapshots`. null only when nothing is known at all.
   */
  t: number | null;
  /** Files belonging to this snapshot, relative to `source.path` (for a single file: to its folder), POSIX separators. */
  files: SnapshotFiles;
  /** Bytes of kmemleak text read. */
  bytes: number;
  /** Leak records parsed (after dedupe inside this snapshot). */
  records: number;
  /** Records dropped as duplicates of another in the same snapshot (same address and jiffies). */
  duplicates: number;
  /** Records whose (address, jiffies) already appeared in the previous snapshot of the same boot. */
  repeatedFromPrevious: number;
  /** Lines the parser did not understand in this snapshot. */
  unparsedLines: number;
  /** Records cut short (no backtrace, EOF inside a record, ...). Still grouped. */
  truncatedRecords: number;
  /**
   * ok = read and parsed; empty = zero bytes (no leaks reported, a valid result); unreadable =
   * I/O error (see `error`); hash-mismatch = content differs from the manifest hash (still parsed);
   * missing = listed (manifest) but its kmemleak file is not there (memory samples may still be).
   */
  status: 'ok' | 'empty' | 'unreadable' | 'hash-mismatch' | 'missing';
  /** Present when status is unreadable or hash-mismatch, or the meta was bad. */
  error?: string;
  /** Whether the store manifest lists this snapshot (false = found on disk only; null = no manifest). */
  inManifest: boolean | null;
  /** meta fields verbatim (store meta_<N>.json), {} when none. */
  meta: Record<string, unknown>;
}

export interface SnapshotFiles {
  kmemleak: string | null;
  meta: string | null;
  kmsg: string | null;
  /** Memory-state samples by name (meminfo, vmstat, buddyinfo, zoneinfo, slabinfo, pagetypeinfo). */
  mem: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Leak groups

/**
 * How a group behaves over the run (rules in host/analyze/trend.ts, applied to NEW objects per
 * snapshot, i.e. objects not already printed by the previous snapshot):
 * - new:      first seen in the last snapshot.
 * - growing:  new objects in ≥2 snapshots, and at least one in the recent window.
 * - steady:   new objects in ≥2 snapshots, none in the recent window (stopped growing).
 * - one-shot: new objects in exactly one snapshot, which is not the last one.
 */
export type LeakStatus = 'new' | 'growing' | 'steady' | 'one-shot';

export interface LeakGroup {
  /** 12 hex digits: hash of `key`. Stable across runs, kernels with other address hashing, and eras. */
  fingerprint: string;
  /** Human key the fingerprint hashes: normalised caller frames joined by " < ", module suffixes kept. */
  key: string;
  /** `memory leak in <culprit>` (syzkaller style). */
  title: string;
  /** First caller frame after allocator frames were skipped (normalised name, or "?+0xNNN" if unresolved). */
  culprit: string;
  /** Normalised key frames (at most framesInKey), culprit first. */
  frames: string[];
  /** Module of the first key frame that has one (" [mod]" suffix), else null (core kernel or unknown). */
  module: string | null;
  /** Full stack of one sample record as the kernel printed it (symbol+off/size [mod]), allocator frames included. */
  sampleStack: string[];
  /** One concrete record, for the report's detail view. */
  sample: SampleRecord;
  status: LeakStatus;
  /**
   * Record counts per tag (records printed, repeats included): `boot-time` (comm swapper*, pid 0 or 1
   * outside interrupt context, or allocated within bootWindowS of boot), `percpu` (6.12+ percpu
   * object), `truncated` (record cut short), `repeated` (printed again by a later snapshot),
   * `dmesg` (parsed from a dmesg copy), `vanished` (gone from the next read of the same boot).
   */
  tags: Record<string, number>;
  /** True when every object in the group is boot-time (see EffectiveOptions.bootWindowS). */
  bootTime: boolean;
  /** Objects and bytes over the whole run (new objects only: an object printed twice counts once). */
  objects: number;
  bytes: number;
  /** Least-squares slope of cumulative bytes / objects against `t`, per hour; null with <2 time points. */
  bytesPerHour: number | null;
  objectsPerHour: number | null;
  /** Snapshot indexes of first and last appearance (any object, new or repeated). */
  firstSeen: number;
  lastSeen: number;
  /** Snapshots where this group had new objects. */
  snapshotsWithNew: number;
  /**
   * Sparse series, one entry per snapshot where the group appeared, ascending by snapshot. Between
   * entries the cumulative values carry forward and per-snapshot values are 0.
   */
  series: GroupPoint[];
  /** Object sizes seen: smallest, largest and up to 8 most frequent sizes with counts. */
  sizes: { min: number; max: number; top: Array<{ size: number; count: number }> };
  /** Allocating tasks: up to 8 most frequent comm values with counts. */
  comms: Array<{ comm: string; count: number }>;
  /** Reconstructed allocation uptime range (seconds since boot), null when jiffies/HZ did not allow it. */
  allocUptimeS: { min: number; max: number } | null;
}

export interface GroupPoint {
  /** Snapshot index. */
  snapshot: number;
  /** Objects of this group printed in the snapshot (after in-snapshot dedupe). */
  objects: number;
  bytes: number;
  /** Of those, objects not printed by the previous snapshot of the same boot. */
  newObjects: number;
  newBytes: number;
  /** Running sums of newObjects/newBytes up to and including this snapshot. */
  cumObjects: number;
  cumBytes: number;
}

export interface SampleRecord {
  snapshot: number;
  /** Object address as printed (hex, no 0x). */
  address: string;
  size: number;
  comm: string | null;
  pid: number | null;
  jiffies: number | null;
  /** Reconstructed allocation uptime (seconds), or null. */
  allocUptimeS: number | null;
  /** Hex dump bytes as printed (hex pairs without spaces), or null. */
  hex: string | null;
  /** 'normal', 'percpu' or 'phys' (6.12+ header suffix). */
  objectType: 'normal' | 'percpu' | 'phys';
  /** Line number of the record header in its file (1-based). */
  line: number;
}

export interface SuppressedGroup extends LeakGroup {
  suppression: SuppressionRef;
}

export interface SuppressionRef {
  /** Rule id (built-in ids start with "builtin:"; user rules get "user:<id or index>"). */
  ruleId: string;
  /** Why this is not a leak, in the rule author's words. */
  reason: string;
  origin: 'builtin' | 'user';
}

export interface SuppressionUse extends SuppressionRef {
  /** Groups, objects and bytes the rule hid. */
  groups: number;
  objects: number;
  bytes: number;
}

export interface RunTotals {
  groups: number;
  objects: number;
  bytes: number;
  suppressedGroups: number;
  suppressedObjects: number;
  suppressedBytes: number;
}

// ---------------------------------------------------------------------------------------------
// Parse and input accounting

export interface ParseStats {
  /** Files parsed. */
  files: number;
  /** Lines read in total. */
  lines: number;
  /** Bytes read in total. */
  bytes: number;
  /** Records parsed (before dedupe). */
  records: number;
  /** Records cut short (flagged, still counted). */
  truncatedRecords: number;
  /** Records dropped as in-snapshot duplicates (address + jiffies). */
  duplicateRecords: number;
  /** Lines not understood (never fatal). */
  unparsedLines: number;
  /** Lines longer than the parser's limit, cut (counted also as unparsed when not understood). */
  overlongLines: number;
  /** Recognised lines that are not part of a record, by recogniser name (dmesg noise, markers, blank). */
  ignoredLines: Record<string, number>;
  /** Up to 20 examples of unparsed lines, to show the user what was not understood. */
  unparsedSamples: Array<{ file: string; line: number; text: string }>;
}

export interface InputStats {
  /** Snapshot files found and used. */
  snapshotsFound: number;
  /** Half-written snapshots skipped (.partial-N dirs, *.part / *.tmp files), with their names. */
  partialSkipped: string[];
  /** Snapshots without a meta file or manifest line (times then come from mtime or are unknown). */
  missingMeta: number;
  /** Manifest lines whose kmemleak file is missing on disk. */
  missingFiles: string[];
  /** Manifest lines that could not be parsed. */
  badManifestLines: number;
  /** Snapshots whose content hash differs from the manifest. */
  hashMismatches: number;
  /** Snapshots that could not be read. */
  unreadable: number;
  /** Whether run.json was present and readable. */
  runJson: 'ok' | 'missing' | 'invalid';
  /** Store snapshots flagged `conflict` (same boot and seq as another, other content), left out. */
  conflictsSkipped: string[];
  /**
   * Cycles the device agent skipped during the run (device storage low, snapshot did not fit),
   * from the store's skipped.jsonl: holes in the run that are not collection losses.
   */
  agentSkipped?: Array<{ bootId: string; seq: number; wallTime: number | null; reason: string }>;
}
