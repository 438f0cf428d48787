// Streaming, table-driven parser for /sys/kernel/debug/kmemleak output of every kernel era
// (3.x/4.x raw pointers through 6.13+ bracketless frames), and for the same records copied out
// of dmesg (`kmemleak.verbose=1`, `[ 12.3] kmemleak: ...`, `<3>[..]`, /dev/kmsg `6,123,456,-;`).
//
// Shape (after syzkaller's pkg/report): a table of recognisers {name, states, regex, handler} is
// tried in order on each line; the first whose state matches and whose regex matches handles it.
// A line nobody recognises is counted (and a few kept as samples), never thrown on. Records are
// delimited by their `unreferenced object` header; there are no blank separators in kmemleak
// output (research/kmemleak-kernel.md §2.4), and indentation is not relied on (mailing-list
// copies flatten it).
//
// Formats by era (research/kmemleak-kernel.md §2.2):
//   ≤4.14     `[<c0472728>] func+0x198/0x494` raw pointers, `[<ffffffff>] 0xffffffff` terminator, `(age S.mmms)`
//   4.15–5.1  `[<00000000996d44e4>] func+..` hashed; terminator `0xffffffffffffffff`; `(____ptrval____)` before RNG seeding
//   5.2–6.1   hashed, no terminator
//   6.2–6.7   `[<%pK>]`: hashed, raw, or all zeros (kptr_restrict=2, Android's default)
//   6.8+      no `(age ...)`; `backtrace (crc X):`
//   6.12.9+, 6.13+, 6.6.70+: frames are bare `    func+0x../0x.. [mod]`; unresolved ones bare `0xffff...`
//   6.12+     `unreferenced object (percpu) 0x...` and `hex dump (first N bytes on cpu C):`
import type { KmemleakRecord, ParserCounters } from './types.js';
import { forEachLine, type ByteLineSink, type ChunkSource, DEFAULT_MAX_LINE } from './lines.js';
import { MAX_FRAMES, MAX_HEX_CHARS, ParsedRecord, PcKind, RE_FRAME, RE_FRAME_FAST } from './record.js';
import type { StackInterner } from './stack-table.js';
import { BlockMemo, MAX_BLOCK_BYTES } from './block-memo.js';

export { ParsedRecord } from './record.js';

type State = 'idle' | 'record' | 'hex' | 'backtrace' | 'dump';

const MAX_SAMPLES = 20;

// --- line prefixes ------------------------------------------------------------------------------

// dmesg/kmsg prefixes in front of a copied record: `<3>`, `[   12.345678]`, `[  T123]`/`[ C1]`
// (CONFIG_PRINTK_CALLER, common on Android), or /dev/kmsg's `6,2302,12345678,-;`.
const DMESG_PREFIX = /^(?:<\d{1,3}>)?(?:\[\s*\d+\.\d+\]\s?)?(?:\[\s*[TC]\d+\]\s?)?/;
const KMSG_PREFIX = /^\d+,\d+,\d+,[^;]*;/;
const KMEMLEAK_TAG = 'kmemleak: ';

// --- record line regexes (see research §2.6; anchored on the trimmed line) -----------------------

const RE_HEADER = /unreferenced object(?: \((percpu|phys)\))? 0x([0-9a-fA-F]+) \(size (\d+)\):?\s*$/y;
const RE_DUMP_HEADER = /Object(?: \((?:percpu|phys)\))? 0x[0-9a-fA-F]+ \(size \d+\):\s*$/y;
const RE_COMM = /comm "(.*)", pid (-?\d+), jiffies (\d+)(?: \(age (\d+)\.(\d+)s\))?\s*$/y;
const RE_HEX_HEADER = /hex dump \(first (\d+) bytes(?: on cpu (\d+))?\):\s*$/y;
const RE_HEX_LINE = /([0-9a-fA-F]{2}(?: [0-9a-fA-F]{2}){0,31})(?: {2,}.*)?$/y;
const RE_BT_HEADER = /backtrace(?: \(crc ([0-9a-fA-F]+)\))?:\s*$/y;
// Frame lines: RE_FRAME_FAST, then RE_FRAME (record.ts, shared with the frame materialiser).
const RE_DUMP_BODY = /(?:min_count = |count = |flags = 0x|checksum = |excess_ref = |backtrace:\s*$|comm ")/y;
const RE_KMEMLEAK_MESSAGE =
  /(?:\d+ new suspected memory leaks|Kernel memory leak detector|Automatic memory scanning thread|Kmemleak |Early log|Memory pool empty|Cannot |Found object by alias|Trying to color|Unknown object|Not scanning|Adding scan area|Setting excess_ref|Scan area larger|Object |kmalloc\(|vmalloc\(|kzalloc\()/y;
const RE_CAPTURE_MARKER = /(?:\[section rc=-?\d+\]|rc=-?\d+|#{2,3} .*)\s*$/y;
const RE_OTHER_TOOL_HEADER = /(?:(?:\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d )?BUG: memory leak|kmemleaks found (?:before|after) running.*)\s*$/y;

const TERMINATORS = new Set(['ffffffff', 'ffffffffffffffff']);
const RE_BLANKS = /\s+/y;

// --- the recogniser table -------------------------------------------------------------------------

interface LineCtx {
  /** The line without dmesg prefix; the recognisers match from `start` (sticky regexes, no copy). */
  text: string;
  /** Index of the first character after indentation and the `kmemleak: ` tag. */
  start: number;
  /** The line carried a dmesg/kmsg prefix. */
  dmesg: boolean;
  /** The line carried the `kmemleak: ` tag. */
  tagged: boolean;
}

interface Recogniser {
  name: string;
  /** States in which it applies; undefined = any. */
  states?: readonly State[];
  /** Cheap pre-test on the first character, to keep the hot path fast. */
  first?: string;
  re: RegExp;
  /** Part of a leak record (else counted in ignoredLines under its name). */
  record?: boolean;
  /** The handler does not read the match: matched with test() (no match array, no capture strings to collect). */
  noMatch?: boolean;
  /** Return false to decline (the next recogniser is tried). `m` is null for a noMatch recogniser. */
  handle: (p: KmemleakParser, m: RegExpExecArray, ctx: LineCtx) => boolean | void;
}

const IN_RECORD: readonly State[] = ['record', 'hex', 'backtrace'];

export const RECOGNISERS: readonly Recogniser[] = [
  { name: 'header', record: true, first: 'u', re: RE_HEADER, handle: (p, m, c) => p._startRecord(m, c) },
  { name: 'frame', record: true, states: ['backtrace'], re: RE_FRAME_FAST, handle: (p, m, c) => p._frame(m, c) },
  { name: 'frame', record: true, states: ['backtrace'], re: RE_FRAME, handle: (p, m, c) => p._frame(m, c) },
  { name: 'hex-line', record: true, states: ['hex'], re: RE_HEX_LINE, handle: (p, m) => p._hexLine(m) },
  { name: 'comm', record: true, states: ['record'], first: 'c', re: RE_COMM, handle: (p, m) => p._comm(m) },
  { name: 'hex-header', record: true, states: IN_RECORD, first: 'h', re: RE_HEX_HEADER, handle: (p, m) => p._hexHeader(m) },
  { name: 'backtrace-header', record: true, states: IN_RECORD, first: 'b', re: RE_BT_HEADER, handle: (p, m) => p._btHeader(m) },
  // `dump=<addr>` output in dmesg (not a leak report): swallow it until something else appears.
  { name: 'dump-object', first: 'O', re: RE_DUMP_HEADER, noMatch: true, handle: (p) => p._startDump() },
  { name: 'dump-object', states: ['dump'], re: RE_DUMP_BODY, noMatch: true, handle: () => true },
  { name: 'dump-object', states: ['dump'], re: RE_FRAME_FAST, noMatch: true, handle: () => true },
  { name: 'dump-object', states: ['dump'], re: RE_FRAME, noMatch: true, handle: () => true },
  { name: 'blank', re: /\s*$/y, noMatch: true, handle: () => true },
  { name: 'kmemleak-message', re: RE_KMEMLEAK_MESSAGE, noMatch: true, handle: (_p, _m, c) => c.tagged || c.dmesg },
  { name: 'other-tool-header', re: RE_OTHER_TOOL_HEADER, noMatch: true, handle: () => true },
  { name: 'capture-marker', first: '[r#', re: RE_CAPTURE_MARKER, noMatch: true, handle: () => true },
  // A dmesg line from another subsystem (timestamped, no kmemleak tag): skip it, keep the record open.
  { name: 'dmesg-other', re: /(?:)/y, noMatch: true, handle: (_p, _m, c) => c.dmesg && !c.tagged },
];

/**
 * The table compiled per state: recognisers that apply in that state, in table order, indexed
 * by the first character they can start with (those without a `first` hint are in every list).
 */
const DISPATCH: Record<State, { byFirst: Map<string, Recogniser[]>; rest: Recogniser[] }> = (() => {
  const states: State[] = ['idle', 'record', 'hex', 'backtrace', 'dump'];
  const out = {} as Record<State, { byFirst: Map<string, Recogniser[]>; rest: Recogniser[] }>;
  for (const st of states) {
    const applicable = RECOGNISERS.filter((r) => !r.states || r.states.includes(st));
    const chars = new Set(applicable.flatMap((r) => (r.first ? [...r.first] : [])));
    const byFirst = new Map<string, Recogniser[]>();
    for (const ch of chars) byFirst.set(ch, applicable.filter((r) => !r.first || r.first.includes(ch)));
    out[st] = { byFirst, rest: applicable.filter((r) => !r.first) };
  }
  return out;
})();

export interface ParserOptions {
  /** Called for each completed record, in input order, with a record of its own. */
  onRecord?: (r: KmemleakRecord) => void;
  /**
   * Called for each completed record with the parser's reused scratch record (no allocation per
   * record; copy what you keep, call `frames()` only when you need frame objects).
   */
  onParsed?: (r: ParsedRecord) => void;
  /** Unparsed line samples kept (default 20). */
  maxSamples?: number;
  /** Table numbering the records' stacks (ParsedRecord.stackId()); share one across files. */
  stacks?: StackInterner;
  /**
   * Keep the frames' `[<pc>]` pointers in the records' stack text (default true). Off, a record
   * costs fewer bytes to copy, hash and compare, and frames() has pc: null (the analysis never
   * reads a frame's pointer: the record's format is taken while parsing).
   */
  stackPcs?: boolean;
  /**
   * Reuse the parse of a backtrace block seen before with the same bytes (default true; needs
   * `stacks`). Off only to check that it changes nothing.
   */
  blockMemo?: boolean;
}

// --- byte classes for the byte path ---------------------------------------------------------------

const C_HEX = 1;
const C_SYM = 2; // [A-Za-z0-9_.$]
const C_DIGIT = 4;
const C_PRINT = 8; // printable ASCII, space included
const C_MOD = 16; // [^\]\s] among printable ASCII
const C_UPPER = 32; // A-F (an address to lowercase)
const CLASS = new Uint8Array(256);
for (let c = 0x20; c < 0x7f; c++) CLASS[c] |= C_PRINT | (c !== 0x20 && c !== 0x5d ? C_MOD : 0);
for (let c = 48; c <= 57; c++) CLASS[c] |= C_HEX | C_SYM | C_DIGIT;
for (let c = 97; c <= 122; c++) CLASS[c] |= C_SYM | (c <= 102 ? C_HEX : 0);
for (let c = 65; c <= 90; c++) CLASS[c] |= C_SYM | (c <= 70 ? C_HEX | C_UPPER : 0);
CLASS[95] |= C_SYM;
/** Value of a hex digit byte. */
const HEX_VALUE = new Uint8Array(256);
for (let c = 0; c < 10; c++) HEX_VALUE[48 + c] = c;
for (let c = 0; c < 6; c++) { HEX_VALUE[97 + c] = 10 + c; HEX_VALUE[65 + c] = 10 + c; }
CLASS[46] |= C_SYM;
CLASS[36] |= C_SYM;

type FastBuffer = Buffer & { latin1Slice(start: number, end: number): string; utf8Slice(start: number, end: number): string };

/** A newline and a record header: where a backtrace block ends (kmemleak prints nothing between records). */
const NL_HEADER = Buffer.from('\nunreferenced object', 'latin1');
const NL_HEADER_BYTES = [...NL_HEADER];

/**
 * One memo of backtrace blocks per stack table and stackPcs setting (its facts hold the table's
 * stack ids, and the stack text depends on stackPcs), shared by every parser using them.
 */
const memos = new WeakMap<StackInterner, [BlockMemo | undefined, BlockMemo | undefined]>();
function memoFor(stacks: StackInterner, keepPcs: boolean): BlockMemo {
  let pair = memos.get(stacks);
  if (!pair) memos.set(stacks, (pair = [undefined, undefined]));
  const k = keepPcs ? 1 : 0;
  return (pair[k] ??= new BlockMemo());
}

const bytesOf = (s: string): number[] => [...s].map((ch) => ch.charCodeAt(0));
const LIT_HEADER = bytesOf('unreferenced object');
const LIT_PERCPU = bytesOf(' (percpu) 0x');
const LIT_PHYS = bytesOf(' (phys) 0x');
const LIT_SIZE = bytesOf(' (size ');
const LIT_COMM = bytesOf('comm "');
const LIT_HEX_HEADER = bytesOf('hex dump (first ');
const LIT_BYTES = bytesOf(' bytes');
const LIT_ON_CPU = bytesOf(' on cpu ');
const LIT_BACKTRACE = bytesOf('backtrace');
const LIT_CRC = bytesOf(' (crc ');
const LIT_TAG = bytesOf(KMEMLEAK_TAG);
const LIT_PTRVAL = bytesOf('ptrval');
const LIT_INLINE = bytesOf(' [inline]');
// Read backwards, from their last character (the comm line is parsed from its end).
const reversed = (s: string): number[] => bytesOf(s).reverse();
const LIT_JIFFIES_R = reversed(', jiffies ');
const LIT_PID_R = reversed('", pid ');
const LIT_AGE_R = reversed(' (age ');

/** b[i..] starts with `lit`. */
function at(b: Uint8Array, i: number, lit: readonly number[]): boolean {
  for (let k = 0; k < lit.length; k++) if (b[i + k] !== lit[k]) return false;
  return true;
}

/** b[..i] ends with the reversed literal `litR` (b[i] is its last character). */
function atBack(b: Uint8Array, i: number, litR: readonly number[], lo: number): boolean {
  if (i - litR.length + 1 < lo) return false;
  for (let k = 0; k < litR.length; k++) if (b[i - k] !== litR[k]) return false;
  return true;
}

/** The number a run of ASCII digits spells, exactly as Number() of its text. */
function digitsValue(b: Uint8Array, start: number, end: number): number {
  if (end - start > 15) return Number((b as FastBuffer).latin1Slice(start, end));
  let v = 0;
  for (let i = start; i < end; i++) v = v * 10 + (b[i] - 48);
  return v;
}

// Comm names repeat (a few hundred tasks make most records): a direct-mapped cache of their
// strings, so records of one task share one string (cheap to hash and count) and allocate nothing.
const COMM_SLOTS = 4096;
const commCache: Array<string | undefined> = new Array(COMM_SLOTS);

/** The latin1 string of b[s, e) (printable ASCII), from the cache when it holds it. */
function commString(b: Uint8Array, s: number, e: number): string {
  let h = e - s;
  for (let k = s; k < e; k++) h = Math.imul(h ^ b[k], 0x01000193);
  h = (h ^ (h >>> 15)) & (COMM_SLOTS - 1);
  const c = commCache[h];
  if (c !== undefined && c.length === e - s) {
    let k = 0;
    while (k < c.length && c.charCodeAt(k) === b[s + k]) k++;
    if (k === c.length) return c;
  }
  const str = (b as FastBuffer).latin1Slice(s, e);
  commCache[h] = str;
  return str;
}

const LIT_BUG = bytesOf('BUG: memory leak');

/** RE_OTHER_TOOL_HEADER's syzkaller branch: `[YYYY/MM/DD hh:mm:ss ]BUG: memory leak`, then blanks. */
function matchOtherToolHeader(b: Uint8Array, i: number, end: number): boolean {
  let j = i;
  if (b[j] !== 66) {
    // \d{4}/\d\d/\d\d \d\d:\d\d:\d\d and a space: digits at 0-3, 5-6, 8-9, 11-12, 14-15, 17-18
    for (let k = 0; k < 19; k++) {
      const c = b[j + k];
      const want = k === 4 || k === 7 ? 47 : k === 10 ? 32 : k === 13 || k === 16 ? 58 : -1;
      if (want < 0 ? !(CLASS[c] & C_DIGIT) : c !== want) return false;
    }
    if (b[j + 19] !== 32) return false;
    j += 20;
  }
  return at(b, j, LIT_BUG) && blankTo(b, j + LIT_BUG.length, end);
}

/** b[s, e) are all hex digits. */
function hexRun(b: Uint8Array, s: number, e: number): boolean {
  for (let k = s; k < e; k++) if (!(CLASS[b[k]] & C_HEX)) return false;
  return true;
}

/** The hex digits from s are exactly 8 or 16 f/F (TERMINATORS). */
function allFs(b: Uint8Array, s: number): boolean {
  let k = s;
  while ((b[k] | 0x20) === 102) k++;
  return (k - s === 8 || k - s === 16) && !(CLASS[b[k]] & C_HEX);
}

/** b[s, e) (no spaces) is RE_FRAME's `\S+:\d+`: printable, a `:` after one character at least, digits to the end. */
function isSourceToken(b: Uint8Array, s: number, e: number): boolean {
  let d = e;
  while (d > s && CLASS[b[d - 1]] & C_DIGIT) d--;
  if (d === e || d - 1 <= s || b[d - 1] !== 58 /* : */) return false;
  for (let k = s; k < d - 1; k++) if (!(CLASS[b[k]] & C_PRINT)) return false;
  return true;
}

/** Only spaces from i to end (the regexes' `\s*$` on printable ASCII). */
function blankTo(b: Uint8Array, i: number, end: number): boolean {
  while (i < end && b[i] === 32) i++;
  return i === end;
}

/**
 * Length of the dmesg prefix (DMESG_PREFIX) at b[s..end), for a line whose every byte is printable
 * ASCII, or -1 when a byte where the regex could go on is not (a tab or no-break space the string
 * path would turn into a space first): the caller leaves such lines to the string path.
 */
function dmesgPrefixLen(b: Uint8Array, s: number, end: number): number {
  let i = s;
  if (b[i] === 60 /* < */) {
    let j = i + 1;
    while (j < end && j - i <= 3 && CLASS[b[j]] & C_DIGIT) j++;
    if (j > i + 1 && b[j] === 62) i = j + 1;
  }
  for (let part = 0; part < 2; part++) {
    if (b[i] !== 91 /* [ */) break;
    let j = i + 1;
    while (b[j] === 32) j++;
    if (j < end && !(CLASS[b[j]] & C_PRINT)) return -1;
    if (part === 0) {
      const d = j;
      while (CLASS[b[j]] & C_DIGIT) j++;
      if (j === d || b[j] !== 46) { if (j < end && !(CLASS[b[j]] & C_PRINT)) return -1; continue; }
      const f = ++j;
      while (CLASS[b[j]] & C_DIGIT) j++;
      if (j === f || b[j] !== 93) { if (j < end && !(CLASS[b[j]] & C_PRINT)) return -1; continue; }
    } else {
      if (b[j] !== 84 && b[j] !== 67) break; // T or C
      const d = ++j;
      while (CLASS[b[j]] & C_DIGIT) j++;
      if (j === d || b[j] !== 93) { if (j < end && !(CLASS[b[j]] & C_PRINT)) return -1; break; }
    }
    i = j + 1;
    if (b[i] === 32) i++;
    else if (i < end && !(CLASS[b[i]] & C_PRINT)) return -1;
  }
  return i - s;
}

/**
 * Length of a /dev/kmsg prefix (KMSG_PREFIX, `6,2302,12345678,-;`) at b[s..end), 0 if none, -1 if
 * a byte in it is not printable ASCII (the string path decides those).
 */
function kmsgPrefixLen(b: Uint8Array, s: number, end: number): number {
  let j = s;
  for (let k = 0; k < 3; k++) {
    const d = j;
    while (CLASS[b[j]] & C_DIGIT) j++;
    if (j === d || b[j] !== 44 /* , */) return 0;
    j++;
  }
  while (j < end && b[j] !== 59 /* ; */) {
    if (!(CLASS[b[j]] & C_PRINT)) return -1;
    j++;
  }
  return j < end ? j + 1 - s : 0;
}

/** What matchHeader() found (module scratch: the byte path allocates nothing per line). */
const HEADER = { objectType: 'normal' as KmemleakRecord['objectType'], a0: 0, a1: 0, hi: 0, lo: 0, upper: false, d0: 0, d1: 0 };

/** RE_HEADER at b[i..end) (printable ASCII, no trailing CR); fills HEADER. */
function matchHeader(b: Uint8Array, i: number, end: number): boolean {
  if (!at(b, i, LIT_HEADER)) return false;
  let j = i + LIT_HEADER.length;
  let objectType: KmemleakRecord['objectType'] = 'normal';
  if (b[j] === 32 && b[j + 1] === 48 && b[j + 2] === 120) j += 3;
  else if (at(b, j, LIT_PERCPU)) { objectType = 'percpu'; j += LIT_PERCPU.length; }
  else if (at(b, j, LIT_PHYS)) { objectType = 'phys'; j += LIT_PHYS.length; }
  else return false;
  const a0 = j;
  let upper = 0;
  let hi = 0;
  let lo = 0;
  let cl: number;
  while ((cl = CLASS[b[j]]) & C_HEX) {
    upper |= cl;
    hi = ((hi << 4) | (lo >>> 28)) >>> 0;
    lo = ((lo << 4) | HEX_VALUE[b[j]]) >>> 0;
    j++;
  }
  if (j === a0 || !at(b, j, LIT_SIZE)) return false;
  const a1 = j;
  j += LIT_SIZE.length;
  const d0 = j;
  while (CLASS[b[j]] & C_DIGIT) j++;
  if (j === d0 || b[j] !== 41 /* ) */) return false;
  const d1 = j++;
  if (b[j] === 58 /* : */) j++;
  if (!blankTo(b, j, end)) return false;
  const h = HEADER;
  h.objectType = objectType; h.a0 = a0; h.a1 = a1; h.hi = hi; h.lo = lo; h.upper = (upper & C_UPPER) !== 0; h.d0 = d0; h.d1 = d1;
  return true;
}

/** describeFormat()'s reading of a bracketed pointer b[s..e) of hex digits (see pcKindOf). */
function pcKindOfBytes(b: Uint8Array, s: number, e: number): PcKind {
  let zeros = 0;
  while (s + zeros < e && b[s + zeros] === 48) zeros++;
  if (zeros === e - s) return PcKind.Zero;
  if (e - s === 16) return zeros >= 8 ? PcKind.Hashed : PcKind.Raw;
  const c = b[s] | 0x20;
  return c >= 99 && c <= 102 ? PcKind.Raw : PcKind.Hashed;
}

/** What matchFrame() found (module scratch). */
const FRAME = { s0: 0, pcKind: PcKind.Bare as PcKind };

/**
 * RE_FRAME_FAST / RE_FRAME (plain and bare-address shapes) at b[i..end): 0 no match, 1 the old
 * `0xffffffff` terminator, 2 a frame (its symbol or address starts at FRAME.s0, FRAME.pcKind).
 */
function matchFrame(b: Uint8Array, i: number, end: number): number {
  let j = i;
  let pcKind = PcKind.Bare;
  if (b[j] === 91 /* [ */) {
    if (b[j + 1] !== 60) return 0;
    j += 2;
    const p0 = j;
    if (b[j] === 40 /* ( */) {
      j++;
      while (b[j] === 95) j++;
      if (!at(b, j, LIT_PTRVAL)) return 0;
      j += LIT_PTRVAL.length;
      while (b[j] === 95) j++;
      if (b[j] !== 41) return 0;
      j++;
      pcKind = PcKind.Ptrval;
    } else {
      while (CLASS[b[j]] & C_HEX) j++;
      if (j === p0) return 0;
      pcKind = pcKindOfBytes(b, p0, j);
    }
    if (b[j] !== 62 || b[j + 1] !== 93 || b[j + 2] !== 32) return 0;
    j += 3;
    while (b[j] === 32) j++;
  }
  const s0 = j;
  while (CLASS[b[j]] & C_SYM) j++;
  if (j === s0) return 0;
  // Which RE_FRAME branch: `sym+0xOFF/0xSIZE [mod]`, a bare `0xADDR`, or (symbolized logs only)
  // a name followed by its source position.
  let bare = false;
  let needSource = false;
  if (b[j] === 43 /* + */) {
    if (b[j + 1] !== 48 || b[j + 2] !== 120) return 0;
    j += 3;
    let h = j;
    while (CLASS[b[j]] & C_HEX) j++;
    if (j === h || b[j] !== 47 || b[j + 1] !== 48 || b[j + 2] !== 120) return 0;
    j += 3;
    h = j;
    while (CLASS[b[j]] & C_HEX) j++;
    if (j === h) return 0;
    if (b[j] === 32 && b[j + 1] === 91) {
      const m0 = j + 2;
      let k = m0;
      while (CLASS[b[k]] & C_MOD) k++;
      if (k === m0 || b[k] !== 93) return 0;
      j = k + 1;
    }
  } else if (b[s0] === 48 && b[s0 + 1] === 120 && j - s0 > 2 && hexRun(b, s0 + 2, j)) {
    bare = true; // unresolved: the whole token is 0x + hex digits
  } else {
    needSource = true; // `name file:line`: RE_FRAME's last branch needs the position
  }
  // Then RE_FRAME's optional ` file:line` and ` [inline]` (symbolized logs), and blanks.
  if (b[j] === 32 && j + 1 < end && b[j + 1] !== 32) {
    let k = j + 1;
    while (k < end && b[k] !== 32) k++;
    if (isSourceToken(b, j + 1, k)) {
      j = k;
      needSource = false;
    }
  }
  if (needSource) return 0;
  if (b[j] === 32 && at(b, j, LIT_INLINE)) j += LIT_INLINE.length;
  if (!blankTo(b, j, end)) return 0;
  if (bare && allFs(b, s0 + 2)) return 1; // the old ULONG_MAX terminator, 8 or 16 f's
  FRAME.s0 = s0;
  FRAME.pcKind = pcKind;
  return 2;
}

const LIT_OBJECT = bytesOf('Object');
const LIT_DUMP_BODY = ['min_count = ', 'count = ', 'flags = 0x', 'checksum = ', 'excess_ref = ', 'comm "'].map(bytesOf);

/** RE_DUMP_HEADER at b[i..end): `Object[ (percpu)| (phys)] 0x<hex> (size <n>):` then blanks. */
function matchDumpHeader(b: Uint8Array, i: number, end: number): boolean {
  if (!at(b, i, LIT_OBJECT)) return false;
  let j = i + LIT_OBJECT.length;
  if (at(b, j, LIT_PERCPU)) j += LIT_PERCPU.length;
  else if (at(b, j, LIT_PHYS)) j += LIT_PHYS.length;
  else if (b[j] === 32 && b[j + 1] === 48 && b[j + 2] === 120) j += 3;
  else return false;
  const h = j;
  while (CLASS[b[j]] & C_HEX) j++;
  if (j === h || !at(b, j, LIT_SIZE)) return false;
  j += LIT_SIZE.length;
  const d = j;
  while (CLASS[b[j]] & C_DIGIT) j++;
  if (j === d || b[j] !== 41 || b[j + 1] !== 58) return false;
  return blankTo(b, j + 2, end);
}

/** RE_DUMP_BODY at b[i..end): a field line of a `dump=` object, or its `backtrace:`. */
function matchDumpBody(b: Uint8Array, i: number, end: number): boolean {
  for (const lit of LIT_DUMP_BODY) if (at(b, i, lit)) return true;
  return at(b, i, LIT_BACKTRACE) && b[i + LIT_BACKTRACE.length] === 58 && blankTo(b, i + LIT_BACKTRACE.length + 1, end);
}

/**
 * Push-style parser: feed lines with `line()` (text) or `lineBytes()` (bytes), finish with `end()`.
 * Holds one record at a time. Use `parseKmemleakStream` / `parseKmemleakText` / `kmemleakRecords`
 * for the common cases.
 *
 * Two ways in, one set of rules. `line()` runs the recogniser table (regexes). `lineBytes()` first
 * tries the byte path: the record lines kmemleak itself prints (header, comm, hex dump header and
 * rows, backtrace header, frames), recognised from their bytes with the same grammar as the
 * table's regexes, in the states where the table would pick that recogniser first, and only for
 * lines of printable ASCII (where the regexes' `\s` is a space and latin1 is UTF-8). Anything else
 * (other states, dmesg noise, tabs, non-ASCII, a malformed line) is decoded and goes to `line()`.
 * A hex row is consumed without making a string; a frame line is copied into the record's stack
 * text. kmemleak-bytes.test.ts checks both ways agree on mutated real captures.
 */
export class KmemleakParser implements ByteLineSink {
  readonly counters: ParserCounters = {
    lines: 0, bytes: 0, records: 0, truncatedRecords: 0, unparsedLines: 0, overlongLines: 0,
    ignoredLines: {}, unparsedSamples: [],
  };
  private state: State = 'idle';
  /** The record being read (valid while `open`). */
  private readonly rec = new ParsedRecord();
  private open = false;
  private lineNo = 0;
  private sawBacktrace = false;
  private readonly onRecord: ((r: KmemleakRecord) => void) | undefined;
  private readonly onParsed: ((r: ParsedRecord) => void) | undefined;
  private readonly maxSamples: number;

  // The backtrace block memo (block-memo.ts), used by the byte path when there is a stack table.
  private readonly stacks: StackInterner | null = null;
  private readonly memo: BlockMemo | null = null;
  /** The byte path just read a backtrace header: lineBytes() looks the block after it up. */
  private btHeaderSeen = false;
  /** End offset (in the current chunk) of a block being read line by line to be learnt, or -1. */
  private pendEnd = -1;
  /** lineNo, cleanFrames and counters.bytes where that block started. */
  private pendLine = 0;
  private pendFrames = 0;
  private pendBytes = 0;
  /** The memo's ticket for that block (see BlockMemo.insert). */
  private pendTicket = 0;
  /** Lines the byte path took as a frame or terminator (not an excess frame). */
  private cleanFrames = 0;
  /** Offset of the line being read by the byte path in its chunk; -1 on the string path. */
  private curLineStart = -1;
  /** Backtrace blocks taken from the memo. */
  replayedBlocks = 0;
  /** nextHeader()'s last search: in which chunk, from where, and what it found. */
  private headerChunk: Buffer | null = null;
  private headerFrom = 0;
  private headerAt = -1;

  constructor(opts: ParserOptions) {
    this.onRecord = opts.onRecord;
    this.onParsed = opts.onParsed;
    this.maxSamples = opts.maxSamples ?? MAX_SAMPLES;
    if (opts.stackPcs === false) this.rec.keepPcs = false;
    if (opts.stacks) {
      this.rec.stackTable = opts.stacks;
      this.stacks = opts.stacks;
      if (opts.blockMemo !== false) this.memo = memoFor(opts.stacks, this.rec.keepPcs);
    }
  }

  /** Feed one line (without its newline; a trailing CR is tolerated). */
  line(raw: string, overlong = false): void {
    this.curLineStart = -1;
    this.pendEnd = -1; // a line the byte path left alone: the block being learnt is not all frames
    this.lineNo++;
    this.counters.lines++;
    this.counters.bytes += raw.length + 1;
    if (overlong) this.counters.overlongLines++;
    let s = raw.charCodeAt(raw.length - 1) === 13 ? raw.slice(0, -1) : raw;
    // Copies pasted from web pages (the seed note) carry no-break spaces; tabs come from some consoles.
    if (s.indexOf('\u00a0') >= 0 || s.indexOf('\t') >= 0) s = s.replace(/[\u00a0\t]/g, ' ');

    // Strip a dmesg/kmsg prefix and the `kmemleak: ` tag. Frame lines start with `[<`: not a prefix.
    const ctx = this.ctx;
    ctx.dmesg = false;
    ctx.tagged = false;
    const c0 = s.charCodeAt(0);
    if (c0 === 60 /* < */ || (c0 === 91 /* [ */ && s.charCodeAt(1) !== 60) || (c0 >= 48 && c0 <= 57 && s.indexOf(';') > 0)) {
      const km = c0 >= 48 && c0 <= 57 ? KMSG_PREFIX.exec(s) : null;
      const pm = km ?? DMESG_PREFIX.exec(s);
      if (pm && pm[0].length > 0) {
        s = s.slice(pm[0].length);
        ctx.dmesg = true;
      }
    }
    let i = 0;
    while (s.charCodeAt(i) === 32) i++;
    if (s.startsWith(KMEMLEAK_TAG, i)) {
      i += KMEMLEAK_TAG.length;
      while (s.charCodeAt(i) === 32) i++;
      ctx.tagged = true;
    }
    ctx.text = s;
    ctx.start = i;
    if (this.dispatch(ctx)) return;
    // Nobody understood it. Inside a dump= block that just ends the block: try again as idle.
    if (this.state === 'dump') {
      this.state = 'idle';
      if (this.dispatch(ctx)) return;
    }
    this.counters.unparsedLines++;
    if (this.open) this.addIssue('garbage-inside');
    if (this.counters.unparsedSamples.length < this.maxSamples) {
      this.counters.unparsedSamples.push({ line: this.lineNo, text: raw.length > 200 ? raw.slice(0, 200) + '…' : raw });
    }
  }

  /**
   * Feed one line as bytes b[s, e): no newline, at most one trailing CR (the LineSplitter's
   * contract, see ByteLineSink: b[e] is not a printable character).
   */
  lineBytes(b: Buffer, s: number, e: number): number {
    const end = e > s && b[e - 1] === 13 ? e - 1 : e;
    this.curLineStart = s;
    const frames = this.cleanFrames;
    if (this.byteLine(b, s, end)) {
      this.lineNo++;
      this.counters.lines++;
      this.counters.bytes += e - s + 1;
      // Learning a block: every line up to its end must be a frame (else it is not learnt).
      if (this.pendEnd >= 0 && (s >= this.pendEnd || this.cleanFrames === frames)) this.pendEnd = -1;
      if (this.btHeaderSeen) {
        this.btHeaderSeen = false;
        return this.replayBlock(b, e);
      }
      return -1;
    }
    this.line((b as FastBuffer).utf8Slice(s, e), false);
    return -1;
  }

  /**
   * After a backtrace header ending at b[e]: the block of lines up to the next record header, if
   * it is in this chunk. Bytes seen before: take that parse's result and return the block's end
   * (the splitter goes on from there). Else remember where it ends, so that finish() can learn it
   * once the byte path has read every line of it as a frame; return -1.
   */
  private replayBlock(b: Buffer, e: number): number {
    let start: number;
    if (b[e] === 10) start = e + 1;
    else if (b[e] === 13 && b[e + 1] === 10) start = e + 2;
    else return -1;
    // The first header after the backtrace header, within a window (a block is at most
    // MAX_BLOCK_BYTES long).
    const from = start - 1;
    const header = this.nextHeader(b, from);
    if (header < 0 || header - from > MAX_BLOCK_BYTES) return -1;
    const nl = header - from;
    if (nl < 1) return -1;
    const end = from + nl + 1;
    const memo = this.memo!;
    const epoch = this.stacks!.epoch;
    if (memo.epoch !== epoch) { // the stack table started over: the memo's stack ids are stale
      memo.clear();
      memo.epoch = epoch;
    }
    const f = memo.find(b, start, end);
    if (f === null) {
      this.pendTicket = memo.ticket;
      this.pendEnd = end;
      this.pendLine = this.lineNo;
      this.pendFrames = this.cleanFrames;
      this.pendBytes = this.counters.bytes;
      return -1;
    }
    const r = this.rec;
    r.frameCount = f.frameCount;
    r.pcKind = f.pcKind;
    r.terminator = f.terminator;
    r.knownStackId = f.stackId;
    this.replayedBlocks++;
    this.lineNo += f.lines;
    this.counters.lines += f.lines;
    this.counters.bytes += f.bytes;
    return end;
  }

  /**
   * Offset of the first `\nunreferenced object` at or after `from` in b, or -1. One search per
   * chunk serves every record up to the header it found (a dmesg copy has no header at a line
   * start: a search per record would read the rest of the chunk each time). The cached answer
   * is used only while b is the same buffer and still holds the header there.
   */
  private nextHeader(b: Buffer, from: number): number {
    const h = this.headerAt;
    if (b !== this.headerChunk || from < this.headerFrom || (h >= 0 && (h < from || !at(b, h, NL_HEADER_BYTES)))) {
      this.headerChunk = b;
      this.headerFrom = from;
      this.headerAt = b.indexOf(NL_HEADER, from);
    }
    return this.headerAt;
  }

  /** At a record's end: learn the block being read if it was all frames and ended here. */
  private learnBlock(): void {
    const lines = this.lineNo - this.pendLine;
    if (this.open && this.curLineStart === this.pendEnd && this.cleanFrames - this.pendFrames === lines && this.stacks!.epoch === this.memo!.epoch) {
      const r = this.rec;
      this.memo!.insert({ stackId: r.stackId(), frameCount: r.frameCount, pcKind: r.pcKind, terminator: r.terminator, lines, bytes: this.counters.bytes - this.pendBytes }, this.pendTicket);
    }
    this.pendEnd = -1;
  }

  private readonly ctx: LineCtx = { text: '', start: 0, dmesg: false, tagged: false };

  private dispatch(ctx: LineCtx): boolean {
    const text = ctx.text;
    const table = DISPATCH[this.state];
    const list = table.byFirst.get(text.charAt(ctx.start)) ?? table.rest;
    for (let k = 0; k < list.length; k++) {
      const r = list[k];
      r.re.lastIndex = ctx.start;
      let m: RegExpExecArray | null = null;
      if (r.noMatch) {
        if (!r.re.test(text)) continue;
      } else if (!(m = r.re.exec(text))) continue;
      if (r.handle(this, m as RegExpExecArray, ctx) === false) continue;
      if (!r.record) this.counters.ignoredLines[r.name] = (this.counters.ignoredLines[r.name] ?? 0) + 1;
      return true;
    }
    return false;
  }

  /**
   * End of input. `lastLineUnterminated`: the input did not end with a newline, so the last
   * record may have been cut mid-line (a half-written file).
   */
  end(lastLineUnterminated = false): void {
    if (this.open && lastLineUnterminated) this.addIssue('eof-partial-line');
    this.finish();
  }

  // --- the byte path ---------------------------------------------------------------------------

  /** Handle a line of the byte path; false = leave it to line(). b[s, end) has no trailing CR. */
  private byteLine(b: Buffer, s: number, end: number): boolean {
    let i = s;
    let dmesg = false;
    const c0 = b[i];
    if (c0 === 91 /* [ */ ? b[i + 1] !== 60 : c0 === 60 /* < */) {
      const p = dmesgPrefixLen(b, i, end);
      if (p < 0) return false;
      if (p > 0) { i += p; dmesg = true; }
    } else if (c0 >= 48 && c0 <= 57) {
      const p = kmsgPrefixLen(b, i, end);
      if (p < 0) return false;
      if (p > 0) { i += p; dmesg = true; }
    }
    while (b[i] === 32) i++;
    let tagged = false;
    if (b[i] === 107 /* k */ && at(b, i, LIT_TAG)) {
      i += LIT_TAG.length;
      while (b[i] === 32) i++;
      tagged = true;
    }
    if (i >= end) { // only blanks left: the `blank` recogniser, whatever the state
      this.counters.ignoredLines.blank = (this.counters.ignoredLines.blank ?? 0) + 1;
      return true;
    }
    const c = b[i];
    // The same choice as dispatch(): the recogniser the table tries first for this state and first character.
    if (c === 117 && this.byteHeader(b, i, end, dmesg || tagged)) return true;
    if (this.state === 'dump') {
      // `dump=<addr>` output (RE_DUMP_HEADER, RE_DUMP_BODY, frames): not a leak record, counted.
      if ((c === 79 && matchDumpHeader(b, i, end)) || matchDumpBody(b, i, end) || matchFrame(b, i, end) !== 0) return this.ignoredDump();
    }
    switch (this.state) {
      case 'backtrace':
        if (this.byteFrame(b, i, end)) return true;
        break;
      case 'hex': {
        const r = this.byteHexRow(b, i, end);
        if (r !== 0) return r > 0;
        if (c === 98 /* b */) return this.byteBacktraceHeader(b, i, end);
        break;
      }
      case 'record':
        if (c === 99 /* c */) return this.byteComm(b, i, end);
        if (c === 104 /* h */) return this.byteHexHeader(b, i, end);
        if (c === 98 /* b */) return this.byteBacktraceHeader(b, i, end);
        break;
      default:
        break;
    }
    if (c === 79 /* O */ && this.state !== 'dump' && matchDumpHeader(b, i, end)) { // _startDump
      this.finish();
      this.state = 'dump';
      return this.ignoredDump();
    }
    // syzkaller's `BUG: memory leak` line between records: no record recogniser takes it in any
    // state, so the table's `other-tool-header` does.
    if ((c === 66 /* B */ || (c >= 48 && c <= 57)) && matchOtherToolHeader(b, i, end)) {
      this.counters.ignoredLines['other-tool-header'] = (this.counters.ignoredLines['other-tool-header'] ?? 0) + 1;
      return true;
    }
    return false;
  }

  private ignoredDump(): boolean {
    this.counters.ignoredLines['dump-object'] = (this.counters.ignoredLines['dump-object'] ?? 0) + 1;
    return true;
  }

  /** RE_HEADER → _startRecord. */
  private byteHeader(b: Buffer, i: number, end: number, fromDmesg: boolean): boolean {
    if (!matchHeader(b, i, end)) return false;
    const h = HEADER;
    this.finish();
    const r = this.rec;
    r.reset(this.lineNo + 1);
    if (h.a1 - h.a0 <= 16) {
      r.setAddressValue(h.hi, h.lo, h.a1 - h.a0);
    } else {
      const addr = (b as FastBuffer).latin1Slice(h.a0, h.a1);
      r.setAddress(h.upper ? addr.toLowerCase() : addr);
    }
    r.pointerBits = h.a1 - h.a0 <= 8 ? 32 : 64;
    r.objectType = h.objectType;
    r.size = digitsValue(b, h.d0, h.d1);
    r.fromDmesg = fromDmesg;
    this.open = true;
    this.state = 'record';
    return true;
  }

  /** RE_COMM → _comm, read from the end: `", pid P, jiffies J[ (age S.F s)]` then spaces. */
  private byteComm(b: Buffer, i: number, end: number): boolean {
    const r = this.rec;
    if (r.comm !== null || !at(b, i, LIT_COMM)) return false;
    const c0 = i + LIT_COMM.length;
    let j = end - 1;
    while (j >= c0 && b[j] === 32) j--;
    let ageMs: number | null = null;
    if (b[j] === 41 /* ) */) {
      if (b[--j] !== 115 /* s */) return false;
      const f1 = j;
      j--;
      while (j >= c0 && CLASS[b[j]] & C_DIGIT) j--;
      const f0 = j + 1;
      if (f0 === f1 || b[j] !== 46 /* . */) return false;
      const s1 = j;
      j--;
      while (j >= c0 && CLASS[b[j]] & C_DIGIT) j--;
      const s0 = j + 1;
      if (s0 === s1 || !atBack(b, j, LIT_AGE_R, c0)) return false;
      j -= LIT_AGE_R.length;
      // Milliseconds: the first three fraction digits, padded with zeros (as padEnd(3, '0').slice(0, 3)).
      const n = f1 - f0;
      const ms = (b[f0] - 48) * 100 + (n > 1 ? (b[f0 + 1] - 48) * 10 : 0) + (n > 2 ? b[f0 + 2] - 48 : 0);
      ageMs = digitsValue(b, s0, s1) * 1000 + ms;
    }
    const j1 = j + 1;
    while (j >= c0 && CLASS[b[j]] & C_DIGIT) j--;
    const j0 = j + 1;
    if (j0 === j1 || !atBack(b, j, LIT_JIFFIES_R, c0)) return false;
    j -= LIT_JIFFIES_R.length;
    const p1 = j + 1;
    while (j >= c0 && CLASS[b[j]] & C_DIGIT) j--;
    const p0 = j + 1;
    if (p0 === p1) return false;
    const neg = b[j] === 45; /* - */
    if (neg) j--;
    if (!atBack(b, j, LIT_PID_R, c0)) return false;
    const cEnd = j - LIT_PID_R.length + 1; // the closing quote
    for (let k = c0; k < cEnd; k++) if (!(CLASS[b[k]] & C_PRINT)) return false; // `.` never spans a CR; UTF-8 goes the string way
    r.comm = commString(b, c0, cEnd - c0 > 64 ? c0 + 64 : cEnd);
    const pid = digitsValue(b, p0, p1);
    r.pid = neg ? -pid : pid;
    const jf = digitsValue(b, j0, j1);
    r.jiffies = Number.isSafeInteger(jf) ? jf : null;
    if (ageMs !== null) r.ageMs = ageMs;
    return true;
  }

  /** RE_HEX_HEADER → _hexHeader. */
  private byteHexHeader(b: Buffer, i: number, end: number): boolean {
    const r = this.rec;
    if (r.hexLength !== null || !at(b, i, LIT_HEX_HEADER)) return false;
    let j = i + LIT_HEX_HEADER.length;
    const n0 = j;
    while (CLASS[b[j]] & C_DIGIT) j++;
    if (j === n0 || !at(b, j, LIT_BYTES)) return false;
    const n1 = j;
    j += LIT_BYTES.length;
    let cpu: number | null = null;
    if (b[j] === 32) {
      if (!at(b, j, LIT_ON_CPU)) return false;
      j += LIT_ON_CPU.length;
      const k0 = j;
      while (CLASS[b[j]] & C_DIGIT) j++;
      if (j === k0) return false;
      cpu = digitsValue(b, k0, j);
    }
    if (b[j] !== 41 || b[j + 1] !== 58 || !blankTo(b, j + 2, end)) return false;
    r.hexLength = digitsValue(b, n0, n1);
    r.hexCpu = cpu;
    r.hexChars = 0;
    this.state = 'hex';
    return true;
  }

  /**
   * RE_HEX_LINE → _hexLine. 1 = consumed, -1 = a hex row _hexLine refuses (string path),
   * 0 = not a hex row.
   */
  private byteHexRow(b: Buffer, i: number, end: number): number {
    if (!(CLASS[b[i]] & C_HEX && CLASS[b[i + 1]] & C_HEX)) return 0;
    // The digits are copied while the row is checked, past the record's hexChars: they count only
    // if the row is taken. `| 0x20` lowercases A-F and leaves 0-9 and a-f as they are.
    const r = this.rec;
    const hb = r.hexBuf;
    const n0 = r.hexChars;
    let n = n0;
    if (n < MAX_HEX_CHARS) { hb[n] = b[i] | 0x20; hb[n + 1] = b[i + 1] | 0x20; n += 2; }
    let j = i + 2;
    let pairs = 1;
    while (b[j] === 32 && CLASS[b[j + 1]] & C_HEX && CLASS[b[j + 2]] & C_HEX) {
      if (++pairs > 32) return -1;
      if (n < MAX_HEX_CHARS) { hb[n] = b[j + 1] | 0x20; hb[n + 1] = b[j + 2] | 0x20; n += 2; }
      j += 3;
    }
    if (j < end) {
      if (b[j] !== 32 || b[j + 1] !== 32) return 0;
      for (let k = j + 2; k < end; k++) if (!(CLASS[b[k]] & C_PRINT)) return -1;
    }
    const want = (r.hexLength ?? 32) * 2;
    if (n0 >= want || n0 >= MAX_HEX_CHARS) return -1; // more rows than announced: not hex
    r.hexChars = n;
    return 1;
  }

  /** RE_BT_HEADER → _btHeader (record and hex states). */
  private byteBacktraceHeader(b: Buffer, i: number, end: number): boolean {
    if (!at(b, i, LIT_BACKTRACE)) return false;
    let j = i + LIT_BACKTRACE.length;
    let crc: string | null = null;
    if (b[j] === 32) {
      if (!at(b, j, LIT_CRC)) return false;
      j += LIT_CRC.length;
      const h0 = j;
      let upper = 0;
      let cl: number;
      while ((cl = CLASS[b[j]]) & C_HEX) { upper |= cl; j++; }
      if (j === h0 || b[j] !== 41) return false;
      const t = (b as FastBuffer).latin1Slice(h0, j);
      crc = upper & C_UPPER ? t.toLowerCase() : t;
      j++;
    }
    if (b[j] !== 58 || !blankTo(b, j + 1, end)) return false;
    this.rec.crc = crc;
    this.state = 'backtrace';
    this.sawBacktrace = true;
    // A block is replayed (or learnt) only into a record with no frames yet: the memo's facts are
    // what a block gives from there (a garbled record can reach a second backtrace header).
    if (this.memo !== null && this.rec.frameCount === 0 && !this.rec.terminator) this.btHeaderSeen = true;
    return true;
  }

  /** RE_FRAME_FAST / RE_FRAME (plain and bare-address shapes) → _frame. */
  private byteFrame(b: Buffer, i: number, end: number): boolean {
    const m = matchFrame(b, i, end);
    if (m === 0) return false;
    const r = this.rec;
    if (m === 1) {
      r.terminator = true;
      this.cleanFrames++;
      return true;
    }
    if (r.frameCount >= MAX_FRAMES) {
      this.addIssue('excess-frames');
      return true;
    }
    r.addFrameBytes(b, r.keepPcs ? i : FRAME.s0, end, FRAME.pcKind);
    this.cleanFrames++;
    return true;
  }

  // --- handlers (called from the table; public for the table only) ------------------------------

  _startRecord(m: RegExpExecArray, ctx: LineCtx): boolean {
    this.finish();
    const r = this.rec;
    r.reset(this.lineNo);
    const address = m[2].toLowerCase();
    r.setAddress(address);
    r.pointerBits = address.length <= 8 ? 32 : 64;
    r.objectType = m[1] === 'percpu' ? 'percpu' : m[1] === 'phys' ? 'phys' : 'normal';
    r.size = Number(m[3]);
    r.fromDmesg = ctx.dmesg || ctx.tagged;
    this.open = true;
    this.state = 'record';
    return true;
  }

  _comm(m: RegExpExecArray): boolean {
    const r = this.rec;
    if (r.comm !== null) return false;
    r.comm = m[1].length > 64 ? m[1].slice(0, 64) : m[1];
    r.pid = Number(m[2]);
    const j = Number(m[3]);
    r.jiffies = Number.isSafeInteger(j) ? j : null;
    if (m[4] !== undefined) r.ageMs = Number(m[4]) * 1000 + Number(m[5].padEnd(3, '0').slice(0, 3));
    return true;
  }

  _hexHeader(m: RegExpExecArray): boolean {
    const r = this.rec;
    if (r.hexLength !== null) return false;
    r.hexLength = Number(m[1]);
    r.hexCpu = m[2] === undefined ? null : Number(m[2]);
    r.hexChars = 0;
    this.state = 'hex';
    return true;
  }

  _hexLine(m: RegExpExecArray): boolean {
    const r = this.rec;
    const want = (r.hexLength ?? 32) * 2;
    let n = r.hexChars;
    if (n >= want || n >= MAX_HEX_CHARS) return false; // more rows than announced: not hex
    const digits = m[1];
    const hb = r.hexBuf;
    for (let k = 0; k < digits.length && n < MAX_HEX_CHARS; k++) {
      const c = digits.charCodeAt(k);
      if (c !== 32) hb[n++] = c >= 65 && c <= 70 ? c + 32 : c;
    }
    r.hexChars = n;
    return true;
  }

  _btHeader(m: RegExpExecArray): boolean {
    const r = this.rec;
    if (this.state === 'backtrace') return false;
    r.crc = m[1] === undefined ? null : m[1].toLowerCase();
    this.state = 'backtrace';
    this.sawBacktrace = true;
    return true;
  }

  _frame(m: RegExpExecArray, ctx: LineCtx): boolean {
    const r = this.rec;
    const bare = m[6];
    if (bare !== undefined && TERMINATORS.has(bare.toLowerCase())) {
      r.terminator = true;
      return true;
    }
    if (r.frameCount >= MAX_FRAMES) {
      this.addIssue('excess-frames');
      return true;
    }
    let from = ctx.start;
    if (!r.keepPcs && m[1] !== undefined) {
      // Past `[<pc>]` and the blanks RE_FRAME's `\s+` took (the symbol or address starts after them).
      RE_BLANKS.lastIndex = from + 2 + m[1].length + 2;
      RE_BLANKS.exec(ctx.text);
      from = RE_BLANKS.lastIndex;
    }
    r.addFrameText(from === 0 ? ctx.text : ctx.text.slice(from), m[1] ?? null);
    return true;
  }

  _startDump(): boolean {
    this.finish();
    this.state = 'dump';
    return true;
  }

  // --- internals ----------------------------------------------------------------------------

  private addIssue(issue: string): void {
    const r = this.rec;
    if (this.open && !r.issues.includes(issue)) r.issues.push(issue);
  }

  private finish(): void {
    if (this.pendEnd >= 0) this.learnBlock();
    this.state = 'idle';
    if (!this.open) return;
    this.open = false;
    const r = this.rec;
    const sawBt = this.sawBacktrace;
    this.sawBacktrace = false;
    if (r.comm === null) r.issues.push('no-comm');
    if (!sawBt) r.issues.push('no-backtrace');
    else if (r.frameCount === 0) r.issues.push('no-frames');
    if (r.hexLength !== null && r.hexChars < Math.min(r.hexLength * 2, MAX_HEX_CHARS)) r.issues.push('hex-short');
    let truncated = false;
    for (const i of r.issues) if (i === 'no-comm' || i === 'no-backtrace' || i === 'no-frames' || i === 'eof-partial-line') truncated = true;
    r.truncated = truncated;
    r.setFormat();
    this.counters.records++;
    if (truncated) this.counters.truncatedRecords++;
    if (this.onParsed) this.onParsed(r);
    if (this.onRecord) this.onRecord(r.toRecord());
  }
}

/** `<frames>/<comm line>[+terminator]`, see RecordFormat. */
export function describeFormat(r: KmemleakRecord): string {
  let frames = 'none';
  for (const f of r.frames) {
    if (f.pc === null) { frames = 'bare'; break; }
    if (f.pc.startsWith('(')) { frames = 'bracket-ptrval'; break; }
    if (/^0+$/.test(f.pc)) { frames = 'bracket-zero'; break; }
    // 64-bit hashed pointers print as 8 zeros + 8 hex digits; raw kernel pointers start with f/c.
    if (f.pc.length === 16) { frames = f.pc.startsWith('00000000') ? 'bracket-hashed' : 'bracket-raw'; break; }
    frames = /^[c-f]/i.test(f.pc) ? 'bracket-raw' : 'bracket-hashed'; // 32-bit: a guess (hash and raw look alike)
    break;
  }
  const comm = r.ageMs !== null ? 'age' : r.crc !== null ? 'crc' : 'plain';
  return `${frames}/${comm}${r.terminator ? '+terminator' : ''}`;
}

// --- convenience entry points ----------------------------------------------------------------------

export interface ParseResult {
  records: KmemleakRecord[];
  counters: ParserCounters;
}

/** Parse a whole text held in memory (tests, small inputs). */
export function parseKmemleakText(text: string): ParseResult {
  const records: KmemleakRecord[] = [];
  const p = new KmemleakParser({ onRecord: (r) => records.push(r) });
  const lines = text.split('\n');
  const unterminated = lines.length > 0 && lines[lines.length - 1] !== '';
  if (!unterminated) lines.pop();
  for (const l of lines) {
    if (l.length > DEFAULT_MAX_LINE) p.line(l.slice(0, DEFAULT_MAX_LINE), true);
    else p.line(l);
  }
  p.end(unterminated && text.length > 0);
  return { records, counters: p.counters };
}

/**
 * Parse a stream (a Node Readable, or any async iterable of Buffer/string chunks) line by line,
 * calling `onRecord` for each record. Memory: one line and one record at a time.
 */
export async function parseKmemleakStream(
  source: ChunkSource,
  onRecord: (r: KmemleakRecord) => void,
  opts: { maxLine?: number; maxSamples?: number } = {},
): Promise<ParserCounters> {
  const p = new KmemleakParser({ onRecord, maxSamples: opts.maxSamples });
  const splitter = await forEachLine(source, p, opts.maxLine);
  p.end(splitter.lastLineUnterminated);
  p.counters.bytes = splitter.bytes;
  return p.counters;
}

/** Records from an (async) iterable of LINES (no newlines inside), as an async generator. */
export async function* kmemleakRecords(lines: AsyncIterable<string> | Iterable<string>): AsyncGenerator<KmemleakRecord, ParserCounters> {
  const pending: KmemleakRecord[] = [];
  const p = new KmemleakParser({ onRecord: (r) => pending.push(r) });
  for await (const l of lines as AsyncIterable<string>) {
    if (l.length > DEFAULT_MAX_LINE) p.line(l.slice(0, DEFAULT_MAX_LINE), true);
    else p.line(l);
    while (pending.length) yield pending.shift()!;
  }
  p.end();
  while (pending.length) yield pending.shift()!;
  return p.counters;
}
