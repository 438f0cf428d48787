// Our device-side adbd (scripts/lab/adbd, compiled) running on the HOST, no VM.
//
//   const server = await startAdbServer();
//   const dev = await startHostAdbd(server);        // spawn on a free loopback port, adb connect, wait for `device`
//   await server.adb(['-s', dev.serial, 'shell', 'echo hi']);
//   await dev.stop();                               // adb disconnect + SIGTERM (SIGKILL after 5 s)
//
//   const raw = await spawnHostAdbd();              // just the daemon (for raw-socket protocol tests)
//   raw.port, raw.exitCode() (null while alive), raw.output() (its stdout+stderr so far), await raw.stop()
//
// Extra daemon flags go in `args` (e.g. ['--model', 'X']). The daemon picks its port itself
// (--port 0) and prints it, so there is no race for the port.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from './paths.js';
import type { AdbServer } from './adb-server.js';

export const ADBD_MAIN = path.join(REPO_ROOT, 'dist', 'scripts', 'lab', 'adbd', 'main.js');

export interface SpawnedAdbd {
  port: number;
  pid: number;
  /** null while running; the exit code (or signal name) once it has exited. */
  exitCode(): number | string | null;
  /** Everything the daemon printed so far (stdout + stderr). */
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. Idempotent. */
  stop(): Promise<void>;
}

export interface ConnectedAdbd extends SpawnedAdbd {
  /** The serial the adb server knows it by: 127.0.0.1:PORT. */
  serial: string;
}

export interface HostAdbdOptions {
  /** Extra command-line flags for the daemon. */
  args?: string[];
  /** How long to wait for the daemon to listen / the server to show `device` (default 15 s). */
  timeoutMs?: number;
  /** PATH for the daemon and so for every command it runs (default: this process's). */
  path?: string;
}

const LISTEN_LINE = /adbd listening on ([0-9.]+):(\d+)/;

export async function spawnHostAdbd(opts: HostAdbdOptions = {}): Promise<SpawnedAdbd> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  // stdin is a pipe that only closes when this process goes: the daemon never outlives a crashed test.
  const child: ChildProcess = spawn(process.execPath, [ADBD_MAIN, '--port', '0', '--listen', '127.0.0.1', '--exit-on-stdin-eof', ...(opts.args ?? [])], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: opts.path === undefined ? process.env : { ...process.env, PATH: opts.path },
  });
  let text = '';
  let exit: number | string | null = null;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = code ?? signal ?? 'unknown';
      resolve();
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`adbd did not start within ${timeoutMs} ms: ${text}`)), timeoutMs);
    const onData = (d: Buffer) => {
      text += d.toString('utf8');
      const m = LISTEN_LINE.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[2]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`adbd exited (${exit}) before listening: ${text}`));
    });
  });
  let stopping: Promise<void> | undefined;
  return {
    port,
    pid: child.pid!,
    exitCode: () => exit,
    output: () => text,
    stop() {
      stopping ??= (async () => {
        if (exit !== null) return;
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(killer);
      })();
      return stopping;
    },
  };
}

/** Spawn our adbd and `adb connect` it through `server`; resolves once `adb get-state` says `device`. */
export async function startHostAdbd(server: AdbServer, opts: HostAdbdOptions = {}): Promise<ConnectedAdbd> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const daemon = await spawnHostAdbd(opts);
  const serial = `127.0.0.1:${daemon.port}`;
  try {
    const c = await server.adb(['connect', serial], { timeoutMs });
    if (!/connected to/.test(c.stdout)) throw new Error(`adb connect ${serial} failed: ${c.stdout}${c.stderr}`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await server.adb(['-s', serial, 'get-state'], { timeoutMs: 5_000 });
      if (s.stdout.trim() === 'device') break;
      if (Date.now() > deadline) throw new Error(`${serial} not 'device' after ${timeoutMs} ms: ${s.stdout}${s.stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    await daemon.stop();
    throw e;
  }
  return {
    ...daemon,
    serial,
    async stop() {
      if (daemon.exitCode() === null) await server.adb(['disconnect', serial], { timeoutMs: 10_000 }).catch(() => undefined);
      await daemon.stop();
    },
  };
}
