// `kml collect` as a child process, the way a job runner starts it: the real CLI, stdout/stderr
// (JSON log lines, stderr is not a TTY) into a file per incarnation, SIGKILLed and started again
// with the very same command line (a fault), its RSS sampled from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** bin/kml.js of this checkout (dist/scripts/soak → repo root). */
export const KML_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'kml.js');

export interface Incarnation {
  n: number;
  pid: number;
  startedAt: number;
  endedAt?: number;
  code?: number | null;
  signal?: NodeJS.Signals | null;
  /** Killed by the soak (kml-kill fault) rather than exiting on its own. */
  killed: boolean;
  logFile: string;
  rssKb: number[];
}

export class Collector {
  readonly incarnations: Incarnation[] = [];
  private child?: ChildProcess;
  private exited?: Promise<void>;
  /** Called when kml exits without being asked to (a crash, a refusal). */
  onUnexpectedExit?: (inc: Incarnation) => void;
  private expectingExit = false;

  constructor(readonly args: string[], private readonly env: NodeJS.ProcessEnv, private readonly logDir: string) {}

  get commandLine(): string {
    return ['kml', ...this.args].join(' ');
  }

  get current(): Incarnation | undefined {
    const last = this.incarnations[this.incarnations.length - 1];
    return last && last.endedAt === undefined ? last : undefined;
  }

  start(): Incarnation {
    if (this.current) throw new Error('kml collect is already running');
    const n = this.incarnations.length + 1;
    const logFile = path.join(this.logDir, `kml-collect-${n}.log`);
    const fd = fs.openSync(logFile, 'a');
    const child = spawn(process.execPath, [KML_BIN, ...this.args], { env: this.env, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const inc: Incarnation = { n, pid: child.pid!, startedAt: Date.now(), killed: false, logFile, rssKb: [] };
    this.incarnations.push(inc);
    this.child = child;
    this.expectingExit = false;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        inc.endedAt = Date.now();
        inc.code = code;
        inc.signal = signal;
        if (!this.expectingExit) this.onUnexpectedExit?.(inc);
        resolve();
      });
    });
    return inc;
  }

  /** SIGKILL (the job runner's kill -9) and wait until it is gone. */
  async kill9(): Promise<void> {
    const inc = this.current;
    if (!inc || !this.child) return;
    this.expectingExit = true;
    inc.killed = true;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Wait for the current incarnation to exit (after `kml stop` signalled it), up to timeoutMs. */
  async waitExit(timeoutMs: number): Promise<Incarnation | undefined> {
    const inc = this.current;
    if (!inc) return this.incarnations[this.incarnations.length - 1];
    this.expectingExit = true;
    const t = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
    if ((await Promise.race([this.exited!.then(() => 'exited' as const), t])) === 'timeout') return undefined;
    return inc;
  }

  /** The collector is expected to exit on its own now (it was told to stop). */
  expectExit(): void {
    this.expectingExit = true;
  }

  /** RSS of the running kml, sampled once it has settled (10 s after its start). */
  sampleRss(): number | undefined {
    const inc = this.current;
    if (!inc || Date.now() - inc.startedAt < 10_000) return undefined;
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${inc.pid}/status`, 'utf8'));
      if (!m) return undefined;
      const kb = Number(m[1]);
      inc.rssKb.push(kb);
      return kb;
    } catch {
      return undefined;
    }
  }

  /** Last resort (the soak itself is failing): kill whatever runs. */
  killNow(): void {
    this.expectingExit = true;
    try {
      this.child?.kill('SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Count kml's log messages (JSON lines) over every incarnation, by message. */
export function countLogMessages(files: string[]): { byMsg: Record<string, number>; errors: Array<{ file: string; msg: string; err?: string }> } {
  const byMsg: Record<string, number> = {};
  const errors: Array<{ file: string; msg: string; err?: string }> = [];
  for (const f of files) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      let o: { msg?: string; level?: number; err?: { message?: string } };
      try {
        o = JSON.parse(line);
      } catch {
        continue;
      }
      if (!o.msg) continue;
      byMsg[o.msg] = (byMsg[o.msg] ?? 0) + 1;
      if ((o.level ?? 0) >= 50) errors.push({ file: path.basename(f), msg: o.msg, err: o.err?.message });
    }
  }
  return { byMsg, errors };
}
