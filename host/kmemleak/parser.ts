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
import type { KmemleakFrame, KmemleakRecord, ParserCounters } from './types.js';
import { forEachLine, type ChunkSource, DEFAULT_MAX_LINE } from './lines.js';

type State = 'idle' | 'record' | 'hex' | 'backtrace' | 'dump';

/** Frames kept per record; kmemleak prints at most 16 (MAX_TRACE), so more means garbage. */
const MAX_FRAMES = 64;
/** Hex bytes kept per record (kmemleak prints at most 32). */
const MAX_HEX_CHARS = 128;
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
// A frame: optional `[<pc>] `, then `sym+0xOFF/0xSIZE [mod]`, or a bare `0xADDR`, or a symbolized
// inline frame `sym file:line [inline]`; optional `file:line` and `[inline]` after (symbolized logs).
const RE_FRAME =
  /(?:\[<([0-9a-fA-F]+|\(_*ptrval_*\))>\]\s+)?(?:([A-Za-z0-9_.$]+)\+0x([0-9a-fA-F]+)\/0x([0-9a-fA-F]+)(?: \[([^\]\s]+)\])?|0x([0-9a-fA-F]+)|([A-Za-z0-9_.$]+)(?= \S+:\d+))(?: (\S+:\d+))?( \[inline\])?\s*$/y;
// The common frame shape, tried first (same group numbers as RE_FRAME for 1..5).
const RE_FRAME_FAST = /(?:\[<([0-9a-fA-F]+|\(_*ptrval_*\))>\]\s+)?([A-Za-z0-9_.$]+)\+0x([0-9a-fA-F]+)\/0x([0-9a-fA-F]+)(?: \[([^\]\s]+)\])?\s*$/y;
const RE_DUMP_BODY = /(?:min_count = |count = |flags = 0x|checksum = |excess_ref = |backtrace:\s*$|comm ")/y;
const RE_KMEMLEAK_MESSAGE =
  /(?:\d+ new suspected memory leaks|Kernel memory leak detector|Automatic memory scanning thread|Kmemleak |Early log|Memory pool empty|Cannot |Found object by alias|Trying to color|Unknown object|Not scanning|Adding scan area|Setting excess_ref|Scan area larger|Object |kmalloc\(|vmalloc\(|kzalloc\()/y;
const RE_CAPTURE_MARKER = /(?:\[section rc=-?\d+\]|rc=-?\d+|#{2,3} .*)\s*$/y;
const RE_OTHER_TOOL_HEADER = /(?:(?:\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d )?BUG: memory leak|kmemleaks found (?:before|after) running.*)\s*$/y;

const TERMINATORS = new Set(['ffffffff', 'ffffffffffffffff']);

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
  /** Return false to decline (the next recogniser is tried). */
  handle: (p: KmemleakParser, m: RegExpExecArray, ctx: LineCtx) => boolean | void;
}

const IN_RECORD: readonly State[] = ['record', 'hex', 'backtrace'];

export const RECOGNISERS: readonly Recogniser[] = [
  { name: 'header', record: true, first: 'u', re: RE_HEADER, handle: (p, m, c) => p._startRecord(m, c) },
  { name: 'frame', record: true, states: ['backtrace'], re: RE_FRAME_FAST, handle: (p, m) => p._frame(m) },
  { name: 'frame', record: true, states: ['backtrace'], re: RE_FRAME, handle: (p, m) => p._frame(m) },
  { name: 'hex-line', record: true, states: ['hex'], re: RE_HEX_LINE, handle: (p, m) => p._hexLine(m) },
  { name: 'comm', record: true, states: ['record'], first: 'c', re: RE_COMM, handle: (p, m) => p._comm(m) },
  { name: 'hex-header', record: true, states: IN_RECORD, first: 'h', re: RE_HEX_HEADER, handle: (p, m) => p._hexHeader(m) },
  { name: 'backtrace-header', record: true, states: IN_RECORD, first: 'b', re: RE_BT_HEADER, handle: (p, m) => p._btHeader(m) },
  // `dump=<addr>` output in dmesg (not a leak report): swallow it until something else appears.
  { name: 'dump-object', first: 'O', re: RE_DUMP_HEADER, handle: (p) => p._startDump() },
  { name: 'dump-object', states: ['dump'], re: RE_DUMP_BODY, handle: () => true },
  { name: 'dump-object', states: ['dump'], re: RE_FRAME_FAST, handle: () => true },
  { name: 'dump-object', states: ['dump'], re: RE_FRAME, handle: () => true },
  { name: 'blank', re: /\s*$/y, handle: () => true },
  { name: 'kmemleak-message', re: RE_KMEMLEAK_MESSAGE, handle: (_p, _m, c) => c.tagged || c.dmesg },
  { name: 'other-tool-header', re: RE_OTHER_TOOL_HEADER, handle: () => true },
  { name: 'capture-marker', first: '[r#', re: RE_CAPTURE_MARKER, handle: () => true },
  // A dmesg line from another subsystem (timestamped, no kmemleak tag): skip it, keep the record open.
  { name: 'dmesg-other', re: /(?:)/y, handle: (_p, _m, c) => c.dmesg && !c.tagged },
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
  /** Called for each completed record, in input order. */
  onRecord: (r: KmemleakRecord) => void;
  /** Unparsed line samples kept (default 20). */
  maxSamples?: number;
}

/**
 * Push-style parser: feed lines with `line()`, finish with `end()`. Holds one record at a time.
 * Use `parseKmemleakStream` / `parseKmemleakText` / `kmemleakRecords` for the common cases.
 */
export class KmemleakParser {
  readonly counters: ParserCounters = {
    lines: 0, bytes: 0, records: 0, truncatedRecords: 0, unparsedLines: 0, overlongLines: 0,
    ignoredLines: {}, unparsedSamples: [],
  };
  private state: State = 'idle';
  private cur: KmemleakRecord | null = null;
  private lineNo = 0;
  private sawBacktrace = false;
  private readonly onRecord: (r: KmemleakRecord) => void;
  private readonly maxSamples: number;

  constructor(opts: ParserOptions) {
    this.onRecord = opts.onRecord;
    this.maxSamples = opts.maxSamples ?? MAX_SAMPLES;
  }

  /** Feed one line (without its newline; a trailing CR is tolerated). */
  line(raw: string, overlong = false): void {
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
    if (this.cur) this.addIssue('garbage-inside');
    if (this.counters.unparsedSamples.length < this.maxSamples) {
      this.counters.unparsedSamples.push({ line: this.lineNo, text: raw.length > 200 ? raw.slice(0, 200) + '…' : raw });
    }
  }

  private readonly ctx: LineCtx = { text: '', start: 0, dmesg: false, tagged: false };

  private dispatch(ctx: LineCtx): boolean {
    const text = ctx.text;
    const table = DISPATCH[this.state];
    const list = table.byFirst.get(text.charAt(ctx.start)) ?? table.rest;
    for (let k = 0; k < list.length; k++) {
      const r = list[k];
      r.re.lastIndex = ctx.start;
      const m = r.re.exec(text);
      if (!m) continue;
      if (r.handle(this, m, ctx) === false) continue;
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
    if (this.cur && lastLineUnterminated) this.addIssue('eof-partial-line');
    this.finish();
  }

  // --- handlers (called from the table; public for the table only) ------------------------------

  _startRecord(m: RegExpExecArray, ctx: LineCtx): boolean {
    this.finish();
    const address = m[2].toLowerCase();
    this.cur = {
      address,
      pointerBits: address.length <= 8 ? 32 : 64,
      objectType: m[1] === 'percpu' ? 'percpu' : m[1] === 'phys' ? 'phys' : 'normal',
      size: Number(m[3]),
      comm: null, pid: null, jiffies: null, ageMs: null,
      hexLength: null, hexCpu: null, hex: null, crc: null,
      frames: [], terminator: false, format: '', issues: [], truncated: false,
      line: this.lineNo, fromDmesg: ctx.dmesg || ctx.tagged,
    };
    this.state = 'record';
    return true;
  }

  _comm(m: RegExpExecArray): boolean {
    const r = this.cur!;
    if (r.comm !== null) return false;
    r.comm = m[1].length > 64 ? m[1].slice(0, 64) : m[1];
    r.pid = Number(m[2]);
    const j = Number(m[3]);
    r.jiffies = Number.isSafeInteger(j) ? j : null;
    if (m[4] !== undefined) r.ageMs = Number(m[4]) * 1000 + Number(m[5].padEnd(3, '0').slice(0, 3));
    return true;
  }

  _hexHeader(m: RegExpExecArray): boolean {
    const r = this.cur!;
    if (r.hexLength !== null) return false;
    r.hexLength = Number(m[1]);
    r.hexCpu = m[2] === undefined ? null : Number(m[2]);
    r.hex = '';
    this.state = 'hex';
    return true;
  }

  _hexLine(m: RegExpExecArray): boolean {
    const r = this.cur!;
    const want = (r.hexLength ?? 32) * 2;
    if (r.hex!.length >= want || r.hex!.length >= MAX_HEX_CHARS) return false; // more rows than announced: not hex
    r.hex += m[1].replaceAll(' ', '').toLowerCase();
    if (r.hex!.length > MAX_HEX_CHARS) r.hex = r.hex!.slice(0, MAX_HEX_CHARS);
    return true;
  }

  _btHeader(m: RegExpExecArray): boolean {
    const r = this.cur!;
    if (this.state === 'backtrace') return false;
    r.crc = m[1] === undefined ? null : m[1].toLowerCase();
    this.state = 'backtrace';
    this.sawBacktrace = true;
    return true;
  }

  _frame(m: RegExpExecArray): boolean {
    const r = this.cur!;
    const bare = m[6];
    if (bare !== undefined && TERMINATORS.has(bare.toLowerCase())) {
      r.terminator = true;
      return true;
    }
    if (r.frames.length >= MAX_FRAMES) {
      this.addIssue('excess-frames');
      return true;
    }
    const symbol = m[2] ?? m[7] ?? null;
    r.frames.push({
      pc: m[1] ?? null,
      symbol,
      offset: m[3] === undefined ? null : parseInt(m[3], 16),
      size: m[4] === undefined ? null : parseInt(m[4], 16),
      module: m[5] ?? null,
      address: bare === undefined ? null : bare.toLowerCase(),
      source: m[8] ?? null,
      inline: m[9] !== undefined,
    });
    return true;
  }

  _startDump(): boolean {
    this.finish();
    this.state = 'dump';
    return true;
  }

  // --- internals ----------------------------------------------------------------------------

  private addIssue(issue: string): void {
    const r = this.cur;
    if (r && !r.issues.includes(issue)) r.issues.push(issue);
  }

  private finish(): void {
    const r = this.cur;
    this.state = 'idle';
    if (!r) return;
    this.cur = null;
    const sawBt = this.sawBacktrace;
    this.sawBacktrace = false;
    if (r.comm === null) r.issues.push('no-comm');
    if (!sawBt) r.issues.push('no-backtrace');
    else if (r.frames.length === 0) r.issues.push('no-frames');
    if (r.hexLength !== null && r.hex !== null && r.hex.length < Math.min(r.hexLength * 2, MAX_HEX_CHARS)) r.issues.push('hex-short');
    r.truncated = r.issues.some((i) => i === 'no-comm' || i === 'no-backtrace' || i === 'no-frames' || i === 'eof-partial-line');
    r.format = describeFormat(r);
    this.counters.records++;
    if (r.truncated) this.counters.truncatedRecords++;
    this.onRecord(r);
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
  const splitter = await forEachLine(source, (line, overlong) => p.line(line, overlong), opts.maxLine);
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
