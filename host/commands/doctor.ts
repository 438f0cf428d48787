// `kml doctor -s SERIAL`: can this device run kmemleak collection? One line per check.
import { Command, Option } from 'commander';
import { Adb, resolveAdbEndpoint } from '../adb/client.js';
import { ExitCode, KmlError } from '../errors.js';
import { formatCheckLines } from '../device/doctor-checks.js';
import { DEFAULT_OUT_DIR, runDoctor, type DoctorResult } from '../device/doctor.js';
import { action, globalOptions, serialFrom, stderrLogger } from './context.js';
import { terminalSafe } from '../terminal.js';

interface DoctorCliOptions {
  serial?: string;
  json?: boolean;
  mountDebugfs?: boolean;
  adbRoot?: boolean;
  out?: string;
}

export function renderDoctor(r: DoctorResult): string {
  const head = `kml doctor ${r.serial}${r.props['ro.product.model'] ? ` (${r.props['ro.product.model']})` : ''}`;
  const verdict = r.exitCode === ExitCode.OK ? 'READY: kmemleak collection can run on this device'
    : r.exitCode === ExitCode.DEVICE ? 'DEVICE UNAVAILABLE'
    : `NOT READY: ${r.checks.filter((c) => c.status === 'FAIL').length} check(s) failed`;
  const facts: string[] = [];
  if (r.kernel.release) facts.push(`kernel ${r.kernel.release}`);
  if (r.sdk) facts.push(`API ${r.sdk}`);
  if (r.rootMethod !== 'none') facts.push(`root: ${r.rootMethod}`);
  if (r.kernel.hz) facts.push(`HZ=${r.kernel.hz}`);
  return [head, ...formatCheckLines(r.checks), `${verdict}${facts.length ? `  [${facts.join(', ')}]` : ''}`].join('\n') + '\n';
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check that a device can run kmemleak collection (root, kernel config, boot params, debugfs, free space)')
    .addOption(new Option('-s, --serial <serial>', 'device serial (default: ANDROID_SERIAL, or the only attached device)'))
    .option('--json', 'print the full result as JSON (checks, root method, kernel facts)')
    .option('--mount-debugfs', 'mount debugfs at /sys/kernel/debug when it is not mounted (needs root)')
    .option('--no-adb-root', 'never run `adb root` (it restarts adbd); use su or an already-root adbd')
    .option('--out <dir>', 'host folder whose free space is checked (where `kml collect` stores runs)', DEFAULT_OUT_DIR)
    .addHelpText('after', `
Each check prints PASS, WARN or FAIL; every FAIL says what to change (defconfig lines, kernel
command line, a command to run). The probe that tells whether kmemleak is running writes
"dump=0" to /sys/kernel/debug/kmemleak, which changes nothing.

Examples:
  kml doctor -s 0123456789ABCDEF
  kml doctor -s 127.0.0.1:5555 --mount-debugfs
  kml doctor -s emulator-5554 --json | jq .rootMethod

Exit codes: 0 ready, 1 not ready (a check failed), 2 usage, 3 device unavailable.`)
    .action(action(async (o: DoctorCliOptions, cmd: Command) => {
      const g = globalOptions(cmd);
      const log = stderrLogger(g.logLevel === 'info' ? 'warn' : g.logLevel);
      const adb = new Adb(resolveAdbEndpoint({ port: g.adbPort }), { log });
      const serial = await pickSerial(adb, o.serial);
      const r = await runDoctor(serial, { adb, outDir: o.out, mountDebugfs: o.mountDebugfs, allowAdbRoot: o.adbRoot !== false, log });
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : terminalSafe(renderDoctor(r)));
      return r.exitCode;
    }));
}

/** -s / ANDROID_SERIAL, else the single attached device; a usage error when ambiguous or none. */
export async function pickSerial(adb: Adb, optSerial: string | undefined): Promise<string> {
  const given = serialFrom(optSerial);
  if (given.length) return given[0];
  const list = await adb.listDevices();
  if (list.length === 1) return list[0].serial;
  if (list.length === 0) {
    throw new KmlError(ExitCode.DEVICE, 'no device attached', { hint: 'attach a device (or `kml lab up`) and check `kml devices`' });
  }
  throw new KmlError(ExitCode.USAGE, `${list.length} devices attached; say which with -s SERIAL`, { hint: `attached: ${list.map((d) => d.serial).join(', ')}` });
}
