// The lab's dealings with the real adb server (through adbkit): connect a lab device, wait until a
// shell works, disconnect, run a command. The adb server is started on demand, like adb does.
import adbkit from '@devicefarmer/adbkit';
import net from 'node:net';
import { ExitCode, KmlError } from '../errors.js';

const { Adb } = adbkit;
type AdbClient = ReturnType<typeof Adb.createClient>;

export interface ShellResult {
  stdout: string;
  exitCode: number;
}

function withTimeout<T>(p: PromiseLike<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    Promise.resolve(p).finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class AdbLink {
  readonly client: AdbClient;

  constructor(readonly port: number, bin = process.env.KML_ADB || 'adb') {
    this.client = Adb.createClient({ host: '127.0.0.1', port, bin });
  }

  /** Is an adb server listening (without starting one)? */
  serverRunning(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: this.port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  }

  /** Start the server if needed (adbkit runs `adb -P PORT start-server`). */
  async ensureServer(): Promise<void> {
    try {
      await withTimeout(this.client.version(), 30_000, 'adb server');
    } catch (e) {
      throw new KmlError(ExitCode.DEVICE, `cannot reach or start the adb server on 127.0.0.1:${this.port}: ${(e as Error).message}`, {
        hint: 'install adb (apt-get install adb) or pass -P with the port of a running server',
      });
    }
  }

  async connect(serial: string): Promise<string> {
    const [host, port] = splitSerial(serial);
    return withTimeout(this.client.connect(host, port), 15_000, `adb connect ${serial}`);
  }

  async disconnect(serial: string): Promise<void> {
    const [host, port] = splitSerial(serial);
    await withTimeout(this.client.disconnect(host, port), 10_000, `adb disconnect ${serial}`).catch(() => undefined);
  }

  /** The device's state in the server's list ('device', 'offline', ...), or undefined when not listed. */
  async state(serial: string): Promise<string | undefined> {
    const list = await withTimeout(this.client.listDevices(), 10_000, 'adb devices');
    return list.find((d) => d.id === serial)?.type;
  }

  /** Run a command through `shell:` and return its output and exit status. */
  async shell(serial: string, command: string, timeoutMs = 30_000): Promise<ShellResult> {
    const run = async () => {
      const stream = await this.client.getDevice(serial).shell(`${command}; echo "__KML_RC=$?"`);
      const buf = await Adb.util.readAll(stream);
      const text = buf.toString('utf8');
      const m = /__KML_RC=(\d+)\s*$/.exec(text);
      return { stdout: m ? text.slice(0, m.index) : text, exitCode: m ? Number(m[1]) : -1 };
    };
    return withTimeout(run(), timeoutMs, `adb -s ${serial} shell`);
  }

  /**
   * Wait until `adb -s SERIAL shell echo` works. While the device is missing or offline, `adb connect`
   * is repeated: adb 29 drops a TCP device for good about 60 s after its connection breaks.
   */
  async waitShell(serial: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastConnect = 0;
    let lastError = '';
    while (Date.now() < deadline) {
      try {
        const state = await this.state(serial);
        if (state === 'device') {
          const r = await this.shell(serial, 'echo kml-lab-ready', 10_000);
          if (r.stdout.includes('kml-lab-ready')) return;
          lastError = `shell answered ${JSON.stringify(r.stdout.slice(0, 200))}`;
        } else {
          lastError = `state ${state ?? 'not listed'}`;
          if (state === undefined || Date.now() - lastConnect > 5000) {
            lastConnect = Date.now();
            await this.connect(serial).catch((e: Error) => (lastError = e.message));
          }
        }
      } catch (e) {
        lastError = (e as Error).message;
      }
      await sleep(150);
    }
    throw new KmlError(ExitCode.LAB, `${serial} did not answer \`adb shell echo\` within ${Math.round(timeoutMs / 1000)} s (${lastError})`);
  }

  /** Wait until the adb server lists the serial with the given state (or no longer lists it: 'gone'). */
  async waitState(serial: string, want: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const state = await this.state(serial).catch(() => undefined);
      if (state === want || (want === 'gone' && state === undefined)) return true;
      await sleep(100);
    }
    return false;
  }
}

export function splitSerial(serial: string): [string, number] {
  const m = /^(.+):(\d+)$/.exec(serial);
  if (!m) throw new KmlError(ExitCode.USAGE, `not a lab serial (HOST:PORT): ${JSON.stringify(serial)}`);
  return [m[1], Number(m[2])];
}
