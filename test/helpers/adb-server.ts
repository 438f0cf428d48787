// A private instance of Debian's real adb server for one test file.
//
//   const server = await startAdbServer();          // adb -P <free port> start-server
//   const r = await server.adb(['devices']);         // runs /usr/bin/adb -P <port> devices
//   r.code, r.stdout, r.stderr, r.stdoutBytes
//   server.env                                      // { ...process.env, ANDROID_ADB_SERVER_PORT }
//   await server.kill();                            // adb -P <port> kill-server (only this server)
//
// Never touches the default server on 5037: every call carries -P and the env var.
import { spawn } from 'node:child_process';
import net from 'node:net';

export const ADB_BIN = process.env.KML_TEST_ADB ?? '/usr/bin/adb';

export interface AdbResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout exactly as received (binary-safe, for exec-out). */
  stdoutBytes: Buffer;
}

export interface AdbRunOptions {
  /** Kill adb after this many ms (default 60 s); the result then has signal SIGKILL. */
  timeoutMs?: number;
  /** Written to adb's stdin, which is then closed. Without it stdin is /dev/null. */
  input?: Buffer | string;
}

export interface AdbServer {
  port: number;
  /** process.env plus ANDROID_ADB_SERVER_PORT for this server (for adbkit users and kml). */
  env: NodeJS.ProcessEnv;
  /** Run `adb -P <port> ...args`. Never throws on a nonzero exit; check `code`. Rejects after kill(). */
  adb(args: string[], opts?: AdbRunOptions): Promise<AdbResult>;
  /** Stop this server (idempotent). */
  kill(): Promise<void>;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bind :0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Run the adb binary with explicit args and env. */
export function runAdb(args: string[], env: NodeJS.ProcessEnv, opts: AdbRunOptions = {}): Promise<AdbResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(ADB_BIN, args, { env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // 'close' (not 'exit'): wait until stdout/stderr are drained. `adb start-server` forks a
    // daemon that closes its copies of our pipes before the client exits, so this does not hang.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes });
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {}); // adb may exit before reading everything
      child.stdin.end(opts.input);
    }
  });
}

/** Start a private adb server on a free loopback port; retries once if the port was taken meanwhile. */
export async function startAdbServer(): Promise<AdbServer> {
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, ANDROID_ADB_SERVER_PORT: String(port) };
    delete env.ANDROID_SERIAL; // tests name their device explicitly
    let killed = false;
    // Any adb command auto-starts a server when none answers, so refuse to run once killed.
    const adb = async (args: string[], opts?: AdbRunOptions) => {
      if (killed) throw new Error(`private adb server on port ${port} was already killed`);
      return runAdb(['-P', String(port), ...args], env, opts);
    };
    const started = await adb(['start-server'], { timeoutMs: 30_000 });
    if (started.code === 0) {
      return {
        port,
        env,
        adb,
        async kill() {
          if (killed) return;
          killed = true;
          await runAdb(['-P', String(port), 'kill-server'], env, { timeoutMs: 15_000 });
        },
      };
    }
    lastError = `${started.stderr}${started.stdout}`.trim();
  }
  throw new Error(`could not start a private adb server: ${lastError}`);
}
