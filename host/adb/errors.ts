// adb failures → one error type with a kind, a transient flag (retry may help) and a user hint.
// The adb server's FAIL texts are those of adb 29.0.6 (adb/transport.cpp, adb/adb_client.cpp).
import { ExitCode, KmlError, type ExitCodeValue } from '../errors.js';
import { shDisplay } from './quote.js';

export type AdbErrorKind =
  | 'not-found'          // no device with that serial
  | 'offline'            // listed, but offline / connecting
  | 'unauthorized'       // needs the user's confirmation on the device
  | 'authorizing'        // still authorizing: usually resolves by itself
  | 'no-permissions'     // host USB permissions (udev)
  | 'server-unreachable' // adb server not running and could not be started
  | 'connection'         // a socket to the server or the device dropped (ECONNRESET, closed, EOF)
  | 'timeout'            // our deadline expired
  | 'protocol'           // unexpected bytes: a bug or a very odd device
  | 'remote-fail'        // the device refused a request (e.g. sync FAIL "open failed: ...")
  | 'no-such-file'       // a device path does not exist
  | 'command-failed'     // a device shell command exited non-zero (shellOk)
  | 'unsupported';       // the device lacks a feature kml needs

const DEVICE_STATE_KINDS: ReadonlySet<AdbErrorKind> = new Set(['not-found', 'offline', 'unauthorized', 'authorizing', 'no-permissions', 'server-unreachable']);
const TRANSIENT: ReadonlySet<AdbErrorKind> = new Set(['offline', 'authorizing', 'connection', 'timeout']);

export class AdbError extends KmlError {
  readonly kind: AdbErrorKind;
  readonly transient: boolean;
  readonly serial?: string;
  constructor(kind: AdbErrorKind, message: string, opts: { serial?: string; hint?: string; cause?: unknown; exitCode?: ExitCodeValue } = {}) {
    super(opts.exitCode ?? ExitCode.DEVICE, message, { hint: opts.hint, cause: opts.cause, details: { adbError: kind, serial: opts.serial } });
    this.name = 'AdbError';
    this.kind = kind;
    this.transient = TRANSIENT.has(kind);
    this.serial = opts.serial;
  }
}

export interface AdbErrorContext {
  serial?: string;
  /** What kml was doing, e.g. "shell `id -u`" — prefixed to the message. */
  op?: string;
  /** adb server endpoint, for "unreachable" messages. */
  host?: string;
  port?: number;
}

function errCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

function errMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

function hintFor(kind: AdbErrorKind, ctx: AdbErrorContext): string | undefined {
  const s = ctx.serial ? shDisplay(ctx.serial) : 'SERIAL';
  const p = ctx.port && ctx.port !== 5037 ? ` -P ${ctx.port}` : '';
  switch (kind) {
    case 'not-found':
      return ctx.serial && /:\d+$/.test(ctx.serial)
        ? `run \`adb${p} connect ${s}\` or check the serial with \`kml devices\``
        : 'check the serial with `kml devices` (or `adb devices`) and the USB cable';
    case 'offline':
      return `the device is attached but offline: wait for it to boot, or replug it / run \`adb${p} reconnect\``;
    case 'unauthorized':
      return 'unlock the device and accept the "Allow USB debugging" dialog (or provide the key via ADB_VENDOR_KEYS)';
    case 'authorizing':
      return 'the device is still authorizing: accept the dialog on the device and retry';
    case 'no-permissions':
      return 'the host user cannot open the USB device: add a udev rule (see https://developer.android.com/studio/run/device) and replug';
    case 'server-unreachable':
      return `start it with \`adb${p} start-server\` (kml talks to the adb server on ${ctx.host ?? '127.0.0.1'}:${ctx.port ?? 5037}; set -P/ANDROID_ADB_SERVER_PORT for another port)`;
    case 'connection':
      return 'the connection dropped; check the cable or network and retry';
    default:
      return undefined;
  }
}

/** Turn anything adbkit, the adb server, a socket or our own code threw into an AdbError. */
export function toAdbError(e: unknown, ctx: AdbErrorContext = {}): AdbError {
  if (e instanceof AdbError) {
    // Errors raised deep in a protocol reader know neither the operation nor the serial: add them.
    const addOp = Boolean(ctx.op && !e.message.startsWith(ctx.op) && !DEVICE_STATE_KINDS.has(e.kind));
    if (addOp || (ctx.serial && !e.serial)) {
      const msg = addOp ? `${ctx.op}: ${e.message}` : e.message;
      return new AdbError(e.kind, msg, { serial: e.serial ?? ctx.serial, hint: e.hint ?? hintFor(e.kind, ctx), cause: e.cause ?? e, exitCode: e.exitCode });
    }
    return e;
  }
  const raw = errMessage(e);
  const code = errCode(e);
  const name = (e as { name?: string } | null)?.name ?? '';
  const where = ctx.op ? `${ctx.op}: ` : '';
  const dev = ctx.serial ? `device ${JSON.stringify(ctx.serial)}` : 'device';
  // For "the device is not usable" the operation is noise: say what is wrong with the device.
  const make = (kind: AdbErrorKind, msg: string) =>
    new AdbError(kind, (DEVICE_STATE_KINDS.has(kind) ? '' : where) + msg, { serial: ctx.serial, cause: e, hint: hintFor(kind, ctx) });

  // adbkit answers ECONNREFUSED by running `adb -P PORT start-server` once; its failure surfaces here.
  const startFailed = /start-server/.test(raw);
  if (code === 'ECONNREFUSED' || startFailed || (code === 'ENOENT' && /spawn|adb/.test(raw))) {
    const why = code === 'ENOENT' ? 'adb binary not found to start it' : startFailed ? 'nothing listens there and `adb start-server` failed' : 'connection refused';
    return make('server-unreachable', `adb server unreachable at ${ctx.host ?? '127.0.0.1'}:${ctx.port ?? 5037} (${why})`);
  }
  const lower = raw.toLowerCase();
  if (/device '.*' not found|device not found|no devices\/emulators found|no devices found/.test(lower)) {
    return make('not-found', `${dev} not found`);
  }
  if (lower.includes('unauthorized')) return make('unauthorized', `${dev} is unauthorized`);
  if (lower.includes('authorizing')) return make('authorizing', `${dev} is still authorizing`);
  if (lower.includes('insufficient permissions') || lower.includes('no permissions')) {
    return make('no-permissions', `no permissions to open ${dev}`);
  }
  if (lower.includes('device offline') || lower.includes('still connecting')) return make('offline', `${dev} is offline`);
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' || name === 'PrematureEOFError'
      || /premature end of stream|connection closed|socket hang up|^closed$|write after end/i.test(raw)) {
    return make('connection', `connection to ${dev} dropped (${raw || code})`);
  }
  if (name === 'TimeoutError') return make('timeout', `${dev} did not answer in time (${raw})`);
  if (name === 'UnexpectedDataError') return make('protocol', `unexpected answer from adb: ${raw}`);
  if (name === 'FailError') return make('remote-fail', raw.replace(/^Failure: /, '').replace(/^'(.*)'$/s, '$1'));
  return make('protocol', raw);
}

/** Transient errors are worth a retry after a pause; permanent ones need a human. */
export function isTransientAdbError(e: unknown): boolean {
  if (e instanceof AdbError) return e.transient;
  if (e instanceof KmlError) return false;
  return toAdbError(e).transient;
}
