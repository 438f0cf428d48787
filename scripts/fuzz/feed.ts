// A kmemleak parser fed a buffer cut in pieces of the sizes `nextSize` gives (lines and backtrace
// blocks then straddle piece ends), by bytes (the parser's byte path) or as decoded lines: how the
// fuzz targets and the parser tests drive it.
import { LineSplitter } from '../../host/kmemleak/lines.js';
import type { KmemleakParser } from '../../host/kmemleak/parser.js';
import type { ParserCounters } from '../../host/kmemleak/types.js';

/** Parse `buf` to its end; the parser's counters without `bytes` (which depends on the feeding). */
export function parseInPieces(parser: KmemleakParser, buf: Buffer, nextSize: () => number, byBytes = true): Omit<ParserCounters, 'bytes'> {
  const sp = byBytes ? new LineSplitter(parser) : new LineSplitter((l, o) => parser.line(l, o));
  for (let i = 0; i < buf.length;) {
    const n = nextSize();
    sp.pushBuffer(buf.subarray(i, i + n));
    i += n;
  }
  sp.end();
  parser.end(sp.lastLineUnterminated);
  const { bytes: _bytes, ...counters } = parser.counters;
  void _bytes;
  return counters;
}
