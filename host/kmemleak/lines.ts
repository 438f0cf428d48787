// Streaming line splitter shared by the text parsers: feeds one line at a time to a callback,
// never holds more than one (capped) line, survives binary garbage, CRLF and giant lines.
//
// Lines are cut from the bytes and decoded one by one, so every line is a string of its own: a
// substring kept from it (a comm, a symbol) never pins a whole read chunk in memory, which a
// split of a decoded 1 MB chunk would (V8 sliced strings keep their parent alive).

/** Longest line kept, in bytes. Longer lines are cut here and flagged `overlong` (a 10 MB line costs 4 KiB). */
export const DEFAULT_MAX_LINE = 4096;

export type LineCallback = (text: string, overlong: boolean) => void;

/**
 * A consumer that takes lines as bytes and decodes only what it keeps (the kmemleak parser).
 * `lineBytes` gets b[start, end): one line without its newline and one trailing CR, at most
 * maxLine bytes; b[end] is inside the buffer and is a CR or a newline (never a printable character).
 * Overlong lines arrive decoded through `line(text, true)`.
 *
 * `lineBytes` may return the offset in `b` of a later line start to go on from: the sink has read
 * the lines up to there itself (the parser's memo of backtrace blocks). Anything else (undefined,
 * -1, an offset not past the line) means: go on with the next line.
 */
export interface ByteLineSink {
  lineBytes(b: Buffer, start: number, end: number): number | void;
  line(text: string, overlong: boolean): void;
}

// Buffer#utf8Slice skips toString()'s argument checks; it is what toString('utf8', a, b) calls.
type FastBuffer = Buffer & { utf8Slice?: (start: number, end: number) => string };
const utf8 = (b: FastBuffer, start: number, end: number): string =>
  b.utf8Slice ? b.utf8Slice(start, end) : b.toString('utf8', start, end);

export class LineSplitter {
  /** Bytes of a line started in an earlier chunk (at most maxLine). */
  private carry: Buffer[] = [];
  private carryLen = 0;
  private carryOverlong = false;
  /** Bytes pushed so far. */
  bytes = 0;
  /** True after end() if the input did not end with a newline (last line may be cut). */
  lastLineUnterminated = false;

  private readonly onLine: LineCallback;
  private readonly sink: ByteLineSink | null;

  constructor(consumer: LineCallback | ByteLineSink, private readonly maxLine = DEFAULT_MAX_LINE) {
    if (typeof consumer === 'function') {
      this.onLine = consumer;
      this.sink = null;
    } else {
      this.sink = consumer;
      this.onLine = (text, overlong) => consumer.line(text, overlong);
    }
  }

  pushBuffer(chunk: Uint8Array): void {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.bytes += buf.length;
    let start = 0;
    const n = buf.length;
    while (start < n) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) {
        this.keep(buf, start, n);
        return;
      }
      let next = nl + 1;
      if (this.carryLen > 0 || this.carryOverlong) {
        this.keep(buf, start, nl);
        this.flushCarry();
      } else {
        let end = nl;
        if (end > start && buf[end - 1] === 13) end--;
        if (end - start > this.maxLine) this.onLine(utf8(buf, start, start + this.maxLine), true);
        else if (this.sink) {
          const resume = this.sink.lineBytes(buf, start, end);
          if (typeof resume === 'number' && resume > next && resume <= n) next = resume;
        } else this.onLine(utf8(buf, start, end), false);
      }
      start = next;
    }
  }

  pushString(chunk: string): void {
    this.pushBuffer(Buffer.from(chunk, 'utf8'));
  }

  private keep(buf: Buffer, from: number, to: number): void {
    const room = this.maxLine + 1 - this.carryLen; // +1: room for a CR that ends up before the newline
    const take = Math.min(room, to - from);
    if (take > 0) {
      this.carry.push(Buffer.from(buf.subarray(from, from + take))); // a copy: the chunk is not retained
      this.carryLen += take;
    }
    if (to - from > take) this.carryOverlong = true;
  }

  private flushCarry(): void {
    // One spare byte, a newline, after the line: a byte sink may look at b[end] (see ByteLineSink),
    // and a read past a typed array's end would send V8's optimised code to its slow path for good.
    const line = Buffer.allocUnsafe(this.carryLen + 1);
    let at = 0;
    for (const part of this.carry) { part.copy(line, at); at += part.length; }
    line[at] = 10;
    let end = at;
    let overlong = this.carryOverlong;
    if (!overlong && end > 0 && line[end - 1] === 13) end--;
    if (end > this.maxLine) { end = this.maxLine; overlong = true; }
    this.carry = [];
    this.carryLen = 0;
    this.carryOverlong = false;
    if (this.sink && !overlong) this.sink.lineBytes(line, 0, end);
    else this.onLine(line.toString('utf8', 0, end), overlong);
  }

  /** Flush the last line (if the input did not end with a newline). */
  end(): void {
    if (this.carryLen > 0 || this.carryOverlong) {
      this.lastLineUnterminated = true;
      this.flushCarry();
    }
  }
}

/** Anything line text can be read from: a Node Readable, an async iterable of chunks, or of lines. */
export type ChunkSource = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

/**
 * Read `source` chunk by chunk and call `onLine` per line. Strings and buffers may be mixed; a
 * string chunk is treated as raw text (an iterable of lines WITHOUT newlines must go through
 * `kmemleakRecords` instead).
 */
export async function forEachLine(source: ChunkSource, onLine: LineCallback | ByteLineSink, maxLine = DEFAULT_MAX_LINE): Promise<LineSplitter> {
  const splitter = new LineSplitter(onLine, maxLine);
  for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
    if (typeof chunk === 'string') splitter.pushString(chunk);
    else splitter.pushBuffer(chunk);
  }
  splitter.end();
  return splitter;
}
