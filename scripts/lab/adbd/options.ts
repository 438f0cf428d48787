// Command line of the device-side adbd. No dependencies: node:util parseArgs only.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { MAX_PAYLOAD, MAX_PAYLOAD_V1 } from './packet.js';

export interface AdbdOptions {
  port: number;
  listen: string;
  shell: string;
  product: string;
  model: string;
  device: string;
  rebootCommand: string | null;
  maxPayload: number;
  pidfile?: string;
  logFile?: string;
  exitOnStdinEof: boolean;
  /** Run as this uid (and gid) once listening: adbd on a build where it is not root. */
  shellUid: number | null;
  /** service.adb.root of a debuggable build, kept in this file: `root:`/`unroot:` set it and restart adbd. */
  rootProp: string | null;
}

export const USAGE = `Usage: node dist/scripts/lab/adbd/main.js [options]

A device-side adb daemon (TCP, no AUTH) for kml's lab device: shell (v1, v2), exec, sync,
root, reboot. Runs inside the lab guest, or on the host for protocol tests.

Options:
  --port N            TCP port (default 5555; 0 = pick a free one). The daemon prints
                      "adbd listening on ADDR:PORT" once it listens.
  --listen ADDR       address to bind (default 127.0.0.1; the lab guest uses 0.0.0.0 and
                      QEMU forwards only a loopback port of the host to it)
  --shell PATH        shell for commands (default /system/bin/sh if present, else /bin/sh)
  --product NAME      ro.product.name in the banner (default kml_lab)
  --model NAME        ro.product.model in the banner (default kml_lab)
  --device NAME       ro.product.device in the banner (default kml_lab)
  --reboot-cmd CMD    shell command run by "reboot:" (default: "reboot -f" when
                      /system/bin/sh exists, i.e. in the lab guest; otherwise none: the
                      stream is just closed). --reboot-cmd '' disables it.
  --max-payload N     largest packet payload offered in CNXN (default 1048576)
  --pidfile FILE      write our pid here (removed on exit)
  --log FILE          append JSON log lines here (default: stderr)
  --exit-on-stdin-eof stop when stdin reaches end of file: a test harness passes a pipe, so
                      the daemon goes away with it even if the harness crashes
  --shell-uid N       once listening, run as uid N and gid N (Android's shell user is 2000):
                      adbd on a userdebug build without \`adb root\`, or on a user build.
                      Shells, exec and sync then have that user's rights.
  --root-prop FILE    a debuggable build: FILE holds service.adb.root. "root:" (when not root)
                      writes 1 there and "unroot:" (when root) writes 0, answer as adbd does,
                      and exit: the device's init starts adbd again, which reads FILE.
                      Without it a non-root adbd is a production build ("adbd cannot run as
                      root in production builds").
  --help              this text

Examples:
  node dist/scripts/lab/adbd/main.js --port 5555 --listen 0.0.0.0 --log /data/local/tmp/adbd.log
  node dist/scripts/lab/adbd/main.js --port 0 --reboot-cmd ''   # host test: any free port
`;

export class UsageError extends Error {
  override name = 'UsageError';
}

const BANNER_VALUE = /^[A-Za-z0-9._+\-]{1,64}$/;

function int(name: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bannerValue(name: string, value: string): string {
  // ':' and ';' would break the banner; adb also shows these in `adb devices -l`.
  if (!BANNER_VALUE.test(value)) throw new UsageError(`${name} must be 1-64 characters of [A-Za-z0-9._+-], got ${JSON.stringify(value)}`);
  return value;
}

export function defaultShell(): string {
  return fs.existsSync('/system/bin/sh') ? '/system/bin/sh' : '/bin/sh';
}

/** Parse argv (without node and script). Returns null when --help was asked for. */
export function parseOptions(argv: string[]): AdbdOptions | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        listen: { type: 'string' },
        shell: { type: 'string' },
        product: { type: 'string' },
        model: { type: 'string' },
        device: { type: 'string' },
        'reboot-cmd': { type: 'string' },
        'max-payload': { type: 'string' },
        pidfile: { type: 'string' },
        log: { type: 'string' },
        'exit-on-stdin-eof': { type: 'boolean' },
        'shell-uid': { type: 'string' },
        'root-prop': { type: 'string' },
        help: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const v = parsed.values;
  if (v.help) return null;
  const shell = v.shell ?? defaultShell();
  if (!fs.existsSync(shell)) throw new UsageError(`--shell ${shell}: no such file`);
  const inGuest = fs.existsSync('/system/bin/sh');
  const rebootCommand = v['reboot-cmd'] !== undefined ? v['reboot-cmd'] || null : inGuest ? 'reboot -f' : null;
  return {
    port: v.port !== undefined ? int('--port', v.port, 0, 65535) : 5555,
    listen: v.listen ?? '127.0.0.1',
    shell,
    product: bannerValue('--product', v.product ?? 'kml_lab'),
    model: bannerValue('--model', v.model ?? 'kml_lab'),
    device: bannerValue('--device', v.device ?? 'kml_lab'),
    rebootCommand,
    maxPayload: v['max-payload'] !== undefined ? int('--max-payload', v['max-payload'], MAX_PAYLOAD_V1, MAX_PAYLOAD) : MAX_PAYLOAD,
    pidfile: v.pidfile,
    logFile: v.log,
    exitOnStdinEof: v['exit-on-stdin-eof'] ?? false,
    shellUid: v['shell-uid'] !== undefined ? int('--shell-uid', v['shell-uid'], 1, 2 ** 31 - 2) : null,
    rootProp: v['root-prop'] || null,
  };
}
