// JSON-lines log (one object per line) to a file, or to stderr. No dependencies: this runs
// inside the lab guest with nothing but node.
import fs from 'node:fs';

export type LogFields = Record<string, unknown>;

export class Logger {
  private readonly out: fs.WriteStream | null;
  /** stderr went away (the launcher died): stop writing there. */
  private stderrBroken = false;

  constructor(file?: string) {
    // Logging must never take the daemon down, nor spin on a dead pipe.
    this.out = file ? fs.createWriteStream(file, { flags: 'a' }) : null;
    this.out?.on('error', () => {});
    if (!this.out) {
      process.stderr.on('error', () => {
        this.stderrBroken = true;
      });
    }
  }

  info(msg: string, fields?: LogFields): void {
    this.write('info', msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.write('warn', msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.write('error', msg, fields);
  }

  /** Flush and close the log file (call before process.exit). */
  close(): Promise<void> {
    const out = this.out;
    if (!out || out.closed) return Promise.resolve();
    return new Promise((resolve) => out.end(() => resolve()));
  }

  private write(level: string, msg: string, fields?: LogFields): void {
    let line: string;
    try {
      line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n';
    } catch {
      line = JSON.stringify({ time: new Date().toISOString(), level, msg }) + '\n';
    }
    try {
      if (!this.out) {
        if (!this.stderrBroken && !process.stderr.destroyed) process.stderr.write(line);
      } else if (!this.out.writableEnded) {
        this.out.write(line);
      }
    } catch {
      // nowhere left to report it
    }
  }
}
