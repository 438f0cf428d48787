// kml's command line: wires commander to the command modules in host/commands/.
// Each module owns one sub-command (or a family, like `lab`) and exports register(program).
import { Command, CommanderError, Option } from 'commander';
import { ExitCode } from './errors.js';
import { LOG_LEVELS } from './log.js';
import { KML_VERSION } from './version.js';
import { registerDevices } from './commands/devices.js';
import { registerDoctor } from './commands/doctor.js';
import { registerCollect } from './commands/collect.js';
import { registerReport } from './commands/report.js';
import { registerLab } from './commands/lab.js';

export function buildProgram(): Command {
  const program = new Command('kml')
    .description('Hunt kernel memory leaks on Android devices with kmemleak.')
    .version(KML_VERSION, '-V, --version')
    .addOption(new Option('-P, --adb-port <port>', 'adb server port').env('ANDROID_ADB_SERVER_PORT'))
    .addOption(new Option('--log-level <level>', 'log verbosity').choices([...LOG_LEVELS]).default('info'))
    .showHelpAfterError('(run with --help for usage and examples)')
    .addHelpText('after', `
Examples:
  kml devices                                   list attached devices and whether they are ready
  kml doctor -s 0123456789ABCDEF                check that a device can run kmemleak collection
  kml collect --serial 0123456789ABCDEF --interval 600 --duration 8h
  kml report kml-runs/0123456789ABCDEF/<run-id>
  kml lab up                                    boot a lab device (real kmemleak kernel under QEMU)

Environment: ANDROID_SERIAL (default serial), ANDROID_ADB_SERVER_PORT (adb server port).
Exit codes: 0 ok, 1 check failed / --fail-on matched, 2 usage, 3 device unavailable,
  4 device not capable (root/kmemleak/debugfs), 5 local I/O, 6 conflict, 7 lab failure, 70 internal.`);
  program.exitOverride();
  registerDevices(program);
  registerDoctor(program);
  registerCollect(program);
  registerReport(program);
  registerLab(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; everything else commander rejects is a usage error.
      process.exitCode = e.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
      return;
    }
    process.stderr.write(`kml: internal error: ${(e as Error)?.message ?? String(e)}\n`);
    process.exitCode = ExitCode.INTERNAL;
  }
}
