// Exit codes are part of kml's interface: lab automation scripts branch on them.
// Keep this table in sync with the README's "Exit codes" section.
export const ExitCode = {
  OK: 0,
  /** The thing asked about is not good: doctor found the device not ready, report --fail-on matched. */
  FAIL: 1,
  /** Bad command line: unknown option, bad value, missing argument. */
  USAGE: 2,
  /** Device unavailable: unknown serial, offline, unauthorized, adb server unreachable. */
  DEVICE: 3,
  /** Device reachable but cannot run kmemleak collection: no root, kmemleak off, no debugfs. */
  NOT_CAPABLE: 4,
  /** Local I/O: disk full, unwritable output folder, unreadable input, corrupt store. */
  IO: 5,
  /** Another kml collector already drives this device or store. */
  CONFLICT: 6,
  /** Lab device could not be built or started. */
  LAB: 7,
  /** A bug in kml: an unexpected exception. */
  INTERNAL: 70,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * An error meant for the user: a one-line message, an optional remedy, and the exit code.
 * The CLI prints these without a stack trace; anything else is an internal error.
 */
export class KmlError extends Error {
  readonly exitCode: ExitCodeValue;
  readonly hint?: string;
  readonly details?: Record<string, unknown>;
  constructor(exitCode: ExitCodeValue, message: string, opts: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KmlError';
    this.exitCode = exitCode;
    this.hint = opts.hint;
    this.details = opts.details;
  }
}

export function isKmlError(e: unknown): e is KmlError {
  return e instanceof KmlError;
}

/** errno-style code of a Node system error, if any (ENOSPC, EACCES, ...). */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}

/** Map a local filesystem error to a user-facing KmlError (disk full, permissions, ...). */
export function ioError(what: string, e: unknown): KmlError {
  const code = errnoCode(e);
  const reason =
    code === 'ENOSPC' ? 'no space left on the host disk'
    : code === 'EDQUOT' ? 'disk quota exceeded'
    : code === 'EACCES' || code === 'EPERM' ? 'permission denied'
    : code === 'EROFS' ? 'read-only filesystem'
    : code === 'ENOENT' ? 'no such file or directory'
    : code === 'ENOTDIR' ? 'a path component is not a directory'
    : (e as Error)?.message ?? String(e);
  const hint = code === 'ENOSPC' || code === 'EDQUOT' ? 'free some space or pass --out on another disk' : undefined;
  return new KmlError(ExitCode.IO, `${what}: ${reason}`, { cause: e, hint });
}
