// Streaming line splitter shared by the text parsers: feeds one line at a time to a callback,
// never holds more than one (capped) line, survives binary garbage, CRLF and giant lines.
import { StringDecoder } from 'node:string_decoder';

/** Longest line kept, in characters. Longer lines are cut here and flagged `overlong` (a 10 MB line costs 4 KiB). */
export const DEFAULT_MAX_LINE = 4096;

export type LineCallback = (text: string, overlong: boolean) => void;

export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private carry = '';
  private carryOverlong = false;
  /** Characters pushed so far (a byte count would need re-encoding; close enough for stats). */
  bytes = 0;
  /** True after end() if the input did not end with a newline (last line may be cut). */
  lastLineUnterminated = false;

  constructor(private readonly onLine: LineCallback, private readonly maxLine = DEFAULT_MAX_LINE) {}

  pushBuffer(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    this.pushDecoded(this.decoder.write(chunk as Buffer));
  }

  pushString(chunk: string): void {
    this.bytes += chunk.length;
    this.pushDecoded(chunk);
  }

  private pushDecoded(s: string): void {
    let start = 0;
    for (;;) {
      const nl = s.indexOf('\n', start);
      if (nl < 0) break;
      let line: string;
      let overlong = this.carryOverlong;
      if (this.carry.length > 0 || overlong) {
        line = overlong ? this.carry : this.carry + s.slice(start, Math.min(nl, start + this.maxLine));
        if (!overlong && this.carry.length + (nl - start) > this.maxLine) overlong = true;
        this.carry = '';
        this.carryOverlong = false;
      } else if (nl - start > this.maxLine) {
        line = s.slice(start, start + this.maxLine);
        overlong = true;
      } else {
        line = s.slice(start, nl);
      }
      if (line.length > this.maxLine) line = line.slice(0, this.maxLine);
      this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line, overlong);
      start = nl + 1;
    }
    if (start < s.length) {
      // A partial line: keep at most maxLine characters of it; remember it was cut.
      if (this.carryOverlong) return;
      const room = this.maxLine - this.carry.length;
      const rest = s.length - start;
      if (rest > room) {
        this.carry += s.slice(start, start + room);
        this.carryOverlong = true;
      } else {
        this.carry += s.slice(start);
      }
    }
  }

  /** Flush the last line (if the input did not end with a newline). */
  end(): void {
    const tail = this.decoder.end();
    if (tail) this.pushDecoded(tail);
    if (this.carry.length > 0 || this.carryOverlong) {
      this.lastLineUnterminated = true;
      const line = this.carry;
      this.carry = '';
      const overlong = this.carryOverlong;
      this.carryOverlong = false;
      this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line, overlong);
    }
  }
}

/** Anything line text can be read from: a Node Readable, an async iterable of chunks, or of lines. */
export type ChunkSource = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

/**
 * Read `source` chunk by chunk and call `onLine` per line. Strings and buffers may be mixed; a
 * string chunk is treated as raw text (so an iterable of lines WITHOUT newlines must go through
 * `forEachLineOfLines` instead).
 */
export async function forEachLine(source: ChunkSource, onLine: LineCallback, maxLine = DEFAULT_MAX_LINE): Promise<LineSplitter> {
  const splitter = new LineSplitter(onLine, maxLine);
  for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
    if (typeof chunk === 'string') splitter.pushString(chunk);
    else splitter.pushBuffer(chunk);
  }
  splitter.end();
  return splitter;
}
