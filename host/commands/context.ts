// Shared plumbing for every kml sub-command: global options, adb conventions, error → exit code.
import type { Command } from 'commander';
import { ExitCode, KmlError, isKmlError } from '../errors.js';
import { createLogger, type Logger, type LogLevel, LOG_LEVELS } from '../log.js';
import { terminalSafe } from '../terminal.js';

export interface GlobalOptions {
  /** adb server host: always loopback unless the user says otherwise. */
  adbHost: string;
  /** adb server port: -P / ANDROID_ADB_SERVER_PORT / 5037, as adb itself does. */
  adbPort: number;
  logLevel: LogLevel;
}

export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as { adbPort?: string; logLevel?: string };
  const portText = o.adbPort ?? process.env.ANDROID_ADB_SERVER_PORT ?? '5037';
  const adbPort = Number(portText);
  if (!Number.isInteger(adbPort) || adbPort <= 0 || adbPort > 65535) {
    throw new KmlError(ExitCode.USAGE, `invalid adb server port: ${JSON.stringify(portText)}`);
  }
  const logLevel = (o.logLevel ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new KmlError(ExitCode.USAGE, `invalid --log-level ${JSON.stringify(o.logLevel)} (one of ${LOG_LEVELS.join(', ')})`);
  }
  return { adbHost: '127.0.0.1', adbPort, logLevel };
}

/** -s/--serial, else ANDROID_SERIAL, else undefined (the caller decides whether one device is implied). */
export function serialFrom(optSerial: string | string[] | undefined): string[] {
  if (Array.isArray(optSerial) && optSerial.length) return optSerial;
  if (typeof optSerial === 'string' && optSerial) return [optSerial];
  const env = process.env.ANDROID_SERIAL;
  return env ? [env] : [];
}

/** Collect a repeatable option into an array (commander helper). */
export function collectRepeatable(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Parse a positive integer option or fail with a usage error. */
export function parsePositiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    throw new KmlError(ExitCode.USAGE, `${name} must be a positive whole number, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** Parse a duration like 90, 90s, 10m, 8h, 1d into milliseconds. */
export function parseDuration(name: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new KmlError(ExitCode.USAGE, `${name}: cannot read duration ${JSON.stringify(text)} (examples: 600, 90s, 10m, 8h)`);
  const mult: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const ms = Number(m[1]) * mult[m[2] ?? 's'];
  if (!(ms > 0)) throw new KmlError(ExitCode.USAGE, `${name} must be greater than zero`);
  return ms;
}

/** Print a KmlError for humans (or as JSON) and return its exit code; never a stack trace. */
export function reportError(e: unknown, json: boolean, log?: Logger): number {
  if (isKmlError(e)) {
    log?.error({ err: { message: e.message, hint: e.hint }, exitCode: e.exitCode }, 'command failed');
    if (json) {
      process.stdout.write(JSON.stringify({ ok: false, error: { message: e.message, hint: e.hint, exitCode: e.exitCode, ...e.details } }) + '\n');
    } else {
      process.stderr.write(terminalSafe(`kml: error: ${e.message}\n`));
      if (e.hint) process.stderr.write(terminalSafe(`kml: hint: ${e.hint}\n`));
    }
    return e.exitCode;
  }
  const err = e as Error;
  log?.fatal({ err }, 'internal error');
  process.stderr.write(terminalSafe(`kml: internal error: ${err?.message ?? String(e)}\n`));
  if (process.env.KML_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
  else process.stderr.write('kml: this is a bug in kml; rerun with KML_DEBUG=1 for the stack trace\n');
  return ExitCode.INTERNAL;
}

/**
 * Wrap a command action: run it, turn its result into the process exit code,
 * and turn any error into a clear message + documented exit code.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const cmd = args[args.length - 1] as Command;
    const json = Boolean((cmd.opts() as { json?: boolean }).json);
    let code: number;
    try {
      code = (await fn(...args)) ?? ExitCode.OK;
    } catch (e) {
      code = reportError(e, json);
    }
    process.exitCode = code;
  };
}

export function stderrLogger(level: LogLevel): Logger {
  return createLogger({ level, pretty: Boolean(process.stderr.isTTY) });
}
