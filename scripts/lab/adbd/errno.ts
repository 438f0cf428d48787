// errno names → the numbers and strerror() texts a real adbd puts on the wire.
// Node only gives us the name (err.code) and libuv's lower-case wording, which differs from
// strerror ("illegal operation on a directory" vs "Is a directory"), so the texts are listed here.
import os from 'node:os';

const STRERROR: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EIO: 'I/O error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Try again',
  ENOMEM: 'Out of memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EXDEV: 'Cross-device link',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ETXTBSY: 'Text file busy',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  ESPIPE: 'Illegal seek',
  EROFS: 'Read-only file system',
  EMLINK: 'Too many links',
  EPIPE: 'Broken pipe',
  ENAMETOOLONG: 'File name too long',
  ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many symbolic links encountered',
  EOVERFLOW: 'Value too large for defined data type',
  EDQUOT: 'Quota exceeded',
  ENOTSUP: 'Operation not supported',
  EOPNOTSUPP: 'Operation not supported',
};

export function errnoName(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** strerror() text for a Node system error ("No such file or directory"). */
export function strerror(err: unknown): string {
  const name = errnoName(err);
  if (name && STRERROR[name]) return STRERROR[name];
  const message = err instanceof Error ? err.message : String(err);
  // libuv: "EXYZ: some text, syscall 'path'" → "Some text"
  const m = /^[A-Z0-9]+: ([^,]+)/.exec(message);
  const text = m ? m[1]! : message;
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The Linux errno number for a Node system error (EIO when unknown). */
export function errnoNumber(err: unknown): number {
  const name = errnoName(err);
  const table = os.constants.errno as Record<string, number>;
  if (name && typeof table[name] === 'number') return table[name];
  const errno = (err as { errno?: unknown } | null)?.errno;
  if (typeof errno === 'number') return Math.abs(errno);
  return table.EIO ?? 5;
}
