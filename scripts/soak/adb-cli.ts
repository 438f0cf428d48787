// The soak's own adb: Debian's adb CLI against a PRIVATE server on a fixed port it can kill and
// start again (a fault), and the device-side reads of the accounting (ledger, skipped.log, the
// snapshot folder), done with `adb exec-out cat`, never through kml's code.
import { spawn } from 'node:child_process';
import net from 'node:net';

export const ADB_BIN = process.env.KML_SOAK_ADB ?? process.env.KML_TEST_ADB ?? '/usr/bin/adb';

export interface AdbRun {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export function runAdb(port: number, args: string[], timeoutMs = 30_000): Promise<AdbRun> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ANDROID_ADB_SERVER_PORT: String(port) };
    delete env.ANDROID_SERIAL;
    const c = spawn(ADB_BIN, ['-P', String(port), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (d: Buffer) => out.push(d));
    c.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('error', (e) => { clearTimeout(t); reject(e); });
    c.once('close', (code) => { clearTimeout(t); resolve({ code, stdout: Buffer.concat(out), stderr: err }); });
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** A private adb server: start, kill (a fault), start again on the same port, stop for good. */
export class PrivateAdbServer {
  /** While false, the soak must not run any adb CLI command: it would start the server. */
  up = false;
  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateAdbServer> {
    let last = '';
    for (let i = 0; i < 3; i++) {
      const s = new PrivateAdbServer(await freePort());
      const r = await runAdb(s.port, ['start-server'], 30_000);
      if (r.code === 0) {
        s.up = true;
        return s;
      }
      last = r.stderr.trim();
    }
    throw new Error(`could not start a private adb server: ${last}`);
  }

  get env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, ANDROID_ADB_SERVER_PORT: String(this.port) };
    delete env.ANDROID_SERIAL;
    return env;
  }

  async kill(): Promise<void> {
    this.up = false;
    await runAdb(this.port, ['kill-server'], 15_000).catch(() => undefined);
  }

  async restart(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const r = await runAdb(this.port, ['start-server'], 30_000);
      if (r.code === 0) {
        this.up = true;
        return;
      }
      await new Promise((res) => setTimeout(res, 500));
    }
    throw new Error(`adb server on port ${this.port} did not start again`);
  }

  /** adb -s SERIAL shell cat FILE: the file's text, or undefined when it does not exist. */
  async catFile(serial: string, file: string, timeoutMs = 60_000): Promise<string | undefined> {
    const q = `'${file.replace(/'/g, `'\\''`)}'`;
    const r = await runAdb(this.port, ['-s', serial, 'shell', `[ -f ${q} ] || exit 3; cat ${q}`], timeoutMs);
    if (r.code === 3) return undefined;
    if (r.code !== 0) throw new Error(`adb -s ${serial} shell cat ${file} failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout.toString('utf8');
  }

  /** adb -s SERIAL shell CMD with its exit code (shell protocol v2). */
  async shell(serial: string, cmd: string, timeoutMs = 60_000): Promise<{ code: number | null; out: string; err: string }> {
    const r = await runAdb(this.port, ['-s', serial, 'shell', cmd], timeoutMs);
    return { code: r.code, out: r.stdout.toString('utf8'), err: r.stderr };
  }
}
