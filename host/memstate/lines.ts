// Line handling shared by the /proc and kernel-log parsers.
// Inputs come from devices we do not trust: CRLF from `adb shell` ptys, binary garbage from a
// half-written file, or a single multi-megabyte line. Parsers take lines one at a time, so a caller
// can feed them from a stream; these helpers make a whole-text input look the same.

/** Lines longer than this are never matched against a regex: counted as unparsed instead. */
export const MAX_LINE_CHARS = 4096;

/** Input a parser accepts: a whole text, or lines already split (e.g. from readline). */
export type LineInput = string | Iterable<string>;

/** Split text on LF, CRLF or lone CR without building one big array of lines. */
export function* splitLines(text: string): Generator<string> {
  let start = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) {
      yield text.slice(start, i);
      if (c === 13 && i + 1 < n && text.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
  }
  if (start < n) yield text.slice(start);
}

export function linesOf(input: LineInput): Iterable<string> {
  return typeof input === 'string' ? splitLines(input) : input;
}

/**
 * A line a parser may look at: not absurdly long, no NUL or invalid UTF-8 (U+FFFD), and at most a
 * few other control characters (a task name may hold an escape sequence; binary data holds many).
 */
export function isSane(line: string): boolean {
  if (line.length > MAX_LINE_CHARS) return false;
  if (/[\x00\ufffd]/.test(line)) return false;
  // eslint-disable-next-line no-control-regex
  const controls = line.match(/[\x01-\x08\x0e-\x1f\x7f]/g);
  return !controls || controls.length <= 4;
}

/** Counts of lines a parser could not read, with a few short samples for the report. */
export interface Unparsed {
  count: number;
  samples: string[];
}

export function newUnparsed(): Unparsed {
  return { count: 0, samples: [] };
}

const MAX_SAMPLES = 3;
const SAMPLE_CHARS = 120;

export function noteUnparsed(u: Unparsed, line: string): void {
  u.count++;
  if (u.samples.length < MAX_SAMPLES) {
    // eslint-disable-next-line no-control-regex
    const shown = line.slice(0, SAMPLE_CHARS).replace(/[\x00-\x1f\x7f]/g, '?');
    u.samples.push(line.length > SAMPLE_CHARS ? `${shown}… (${line.length} chars)` : shown);
  }
}

/** A finite, non-negative-or-negative integer from decimal digits; undefined when out of range. */
export function toInt(text: string): number | undefined {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}
