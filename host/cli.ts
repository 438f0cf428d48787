// kml's command line: wires commander to the command modules in host/commands/.
// Each module owns one sub-command (or a family, like `lab`) and exports register(program).
import { Command, CommanderError, Option } from 'commander';
import { ExitCode } from './errors.js';
import { LOG_LEVELS } from './log.js';
import { KML_VERSION } from './version.js';

type Register = (program: Command) => void;

/**
 * The command modules, by the sub-commands each registers. Loaded on demand: `kml report` need
 * not load adbkit (device access) nor the lab, which is a tenth of a second and ~10 MB per run.
 */
const COMMAND_MODULES: Array<{ names: string[]; load: () => Promise<Register> }> = [
  { names: ['devices'], load: async () => (await import('./commands/devices.js')).registerDevices },
  { names: ['doctor'], load: async () => (await import('./commands/doctor.js')).registerDoctor },
  { names: ['collect', 'pull', 'status', 'stop'], load: async () => (await import('./commands/collect.js')).registerCollect },
  { names: ['report', 'diff'], load: async () => (await import('./commands/report.js')).registerReport },
  { names: ['lab'], load: async () => (await import('./commands/lab.js')).registerLab },
];

/** Global options that take a value (the sub-command is the first word that is neither). */
const GLOBAL_WITH_VALUE = new Set(['-P', '--adb-port', '--log-level']);

/** The sub-command argv names, or null (none, or not a known one: then every command is loaded, for help and suggestions). */
export function subcommandOf(argv: readonly string[]): string | null {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return null;
    if (GLOBAL_WITH_VALUE.has(a)) { i++; continue; }
    if (a.startsWith('-')) continue;
    return COMMAND_MODULES.some((m) => m.names.includes(a)) ? a : null;
  }
  return null;
}

/** The program with the command modules for `argv` registered (every one when argv is not given). */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = baseProgram();
  const name = argv ? subcommandOf(argv) : null;
  for (const m of COMMAND_MODULES) if (name === null || m.names.includes(name)) (await m.load())(program);
  return program;
}

function baseProgram(): Command {
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
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram(argv);
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
