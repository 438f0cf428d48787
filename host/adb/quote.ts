// Quoting and validation for everything kml pastes into a shell (device or host) or an adb service
// string. Nothing taken from the user or the device reaches a shell unquoted.
import { ExitCode, KmlError } from '../errors.js';

/**
 * POSIX single-quote a word: 'it'\''s' — safe for sh, mksh, toybox and busybox.
 * Always quotes (even plain words), so callers never need to think about it.
 */
export function shq(word: string | number): string {
  const s = String(word);
  if (s.includes('\0')) throw new KmlError(ExitCode.USAGE, 'a NUL byte cannot be passed to a shell');
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Quote a list of words and join them with spaces: shqJoin(['echo', "a b"]) → `'echo' 'a b'`. */
export function shqJoin(words: ReadonlyArray<string | number>): string {
  return words.map(shq).join(' ');
}

const PLAIN_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quote only when needed: for commands shown to a human (remedies, hints) that stay copy-pasteable. */
export function shDisplay(word: string | number): string {
  const s = String(word);
  return PLAIN_WORD.test(s) ? s : shq(s);
}

/** Longest serial adb itself handles comfortably (USB serials are ≤ 64, mDNS names longer). */
const MAX_SERIAL_LENGTH = 255;

/**
 * A serial as the user typed it must be printable ASCII without spaces: control characters or a
 * newline would let it break out of the adb host protocol's `host-serial:<serial>:…` request or a
 * log line. Shell metacharacters are allowed here (they are just an unknown serial to adb), because
 * kml never pastes a serial into a shell unquoted.
 */
export function validateSerial(serial: unknown): string {
  if (typeof serial !== 'string' || serial.length === 0) {
    throw new KmlError(ExitCode.USAGE, 'no device serial given', { hint: 'pass -s/--serial SERIAL or set ANDROID_SERIAL (see `kml devices`)' });
  }
  if (serial.length > MAX_SERIAL_LENGTH) {
    throw new KmlError(ExitCode.USAGE, `device serial is too long (${serial.length} characters)`);
  }
  // eslint-disable-next-line no-control-regex
  if (!/^[\x21-\x7e]+$/.test(serial)) {
    throw new KmlError(ExitCode.USAGE, `invalid device serial ${JSON.stringify(serial)}: only printable ASCII without spaces is allowed`, {
      hint: 'copy the serial from `kml devices` or `adb devices`',
    });
  }
  return serial;
}

/** A TCP serial (`host:port`, as `adb connect` creates) → its parts; undefined for USB/emulator serials. */
export function parseTcpSerial(serial: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(serial);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port <= 0 || port > 65535) return undefined;
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

/** The service string is length-prefixed with 4 hex digits; old devices accept only 4 KiB. */
export const MAX_SERVICE_BYTES = 65_000;

export function assertServiceLength(service: string): void {
  const n = Buffer.byteLength(service, 'utf8');
  if (n > MAX_SERVICE_BYTES) {
    throw new KmlError(ExitCode.INTERNAL, `adb request too long (${n} bytes > ${MAX_SERVICE_BYTES}); push a script instead`);
  }
}

/** The adb host protocol frame: 4 hex digits of length, then the request. */
export function encodeService(service: string): Buffer {
  assertServiceLength(service);
  const body = Buffer.from(service, 'utf8');
  return Buffer.concat([Buffer.from(body.length.toString(16).padStart(4, '0'), 'ascii'), body]);
}
