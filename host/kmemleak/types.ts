// What the kmemleak parser produces: one KmemleakRecord per `unreferenced object` block, plus
// counters about everything else it read. Field meanings follow mm/kmemleak.c print_unreferenced().

/** One backtrace line. Exactly one of `symbol` (resolved) or `address` (unresolved) is set. */
export interface KmemleakFrame {
  /** Content of the `[<...>]` bracket as printed (raw, hashed, zeros, "(____ptrval____)"), or null (6.13+ bare frames). */
  pc: string | null;
  /** Function name as printed, suffixes kept (`xas_expand.constprop.0`), or null when unresolved. */
  symbol: string | null;
  /** Offset and function size from `+0xOFF/0xSIZE`, or null (unresolved or symbolized inline frame). */
  offset: number | null;
  size: number | null;
  /** Module from a trailing ` [mod]`, or null. */
  module: string | null;
  /** For an unresolved frame: the bare address (lowercase hex, no 0x), e.g. a freed module init section. */
  address: string | null;
  /** `file:line` when the log was symbolized (syzkaller/decode_stacktrace output), else null. */
  source: string | null;
  /** `[inline]` marker of symbolized logs. */
  inline: boolean;
}

/**
 * Coarse description of the printing era of a record, for statistics only:
 * `<frames>/<comm line>[+terminator]`, where frames is bracket-raw | bracket-hashed | bracket-zero |
 * bracket-ptrval | bare | none, and the comm line is `age` (≤6.7, 6.6.x) or `crc` (6.8+, the crc
 * is on the backtrace header) or `plain` (neither).
 */
export type RecordFormat = string;

export interface KmemleakRecord {
  /** Object address, lowercase hex without 0x (raw pointer; for percpu objects the percpu cookie). */
  address: string;
  /** 8 hex digits → 32-bit kernel, more → 64-bit. */
  pointerBits: 32 | 64;
  objectType: 'normal' | 'percpu' | 'phys';
  size: number;
  /** Task name at allocation (may contain spaces), "hardirq"/"softirq" for interrupt context. null if the comm line was missing. */
  comm: string | null;
  pid: number | null;
  /** Allocation time in jiffies as printed; null if missing. Kept as a number (< 2^53 on any real kernel). */
  jiffies: number | null;
  /** `(age S.mmms)` in milliseconds (≤6.7 and 6.6.x), or null. Never use it as a key: it changes each read. */
  ageMs: number | null;
  /** Bytes announced by `hex dump (first N bytes ...)`, or null. */
  hexLength: number | null;
  /** CPU of a percpu hex dump (`on cpu C`), or null. */
  hexCpu: number | null;
  /** Hex bytes as printed, pairs without separators (at most 64 bytes kept), or null. */
  hex: string | null;
  /** `backtrace (crc X)` value (crc32 of the object CONTENTS, not of the stack), or null. */
  crc: string | null;
  /** Backtrace frames in printed order (innermost first), ULONG_MAX terminator frames removed. */
  frames: KmemleakFrame[];
  /** The old (<5.2) `0xffffffff` / `0xffffffffffffffff` terminator frame was present. */
  terminator: boolean;
  format: RecordFormat;
  /** Problems seen in this record: no-comm, no-backtrace, no-frames, hex-short, eof-partial-line, garbage-inside, excess-frames. */
  issues: string[];
  /** Record cut short: no comm line, no backtrace, no frames, or the input ended mid-line inside it. */
  truncated: boolean;
  /** 1-based line number of the header line. */
  line: number;
  /** The record came from a dmesg/kmsg copy (timestamp or `kmemleak: ` prefix stripped). */
  fromDmesg: boolean;
}

export interface ParserCounters {
  lines: number;
  bytes: number;
  records: number;
  truncatedRecords: number;
  unparsedLines: number;
  overlongLines: number;
  /** Recognised non-record lines by recogniser name. */
  ignoredLines: Record<string, number>;
  /** First few unparsed lines (text cut to 200 chars). */
  unparsedSamples: Array<{ line: number; text: string }>;
}
