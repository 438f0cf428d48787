// The record the parser fills while it reads: one reusable scratch object per parser, with the
// backtrace kept as its printed text (one line per frame) instead of frame objects.
//
// Why: frames are needed only to compute a stack's identity (once per distinct stack) and for a
// group's sample (once per group), while a run holds hundreds of thousands of records. The
// printed text of the frames is also the natural cache key for the identity. `frames()` turns the
// text back into KmemleakFrame objects by running the same frame regexes the parser recognised
// the lines with, on the same text, so the result is what parsing each frame eagerly gave.
import type { KmemleakFrame, KmemleakRecord } from './types.js';
import { StackInterner } from './stack-table.js';

// A frame: optional `[<pc>] `, then `sym+0xOFF/0xSIZE [mod]`, or a bare `0xADDR`, or a symbolized
// inline frame `sym file:line [inline]`; optional `file:line` and `[inline]` after (symbolized logs).
export const RE_FRAME =
  /(?:\[<([0-9a-fA-F]+|\(_*ptrval_*\))>\]\s+)?(?:([A-Za-z0-9_.$]+)\+0x([0-9a-fA-F]+)\/0x([0-9a-fA-F]+)(?: \[([^\]\s]+)\])?|0x([0-9a-fA-F]+)|([A-Za-z0-9_.$]+)(?= \S+:\d+))(?: (\S+:\d+))?( \[inline\])?\s*$/y;
// The common frame shape, tried first (same group numbers as RE_FRAME for 1..5).
export const RE_FRAME_FAST = /(?:\[<([0-9a-fA-F]+|\(_*ptrval_*\))>\]\s+)?([A-Za-z0-9_.$]+)\+0x([0-9a-fA-F]+)\/0x([0-9a-fA-F]+)(?: \[([^\]\s]+)\])?\s*$/y;

/** Frames kept per record; kmemleak prints at most 16 (MAX_TRACE), so more means garbage. */
export const MAX_FRAMES = 64;
/** Hex characters kept per record (kmemleak prints at most 32 bytes). */
export const MAX_HEX_CHARS = 128;

/** The frame part of RecordFormat, by the first frame's bracketed pointer (see describeFormat). */
export const enum PcKind { None = 0, Bare, Ptrval, Zero, Hashed, Raw }
const PC_KIND_NAMES = ['none', 'bare', 'bracket-ptrval', 'bracket-zero', 'bracket-hashed', 'bracket-raw'];
const COMM_KIND_NAMES = ['plain', 'age', 'crc'];
/** Every RecordFormat string, made once: [pcKind][commKind][terminator]. */
const FORMATS: string[][][] = PC_KIND_NAMES.map((f) => COMM_KIND_NAMES.map((c) => [`${f}/${c}`, `${f}/${c}+terminator`]));
/** Every RecordFormat string by ParsedRecord.formatIndex. */
export const FORMAT_NAMES: readonly string[] = FORMATS.flat(2);

/** describeFormat()'s reading of a bracketed pointer's text. */
export function pcKindOf(pc: string | null): PcKind {
  if (pc === null) return PcKind.Bare;
  if (pc.startsWith('(')) return PcKind.Ptrval;
  if (/^0+$/.test(pc)) return PcKind.Zero;
  // 64-bit hashed pointers print as 8 zeros + 8 hex digits; raw kernel pointers start with f/c.
  if (pc.length === 16) return pc.startsWith('00000000') ? PcKind.Hashed : PcKind.Raw;
  return /^[c-f]/i.test(pc) ? PcKind.Raw : PcKind.Hashed; // 32-bit: a guess (hash and raw look alike)
}

/** A frame from a regex match of RE_FRAME_FAST / RE_FRAME (the parser's frame handler). */
function frameOf(m: RegExpExecArray): KmemleakFrame {
  const bare = m[6];
  return {
    pc: m[1] ?? null,
    symbol: m[2] ?? m[7] ?? null,
    offset: m[3] === undefined ? null : parseInt(m[3], 16),
    size: m[4] === undefined ? null : parseInt(m[4], 16),
    module: m[5] ?? null,
    address: bare === undefined ? null : bare.toLowerCase(),
    source: m[8] ?? null,
    inline: m[9] !== undefined,
  };
}

// Own copies (sticky regexes carry lastIndex state; the parser's table uses the exported ones).
const RE_FRAME_FAST_M = new RegExp(RE_FRAME_FAST.source, 'y');
const RE_FRAME_M = new RegExp(RE_FRAME.source, 'y');

/** Match one frame line's text (from its first non-blank character) the way the parser does. */
export function matchFrame(text: string, from = 0): RegExpExecArray | null {
  RE_FRAME_FAST_M.lastIndex = from;
  const m = RE_FRAME_FAST_M.exec(text);
  if (m) return m;
  RE_FRAME_M.lastIndex = from;
  return RE_FRAME_M.exec(text);
}

/** Frames from a stack text (frame lines joined by '\n'), as the parser's frame handler made them. */
export function framesOfStackText(text: string): KmemleakFrame[] {
  if (text === '') return [];
  const out: KmemleakFrame[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    const line = nl < 0 ? text.slice(start) : text.slice(start, nl);
    const m = matchFrame(line);
    if (m) out.push(frameOf(m)); // always matches: only matched lines are stored
    if (nl < 0) return out;
    start = nl + 1;
  }
}

type FastBuffer = Buffer & { latin1Slice(start: number, end: number): string; utf8Slice(start: number, end: number): string };

/**
 * One record being parsed (and, once the parser hands it out, a read-only view of it). Reused:
 * a consumer must copy what it keeps. `toRecord()` makes the plain, self-contained KmemleakRecord.
 */
const HEX_DIGITS = '0123456789abcdef';

/** Lowercase hex of the `len` low digits of the 64-bit value hi:lo, zero-padded (len ≤ 16). */
export function hexOf(hi: number, lo: number, len: number): string {
  let out = '';
  for (let k = len - 1; k >= 0; k--) out += HEX_DIGITS[(k >= 8 ? hi >>> ((k - 8) * 4) : lo >>> (k * 4)) & 15];
  return out;
}

export class ParsedRecord {
  /**
   * The object address: `addrLen` hex digits; when addrLen ≤ 16 their value is addrHi:addrLo (two
   * unsigned 32-bit halves) and the text is made only when asked for; longer ones are kept as text.
   */
  addrHi = 0;
  addrLo = 0;
  addrLen = 0;
  private addrText: string | null = null;

  /** Object address, lowercase hex without 0x (see KmemleakRecord.address). */
  get address(): string {
    if (this.addrText === null) this.addrText = hexOf(this.addrHi, this.addrLo, this.addrLen);
    return this.addrText;
  }

  /** Set the address from its (lowercase) text. */
  setAddress(text: string): void {
    const n = text.length;
    this.addrLen = n;
    this.addrText = text;
    if (n <= 16) {
      this.addrHi = n > 8 ? parseInt(text.slice(0, n - 8), 16) : 0;
      this.addrLo = parseInt(text.slice(n > 8 ? n - 8 : 0), 16) || 0;
    }
  }

  /** Set the address from its value (the byte path; len ≤ 16 digits). */
  setAddressValue(hi: number, lo: number, len: number): void {
    this.addrHi = hi;
    this.addrLo = lo;
    this.addrLen = len;
    this.addrText = null;
  }

  pointerBits: 32 | 64 = 64;
  objectType: KmemleakRecord['objectType'] = 'normal';
  size = 0;
  comm: string | null = null;
  pid: number | null = null;
  jiffies: number | null = null;
  ageMs: number | null = null;
  hexLength: number | null = null;
  hexCpu: number | null = null;
  crc: string | null = null;
  terminator = false;
  format = '';
  /** The format's index in FORMAT_NAMES (set with it). */
  formatIndex = 0;
  issues: string[] = [];
  truncated = false;
  line = 0;
  fromDmesg = false;
  /** Frames stored (terminators and frames past MAX_FRAMES are not). */
  frameCount = 0;
  pcKind: PcKind = PcKind.None;

  /** Hex characters (lowercase, no spaces) in hexBuf; meaningful when hexLength !== null. */
  hexChars = 0;
  readonly hexBuf: Buffer = Buffer.alloc(MAX_HEX_CHARS);
  /** Frame line texts, '\n'-separated, as bytes (from offset 0 of its own memory, viewed by stackView too). */
  stackBuf: Buffer = Buffer.alloc(0);
  private stackView = new DataView(new ArrayBuffer(0));
  stackLen = 0;
  /** Where stackId() numbers stacks (the parser's `stacks` option; a table of its own otherwise). */
  stackTable: StackInterner | null = null;
  /**
   * Keep each frame's `[<pc>] ` in the stack text (the parser's `stackPcs` option, default true).
   * Without it frames() gives pc: null, and stacks that differ only in pointers are one stack.
   */
  keepPcs = true;

  constructor() {
    this.allocStack(4096);
  }

  private allocStack(size: number): void {
    const mem = new ArrayBuffer((size + 3) & ~3);
    const next = Buffer.from(mem);
    this.stackBuf.copy(next, 0, 0, this.stackLen);
    this.stackBuf = next;
    this.stackView = new DataView(mem);
  }

  /**
   * The record's stack id in `stackTable` when already known (a backtrace block replayed from the
   * parser's memo, whose frames were not copied into stackBuf; or stackId() called before), else -1.
   */
  knownStackId = -1;

  /** Id of this record's stack in `stackTable` (same bytes, same id). Valid for this record only. */
  stackId(): number {
    if (this.knownStackId < 0) this.knownStackId = (this.stackTable ??= new StackInterner()).idOf(this.stackBuf, this.stackView, this.stackLen, this.stackAscii);
    return this.knownStackId;
  }
  /** Every byte in stackBuf is ASCII (so latin1 decoding gives the same text as UTF-8). */
  stackAscii = true;
  private stackText: string | null = null;

  reset(line: number): void {
    this.comm = null; this.pid = null; this.jiffies = null; this.ageMs = null;
    this.hexLength = null; this.hexCpu = null; this.crc = null; this.hexChars = 0;
    this.terminator = false; this.format = ''; this.truncated = false;
    if (this.issues.length !== 0) this.issues.length = 0; // setting length is a runtime call, even to its value
    this.line = line; this.fromDmesg = false;
    this.frameCount = 0; this.pcKind = PcKind.None;
    this.stackLen = 0; this.stackAscii = true; this.stackText = null; this.knownStackId = -1;
  }

  /** The hex dump as printed (lowercase pairs without separators), or null without a hex dump line. */
  get hex(): string | null {
    return this.hexLength === null ? null : (this.hexBuf as FastBuffer).latin1Slice(0, this.hexChars);
  }

  /** Make room for `n` more stack bytes. */
  reserveStack(n: number): void {
    const need = this.stackLen + n + 1;
    if (need <= this.stackBuf.length) return;
    this.allocStack(Math.max(need, this.stackBuf.length * 2));
  }

  /**
   * Frames that came from the parser's block memo are known by stack id only (stackBuf empty):
   * when more frames follow (the line after the block was not the next record), write the known
   * frames' text first so the stack is what reading every line gives.
   */
  private materializeKnownStack(): void {
    const text = this.stackTable!.text(this.knownStackId);
    const n = Buffer.byteLength(text, 'utf8');
    this.reserveStack(n);
    this.stackLen = this.stackBuf.write(text, 0, 'utf8');
    if (n !== text.length) this.stackAscii = false;
  }

  /** Append one frame line's text given as a string (the regex path). */
  addFrameText(text: string, pc: string | null): void {
    if (this.stackLen === 0 && this.frameCount > 0 && this.knownStackId >= 0) this.materializeKnownStack();
    const n = Buffer.byteLength(text, 'utf8');
    this.reserveStack(n);
    if (this.stackLen > 0) this.stackBuf[this.stackLen++] = 10;
    this.stackLen += this.stackBuf.write(text, this.stackLen, 'utf8');
    if (n !== text.length) this.stackAscii = false;
    if (this.frameCount === 0) this.pcKind = pcKindOf(pc);
    this.frameCount++;
    this.stackText = null;
    this.knownStackId = -1;
  }

  /** Append one frame line's text given as ASCII bytes (the byte path). */
  addFrameBytes(b: Uint8Array, start: number, end: number, pcKind: PcKind): void {
    if (this.stackLen === 0 && this.frameCount > 0 && this.knownStackId >= 0) this.materializeKnownStack();
    this.reserveStack(end - start);
    const sb = this.stackBuf;
    let o = this.stackLen;
    if (o > 0) sb[o++] = 10;
    for (let i = start; i < end; i++) sb[o++] = b[i];
    this.stackLen = o;
    if (this.frameCount === 0) this.pcKind = pcKind;
    this.frameCount++;
    this.stackText = null;
    this.knownStackId = -1;
  }

  /** The printed text of the stored frames, one line each: what the stack identity is cached by. */
  stackKey(): string {
    if (this.stackText === null && this.stackLen === 0 && this.knownStackId >= 0) this.stackText = this.stackTable!.text(this.knownStackId);
    if (this.stackText === null) {
      const b = this.stackBuf as FastBuffer;
      this.stackText = this.stackAscii ? b.latin1Slice(0, this.stackLen) : b.utf8Slice(0, this.stackLen);
    }
    return this.stackText;
  }

  /** The stored frames as objects (allocates: call it for a record you keep). */
  frames(): KmemleakFrame[] {
    return framesOfStackText(this.stackKey());
  }

  /** Set `format` (RecordFormat) from what was seen. */
  setFormat(): void {
    const comm = this.ageMs !== null ? 1 : this.crc !== null ? 2 : 0;
    const term = this.terminator ? 1 : 0;
    this.format = FORMATS[this.pcKind][comm][term];
    this.formatIndex = (this.pcKind * COMM_KIND_NAMES.length + comm) * 2 + term;
  }

  toRecord(): KmemleakRecord {
    return {
      address: this.address,
      pointerBits: this.pointerBits,
      objectType: this.objectType,
      size: this.size,
      comm: this.comm,
      pid: this.pid,
      jiffies: this.jiffies,
      ageMs: this.ageMs,
      hexLength: this.hexLength,
      hexCpu: this.hexCpu,
      hex: this.hex,
      crc: this.crc,
      frames: this.frames(),
      terminator: this.terminator,
      format: this.format,
      issues: this.issues.slice(),
      truncated: this.truncated,
      line: this.line,
      fromDmesg: this.fromDmesg,
    };
  }
}
