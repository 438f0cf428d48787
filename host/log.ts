// Logging: pino JSON lines into a file (the run's log) and/or a readable line format on stderr
// when it is a TTY. One logger per process; commands create it once through createLogger().
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import type pinoModule from 'pino';
import { terminalSafe } from './terminal.js';

type Pino = typeof pinoModule;
// pino (and its dependencies, ~8 MB of heap) is loaded when a logger is made, not by every
// command that imports this module: `kml report` never logs. pino is CommonJS, so a synchronous
// require keeps createLogger() synchronous.
const require = createRequire(import.meta.url);
let pinoLoaded: Pino | undefined;
const loadPino = (): Pino => (pinoLoaded ??= require('pino') as Pino);

export type Logger = pinoModule.Logger;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP_KEYS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);

/** Render one pino JSON record as `HH:MM:SS LEVEL msg key=value ...` for humans. */
export function formatLogLine(rec: Record<string, unknown>): string {
  const t = new Date(typeof rec.time === 'number' ? rec.time : Date.now());
  const hh = t.toTimeString().slice(0, 8);
  const lvl = LEVEL_NAMES[Number(rec.level)] ?? String(rec.level);
  const extras: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (SKIP_KEYS.has(k)) continue;
    if (k === 'err' && v && typeof v === 'object') {
      extras.push(`err=${JSON.stringify((v as { message?: string }).message ?? v)}`);
      continue;
    }
    extras.push(`${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`);
  }
  return terminalSafe(`${hh} ${lvl.padEnd(5)} ${String(rec.msg ?? '')}${extras.length ? ' ' + extras.join(' ') : ''}`);
}

class PrettyStream extends Writable {
  constructor(private readonly out: NodeJS.WritableStream) { super(); }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      try { this.out.write(formatLogLine(JSON.parse(line)) + '\n'); } catch { this.out.write(line + '\n'); }
    }
    cb();
  }
}

export interface LoggerOptions {
  level?: LogLevel;
  /** JSON lines are appended here (created with the user's umask). */
  file?: string;
  /** Human-readable lines on stderr; default: only when stderr is a TTY. */
  pretty?: boolean;
  /** JSON lines on stderr when it is not a TTY and no file is given (scripts capturing logs). */
  jsonToStderr?: boolean;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const pino = loadPino();
  if (opts.level === 'silent') return pino({ level: 'silent' });
  const level = (opts.level ?? 'info') as pinoModule.Level;
  const streams: pinoModule.StreamEntry[] = [];
  if (opts.file) {
    const dest = pino.destination({ dest: opts.file, append: true, sync: true, mkdir: true });
    // A full disk must not kill a collector: drop log lines until space returns (it pauses itself).
    dest.on('error', () => {});
    streams.push({ level, stream: dest });
  }
  const pretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  if (pretty) streams.push({ level, stream: new PrettyStream(process.stderr) });
  else if (opts.jsonToStderr) streams.push({ level, stream: pino.destination({ dest: 2, sync: true }) });
  if (streams.length === 0) return pino({ level: 'silent' });
  return pino({ level, base: { pid: process.pid } }, pino.multistream(streams, { dedupe: false }));
}

