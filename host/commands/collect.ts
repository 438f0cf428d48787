// `kml collect`, `kml pull`, `kml status`, `kml stop`: the collection workflow's commands.
// Option parsing and printing only; the work is in host/collect/session.ts.
import { Command, Option } from 'commander';
import { Adb, isOnline, resolveAdbEndpoint, validateSerial, type RootMethod } from '../adb/index.js';
import { DEFAULT_OUT_DIR } from '../device/doctor.js';
import { ExitCode, KmlError } from '../errors.js';
import { createLogger, type Logger, type LogLevel } from '../log.js';
import { ProgressRenderer } from '../collect/progress.js';
import {
  collectAll, collectFollowing, pullOne, statusOne, stopOne, type CollectRequest, type DeviceOutcome, type SessionBase, type StatusReport,
} from '../collect/session.js';
import { action, collectRepeatable, globalOptions, parseDuration, parsePositiveInt, serialFrom } from './context.js';
import { pickSerial } from './doctor.js';
import { terminalSafe } from '../terminal.js';

interface CommonCli {
  serial?: string[];
  out: string;
  json?: boolean;
  agentDir?: string;
  minHostFreeMb?: string;
  /** commander's --no-adb-root: false when given. */
  adbRoot?: boolean;
  testKmemleakPath?: string;
  testSkipDoctor?: boolean;
  testPollMs?: string;
}

interface CollectCli extends CommonCli {
  all?: boolean;
  interval: string;
  duration?: string;
  count?: string;
  detach?: boolean;
  scanWait: string;
  protocol: string;
  resume?: string;
  newRun?: boolean;
  minDeviceFreeMb?: string;
}

const EXIT_CODES = `Exit codes: 0 ok, 2 usage, 3 device unavailable (or snapshots left on it at the end),
  4 device not capable (doctor's report is printed), 5 local I/O (host disk), 6 another collector
  drives this device/store, 70 internal error. With several devices: the first failing device's code.`;

/** Logs on stderr only when it is not a TTY (JSON lines); on a TTY the progress view replaces them. */
function stderrMode(progress: boolean): SessionBase['stderrLogs'] {
  if (!process.stderr.isTTY) return 'json';
  return progress ? 'none' : 'pretty';
}

function processLogger(level: LogLevel, mode: SessionBase['stderrLogs']): Logger {
  return createLogger({ level, pretty: mode === 'pretty', jsonToStderr: mode === 'json' });
}

function commandLine(): string {
  return ['kml', ...process.argv.slice(2)].map((a) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** `roots`: the command may get root (status never does, so it has no --no-adb-root). */
function addCommon(cmd: Command, repeatable: boolean, roots = true): Command {
  cmd
    .addOption(repeatable
      ? new Option('-s, --serial <serial>', 'device serial; repeat for several devices (default: ANDROID_SERIAL, or the only device)').argParser(collectRepeatable)
      : new Option('-s, --serial <serial>', 'device serial (default: ANDROID_SERIAL, or the only device)').argParser(collectRepeatable))
    .option('--out <dir>', 'store folder: runs go to <out>/<serial>/<run-id>/', DEFAULT_OUT_DIR)
    .option('--json', 'print the result as JSON on stdout (for scripts)')
    .option('--agent-dir <dir>', 'agent folder on the device (default /data/local/tmp/kml)')
    .addOption(new Option('--test-kmemleak-path <path>', 'tests only: the file the agent reads as kmemleak').hideHelp())
    .addOption(new Option('--test-skip-doctor', 'tests only: skip doctor, assume adbd runs as root').hideHelp())
    .addOption(new Option('--test-poll-ms <ms>', 'tests only: how often to look for snapshots').hideHelp());
  if (roots) cmd.option('--no-adb-root', 'never run `adb root` to get root (it restarts adbd, which kills what runs from adb shell, e.g. a test workload); use su or an already-root adbd');
  return cmd;
}

function base(o: CommonCli, cmd: Command, progress: boolean): SessionBase {
  const g = globalOptions(cmd);
  const mode = stderrMode(progress);
  const log = processLogger(g.logLevel, mode);
  const adb = new Adb(resolveAdbEndpoint({ port: g.adbPort }), { log });
  const test = {
    kmemleakPath: o.testKmemleakPath,
    skipDoctorWithRoot: o.testSkipDoctor ? ('adbd-root' as RootMethod) : undefined,
    pollMs: o.testPollMs !== undefined ? parsePositiveInt('--test-poll-ms', o.testPollMs) : undefined,
  };
  return {
    adb, out: o.out, logLevel: g.logLevel, log, command: commandLine(), agentDir: o.agentDir, stderrLogs: mode, test, allowAdbRoot: o.adbRoot !== false,
    reserveBytes: o.minHostFreeMb !== undefined ? parsePositiveInt('--min-host-free-mb', o.minHostFreeMb) * 1024 * 1024 : undefined,
  };
}

function intervalSeconds(text: string): number {
  const ms = parseDuration('--interval', text);
  const s = Math.round(ms / 1000);
  if (s < 1) throw new KmlError(ExitCode.USAGE, '--interval must be at least 1 second');
  return s;
}

function printOutcome(d: DeviceOutcome): void {
  const st = d.status;
  const where = d.runDir ? ` in ${d.runDir}` : '';
  // device text (error messages, agent.log tails, meta reasons) reaches the terminal only made safe
  const err = (text: string) => process.stderr.write(terminalSafe(`kml: ${d.serial}: ${text}\n`));
  if (d.error && !st) {
    err(`error: ${d.error.message}`);
    if (d.error.hint) err(`${d.error.hint.includes('\n') ? 'doctor says:\n' : 'hint: '}${d.error.hint}`);
    return;
  }
  const pulled = st ? `${st.stored} snapshot(s) stored${st.conflicts ? `, ${st.conflicts} conflict(s) kept beside` : ''}` : 'nothing to pull';
  const end = d.end ? (d.end.clean ? ', run closed' : `, run left open (${d.end.message ?? d.end.reason})`) : '';
  process.stdout.write(terminalSafe(`${d.serial}: ${pulled}${where}${end}\n`));
  if (d.error) {
    err(d.error.message);
    if (d.error.hint) err(`hint: ${d.error.hint}`);
  }
  const unv = st ? Object.entries(st.unverifiable) : [];
  for (const [seq, why] of unv) err(`snapshot ${seq} left on the device: ${why}`);
}

function jsonOutcome(d: DeviceOutcome): Record<string, unknown> {
  const st = d.status;
  return {
    serial: d.serial, exitCode: d.exitCode, runDir: d.runDir, resumed: d.resumed, end: d.end,
    stored: st?.stored, conflicts: st?.conflicts, alreadyStored: st?.alreadyStored, waitingOnDevice: st?.waitingOnDevice,
    skippedTotal: st?.skippedTotal, unverifiable: st?.unverifiable, recoveries: st?.recoveries, error: d.error,
  };
}

async function resolveSerials(adb: Adb, given: string[] | undefined): Promise<string[]> {
  // A malformed serial is a usage error here, before it names a store folder or a lock.
  const s = serialFrom(given).map(validateSerial);
  if (s.length) return [...new Set(s)];
  return [await pickSerial(adb, undefined)];
}

/** Ctrl-C / SIGTERM: first one stops cleanly (final pull, agent stop); a second quits at once. */
function stopOnSignals(ac: AbortController, log: Logger, quiet: boolean): () => void {
  let count = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      log.info({ signal: sig }, 'stop requested: final pull, then stopping the agent');
      if (!quiet) process.stderr.write('\nkml: stopping: final pull, then stopping the agent (press Ctrl-C again to quit at once; the run stays resumable)\n');
      ac.abort();
    } else {
      process.stderr.write('kml: quitting now; rerun the same command (or `kml pull`/`kml stop`) to continue the run\n');
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

function registerCollectCommand(program: Command): void {
  const cmd = program
    .command('collect')
    .description('install the device agent and pull its numbered kmemleak snapshots into a local store, exactly once');
  addCommon(cmd, true)
    .option('--all', 'collect from every device in state "device", and from each that gets there later, until stopped')
    .option('--interval <seconds>', 'seconds between snapshots (also 10m, 1h)', '600')
    .option('--duration <time>', 'stop after this long since the run started (e.g. 8h, 90m)')
    .option('--count <n>', 'stop once the run holds N snapshots')
    .option('--detach', 'start the agent, pull what is there, and exit; the agent keeps running')
    .option('--scan-wait <seconds>', 'seconds between the two kmemleak scans of a cycle (>= 5)', '5')
    .addOption(new Option('--protocol <name>', 'scan protocol: kml (scan, wait, scan, read, clear) or seed (read, clear, scan)').choices(['kml', 'seed']).default('kml'))
    .option('--resume <run-dir>', 'continue this run folder (default: the latest unclosed run of the device)')
    .option('--new-run', 'always start a new run folder')
    .option('--min-host-free-mb <mb>', 'pause pulling while the store has less free space than this beyond a snapshot (default 8)')
    .option('--min-device-free-mb <mb>', 'the agent skips cycles while the device has less free space (default 50)')
    .addHelpText('after', `
The collector runs \`kml doctor\` first and refuses, with doctor's report, when the device is not
ready. It then installs and starts the agent (detached on the device), and pulls every published
snapshot through adb sync: verified by size and sha256 against the device, written atomically,
recorded in manifest.jsonl, and only then deleted on the device. It survives USB/TCP drops, adb
server restarts, device reboots (new boot segment, agent restarted) and a full host disk (pulling
pauses; the device keeps its snapshots). Rerunning the same command after a crash or kill -9
continues the same run folder; nothing is lost or stored twice.

--all starts a worker for every device in state "device", and for each device that gets there later
(plugged in, booted, authorized), for as long as any worker runs: until Ctrl-C, or until each device
reached its --count/--duration. A device that fails doctor is reported and not retried.

Progress is shown when stdout is a terminal; otherwise kml prints only logs (JSON lines on stderr).
Every run also logs to <run>/kml.log. --count and --duration count from the run's start, so a
rerun continues towards the same goal.

Examples:
  kml collect -s 0123456789ABCDEF --interval 600 --duration 8h
  kml collect -s 127.0.0.1:5555 --interval 10 --count 3
  kml collect --all --interval 600 --out /data/kml-runs
  kml collect -s emulator-5554 --interval 600 --detach     # then: kml status / kml pull / kml stop
  kml collect -s X --interval 600 --protocol seed          # the recipe's read-clear-scan loop
  kml collect -s X --interval 600 --no-adb-root            # su only: adbd (and your adb shell workload) untouched

${EXIT_CODES}`)
    .action(action(async (o: CollectCli, c: Command) => {
      const progress = Boolean(process.stdout.isTTY) && !o.json;
      const b = base(o, c, progress);
      const intervalS = intervalSeconds(o.interval);
      const scanWaitS = parsePositiveInt('--scan-wait', o.scanWait);
      if (scanWaitS < 5) throw new KmlError(ExitCode.USAGE, '--scan-wait must be at least 5 seconds (kmemleak ignores objects younger than 5 s)');
      const count = o.count !== undefined ? parsePositiveInt('--count', o.count) : undefined;
      const durationMs = o.duration !== undefined ? parseDuration('--duration', o.duration) : undefined;
      if (o.resume && o.newRun) throw new KmlError(ExitCode.USAGE, 'use either --resume or --new-run, not both');
      if (o.all && o.serial?.length) throw new KmlError(ExitCode.USAGE, 'use either --serial or --all, not both');
      const serials = o.all ? [] : await resolveSerials(b.adb, o.serial);
      if (o.resume && (o.all || serials.length > 1)) throw new KmlError(ExitCode.USAGE, '--resume names one run folder: use it with one --serial');
      const minDev = o.minDeviceFreeMb !== undefined ? parsePositiveInt('--min-device-free-mb', o.minDeviceFreeMb) * 1024 : undefined;
      // the agent does 32-bit shell arithmetic: its KiB figure must stay below 10^9
      if (minDev !== undefined && minDev > 999_999_999) throw new KmlError(ExitCode.USAGE, '--min-device-free-mb must be at most 976562');
      const renderer = progress ? new ProgressRenderer(process.stdout) : undefined;
      const ac = new AbortController();
      const unhook = stopOnSignals(ac, b.log, Boolean(o.json));
      renderer?.start();
      try {
        const req: CollectRequest = {
          ...b, minFreeKb: minDev,
          agent: { intervalS, scanWaitS, protocol: o.protocol === 'seed' ? 'seed' : 'double' },
          count, durationMs, detach: o.detach, resume: o.resume, newRun: o.newRun,
          onStatus: renderer ? (st) => renderer.update(st) : undefined,
        };
        const r = o.all ? await collectFollowing(req, ac.signal) : await collectAll(req, serials, ac.signal);
        renderer?.stop();
        if (o.json) process.stdout.write(JSON.stringify({ ok: r.exitCode === 0, exitCode: r.exitCode, devices: r.devices.map(jsonOutcome) }, null, 2) + '\n');
        else {
          for (const d of r.devices) printOutcome(d);
          if (o.detach && r.exitCode === 0) process.stdout.write('the agent keeps running on the device; `kml status`, `kml pull` and `kml stop` continue from here\n');
        }
        return r.exitCode;
      } finally {
        unhook();
        renderer?.stop();
      }
    }));
}

function registerPull(program: Command): void {
  const cmd = program.command('pull').description('pull every complete snapshot from the device into the store once (the agent keeps running)');
  addCommon(cmd, false)
    .option('--resume <run-dir>', 'store into this run folder (default: the latest unclosed run, or a new one)')
    .addHelpText('after', `
Use it after \`kml collect --detach\`, or after a collector was killed. Snapshots already in the
store are not stored again (they are only deleted on the device).

Examples:
  kml pull -s 0123456789ABCDEF
  kml pull -s 127.0.0.1:5555 --out /data/kml-runs --json

${EXIT_CODES}`)
    .action(action(async (o: CommonCli & { resume?: string }, c: Command) => {
      const b = base(o, c, false);
      const [serial] = await resolveSerials(b.adb, o.serial);
      const d = await pullOne({ ...b, resume: o.resume }, serial);
      if (o.json) process.stdout.write(JSON.stringify({ ok: d.exitCode === 0, ...jsonOutcome(d) }, null, 2) + '\n');
      else printOutcome(d);
      return d.exitCode;
    }));
}

function fmtWall(s: number | undefined): string {
  return s === undefined ? '-' : new Date(s * 1000).toISOString().replace('.000Z', 'Z');
}

export function renderStatus(r: StatusReport): string {
  const lines = [`kml status ${r.serial}`];
  const c = r.collector;
  lines.push(`collector:  ${c.running ? `running (pid ${c.pid}, since ${c.startedAt})` : c.stale ? `not running (stale lock of pid ${c.pid})` : 'not running'}`);
  if (r.run) {
    const end = r.run.ended ? (r.run.ended.clean ? `closed ${r.run.ended.at} (${r.run.ended.reason})` : `open (${r.run.ended.reason}: ${r.run.ended.message ?? ''})`) : 'open';
    lines.push(`run:        ${r.run.dir} (${end})`);
    lines.push(`stored:     ${r.run.stored} snapshot(s)${r.run.conflicts ? `, ${r.run.conflicts} conflict(s)` : ''} in ${r.run.boots} boot segment(s)`);
    if (r.run.last) lines.push(`last:       #${r.run.last.seq} pulled ${r.run.last.pulledAt}${r.run.last.leakCount != null ? `, ${r.run.last.leakCount} leak(s)` : ''}`);
  } else {
    lines.push('run:        none in this store');
  }
  const d = r.device;
  lines.push(`device:     ${d.state}${d.error ? ` (${d.error})` : ''}`);
  if (d.agent) {
    const a = d.agent;
    lines.push(`agent:      ${a.alive ? `alive (pid ${a.pid}, ${a.state ?? '?'})` : 'not running'}; last cycle ${fmtWall(a.lastCycleWall)}, next ${a.alive ? fmtWall(a.nextCycleWall) : '-'} (device clock)`);
    if (a.lastError) lines.push(`last error: ${a.lastError}`);
    if (a.kmemleak && a.kmemleak !== 'ok') lines.push(`kmemleak:   ${a.kmemleak}`);
  }
  if (d.waitingOnDevice !== undefined) lines.push(`waiting:    ${d.waitingOnDevice} snapshot(s) on the device not yet pulled`);
  if (d.skippedTotal) lines.push(`skipped:    ${d.skippedTotal} cycle(s) skipped by the agent (device storage low)`);
  return lines.join('\n') + '\n';
}

function registerStatus(program: Command): void {
  const cmd = program.command('status').description('is the agent alive, what waits on the device, what is stored (read-only)');
  addCommon(cmd, false, false)
    .addHelpText('after', `
Never restarts adbd and never takes the store lock, so it is safe next to a running collector.

Examples:
  kml status -s 0123456789ABCDEF
  kml status -s 127.0.0.1:5555 --json | jq .device.waitingOnDevice

Exit codes: 0 the report was produced, 2 usage, 3 device unavailable (the report is still printed).`)
    .action(action(async (o: CommonCli, c: Command) => {
      const b = base(o, c, false);
      const [serial] = await resolveSerials(b.adb, o.serial);
      const r = await statusOne(b, serial);
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : terminalSafe(renderStatus(r)));
      return isOnline(r.device.state) ? ExitCode.OK : ExitCode.DEVICE;
    }));
}

function registerStop(program: Command): void {
  const cmd = program.command('stop').description('stop the device agent, pull what is left, and close the run');
  addCommon(cmd, false)
    .option('--wait <time>', 'how long to wait for the final pull (a running collector finishes its own)', '180s')
    .addHelpText('after', `
When a collector on this host drives the device, it is asked to stop (SIGTERM) and kml waits
for it to finish its final pull; a \`kml pull\` in progress is waited for (up to --wait), not
signalled; otherwise kml stops the agent and pulls here.

Examples:
  kml stop -s 0123456789ABCDEF
  kml stop -s 127.0.0.1:5555 --out /data/kml-runs --json

${EXIT_CODES}`)
    .action(action(async (o: CommonCli & { wait: string }, c: Command) => {
      const b = base(o, c, false);
      const [serial] = await resolveSerials(b.adb, o.serial);
      const d = await stopOne({ ...b, waitMs: parseDuration('--wait', o.wait) }, serial);
      if (o.json) process.stdout.write(JSON.stringify({ ok: d.exitCode === 0, collectorPid: d.collectorPid, ...jsonOutcome(d) }, null, 2) + '\n');
      else {
        if (d.collectorPid) process.stdout.write(`${serial}: the running collector (pid ${d.collectorPid}) stopped\n`);
        printOutcome(d);
      }
      return d.exitCode;
    }));
}

export function registerCollect(program: Command): void {
  registerCollectCommand(program);
  registerPull(program);
  registerStatus(program);
  registerStop(program);
}
