// Host side of the device agent contract (agent/kml-agent.sh): install it, start it detached,
// ask how it is doing, list/read/delete its published snapshots, stop it.
//
//   const agent = new AgentControl(adb, serial, { root: await ensureRoot(adb, serial) });
//   await agent.install();                                   // push 0755, verify sha256 + size
//   await agent.start({ interval: 600 });                    // returns once the heartbeat is ours
//   for (const n of await agent.listComplete()) { const meta = await agent.readMeta(n); ... }
//   await agent.deleteSnapshot(n);                           // only after the host copy is durable
//   await agent.stop();                                      // TERM, wait, KILL
//
// Everything that reaches the device shell is quoted with shq(); device names are validated
// (digits only) before they become paths. Commands that touch the agent's root-owned files run
// through asRoot(); listing and reading go through sync (files are 0644, dirs 0755).
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Adb, AdbError, asRoot, type RootMethod, shq, shqJoin } from '../adb/index.js';
import { ExitCode, KmlError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  type AgentHeartbeat, isSnapshotNumber, MetaParseError, parseMeta, parseSkipped, parseStatusProbe, probeSaysRunning,
  type SkippedEntry, type SnapshotMeta, snapshotNumber, STATUS_HEARTBEAT_MARK, type StatusProbe,
} from './agent-files.js';

export const DEFAULT_AGENT_DIR = '/data/local/tmp/kml';
export const AGENT_FILE = 'kml-agent.sh';
/** Make `paths` (quoted) root's. The root shell is uid 0 on a device; a test adbd run by a user is not, and owns them already. */
const chownRoot = (paths: string): string => `{ [ "$(id -u)" != 0 ] || chown 0:0 ${paths}; }`;
/** The agent script shipped with kml (dist/host/device → repo root/agent). */
export const AGENT_SOURCE = fileURLToPath(new URL('../../../agent/kml-agent.sh', import.meta.url));

/** Options of one agent run; undefined fields use the agent's defaults. */
export interface AgentRunConfig {
  /** Seconds between cycle starts. */
  interval: number;
  /** Seconds between the two scans (>= 5). */
  scanWait?: number;
  protocol?: 'double' | 'seed';
  /** Skip cycles while the agent dir has less free space (KiB). */
  minFreeKb?: number;
  /** kmemleak file on the device. */
  kmemleakPath?: string;
  /** Stop after N cycles (0/undefined = until stopped). */
  count?: number;
}

export interface AgentControlOptions {
  /** How to be root on this device (from ensureRoot()). */
  root: RootMethod;
  /** Agent directory on the device. */
  dir?: string;
  /** Shell that runs the agent on the device (Android: `sh` = mksh). */
  agentShell?: string;
  /** Local agent script to install (default: the one shipped with kml). */
  source?: string;
  log?: Logger;
  /** Deadline for each small device command (ms). */
  commandTimeoutMs?: number;
}

export interface InstallResult {
  path: string;
  bytes: number;
  sha256: string;
  /** false when the device already had this exact script. */
  changed: boolean;
}

export interface AgentStatus {
  /** agent.pid names a live process whose cmdline is kml-agent. */
  running: boolean;
  pid?: number;
  cmdline?: string;
  heartbeat?: AgentHeartbeat;
  /** Seconds since the heartbeat was written (device clock), when known. */
  heartbeatAgeS?: number;
}

export interface StartResult {
  pid: number;
  /** false: an agent was already running and was left alone. */
  launched: boolean;
  /** How long the launching shell call took (ms): it must return at once. */
  launchMs: number;
  /** The agent ran its --count cycles and exited before start() saw it running. */
  finished?: boolean;
}

export interface StopResult {
  /** term: exited after SIGTERM; kill: needed SIGKILL; not-running: nothing to stop. */
  outcome: 'term' | 'kill' | 'not-running';
  pid?: number;
}

/** A device directory we are willing to paste into commands (quoted anyway) and rm under. */
export function validateAgentDir(dir: string): string {
  if (!/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/.test(dir) || dir.split('/').some((s) => s === '..' || s === '.') || dir.includes('//')) {
    throw new KmlError(ExitCode.USAGE, `invalid agent directory on the device: ${JSON.stringify(dir)}`, {
      hint: 'use an absolute path of plain characters, e.g. /data/local/tmp/kml',
    });
  }
  return dir;
}

/** The agent's command-line arguments for a run configuration. */
export function agentArgs(dir: string, cfg: AgentRunConfig): string[] {
  const args = ['--dir', dir, '--interval', String(cfg.interval)];
  if (cfg.scanWait !== undefined) args.push('--scan-wait', String(cfg.scanWait));
  if (cfg.protocol !== undefined) args.push('--protocol', cfg.protocol);
  if (cfg.minFreeKb !== undefined) args.push('--min-free-kb', String(cfg.minFreeKb));
  if (cfg.kmemleakPath !== undefined) args.push('--kmemleak', cfg.kmemleakPath);
  if (cfg.count !== undefined && cfg.count > 0) args.push('--count', String(cfg.count));
  return args;
}

/** Files the agent keeps in its folder (besides snapshots/ and the script). */
const AGENT_STATE_FILES = ['agent.pid', 'agent.log', 'agent.log.1', 'heartbeat', 'heartbeat.tmp', 'seq', 'seq.tmp', 'skipped.log', 'ledger', 'kmsg.marker', 'kmsg.marker.tmp'];

/**
 * The launch line. It must return at once through adb: every stdio of the agent goes to files
 * (adbd keeps the stream open while anyone holds its pty/pipes), `setsid` leaves the adb session
 * (no SIGHUP when it ends), `nohup` covers the moment before, and the background job is a single
 * command after `;` — `cd DIR && setsid … &` backgrounds the whole list in a subshell that mksh
 * then waits for, and the adb call never returns (lab-feasibility.md §9).
 */
export function launchLine(dir: string, cfg: AgentRunConfig, shell = 'sh'): string {
  const script = `${dir}/${AGENT_FILE}`;
  const cmd = `${shq(shell)} ${shq(script)} ${shqJoin(agentArgs(dir, cfg))} </dev/null >>${shq(`${dir}/agent.log`)} 2>&1`;
  return `cd ${shq(dir)} || exit 1; umask 022; if command -v setsid >/dev/null 2>&1; then setsid nohup ${cmd} & else nohup ${cmd} & fi; exit 0`;
}

/**
 * Shell test: /proc/$pid/cmdline names kml-agent (the agent script's is_running_agent). The
 * arguments are NUL-separated: tr joins them; where tr is missing (some toybox builds) grep reads
 * the file as it is (toybox and GNU grep look past a NUL; busybox grep does not, but has tr).
 */
const PID_IS_AGENT = '{ c=$(tr \'\\000\' \' \' < "/proc/$pid/cmdline" 2>/dev/null) || { grep -q -F kml-agent "/proc/$pid/cmdline" 2>/dev/null && c=kml-agent; }; case "$c" in *kml-agent*) true ;; *) false ;; esac; }';

/** One shell command printing agent.pid, RUN/TERM, the pid's cmdline and the heartbeat. */
export function statusProbeCommand(dir: string): string {
  const d = shq(dir);
  return [
    `pid=; [ -r ${d}/agent.pid ] && read -r pid < ${d}/agent.pid`,
    'case "$pid" in ""|*[!0-9]*) pid= ;; esac',
    'echo "pidfile=$pid"',
    'if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then echo RUN; else echo TERM; fi',
    `if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then printf 'cmdline=%s\\n' "$(tr '\\000' ' ' < "/proc/$pid/cmdline" 2>/dev/null)"; fi`,
    `if [ -n "$pid" ] && ${PID_IS_AGENT}; then echo agent=1; fi`,
    'echo "now=$(date +%s)"',
    `echo ${shq(STATUS_HEARTBEAT_MARK)}`,
    `cat ${d}/heartbeat 2>/dev/null`,
    'exit 0',
  ].join('; ');
}

/**
 * Send SIG to `pid` only if it is still a kml-agent; prints SENT or GONE. TERM goes to the agent
 * alone (it finishes its step; its children ignore TERM on purpose). KILL goes to its process
 * group when it leads one (setsid made it so), so a scan-wait `sleep` does not linger.
 */
function signalCommand(pid: number, sig: 'TERM' | 'KILL'): string {
  const send = sig === 'KILL' ? '{ kill -KILL -"$pid" 2>/dev/null || kill -KILL "$pid"; }' : 'kill -TERM "$pid"';
  return [
    `pid=${shq(String(pid))}`,
    `if ${PID_IS_AGENT}`,
    `then ${send} && echo SENT; else echo GONE; fi`,
  ].join('; ');
}

/**
 * What a status poll after a launch says: our agent runs (its heartbeat names the live pid), or
 * it already ran its --count cycles and exited (a short run can finish before the first poll:
 * the heartbeat is new since the launch and says "stopped"), or not yet.
 */
export function launchOutcome(before: AgentStatus, now: AgentStatus): 'running' | 'finished' | 'pending' {
  const hb = now.heartbeat;
  if (now.running && now.pid !== undefined && hb?.pid === now.pid && hb.state !== 'stopped') return 'running';
  if (!now.running && hb?.pid !== undefined && hb.state === 'stopped'
    && JSON.stringify(hb.raw) !== JSON.stringify(before.heartbeat?.raw ?? null)) return 'finished';
  return 'pending';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class AgentControl {
  readonly adb: Adb;
  readonly serial: string;
  readonly dir: string;
  readonly root: RootMethod;
  private readonly shellName: string;
  private readonly source: string;
  private readonly log?: Logger;
  private readonly timeoutMs: number;

  constructor(adb: Adb, serial: string, opts: AgentControlOptions) {
    this.adb = adb;
    this.serial = serial;
    this.dir = validateAgentDir(opts.dir ?? DEFAULT_AGENT_DIR);
    this.root = opts.root;
    this.shellName = opts.agentShell ?? 'sh';
    this.source = opts.source ?? AGENT_SOURCE;
    this.log = opts.log;
    this.timeoutMs = opts.commandTimeoutMs ?? 20_000;
  }

  get scriptPath(): string {
    return `${this.dir}/${AGENT_FILE}`;
  }

  snapshotPath(n: number): string {
    if (!isSnapshotNumber(n)) throw new KmlError(ExitCode.INTERNAL, `not a snapshot number: ${String(n)}`);
    return `${this.dir}/snapshots/${n}`;
  }

  /** Run a command as root; returns stdout, throws AdbError('command-failed') on non-zero exit. */
  private rootShellOk(cmd: string, timeoutMs = this.timeoutMs): Promise<string> {
    return this.adb.shellOk(this.serial, asRoot(this.root, cmd), { timeoutMs });
  }

  // ------------------------------------------------------------------------------- install

  /** What the device has at the script path: size, hash (sha256, else md5) and mode, or undefined. */
  private async remoteScriptInfo(): Promise<{ bytes: number; hashKind: string; hash: string; mode: string } | undefined> {
    const f = shq(this.scriptPath);
    const out = await this.rootShellOk([
      `[ -f ${f} ] || { echo missing; exit 0; }`,
      `echo "size=$(wc -c < ${f})"`,
      `echo "mode=$(stat -c %a ${f} 2>/dev/null)"`,
      `if command -v sha256sum >/dev/null 2>&1; then echo "sha256=$(sha256sum ${f})"; elif command -v md5sum >/dev/null 2>&1; then echo "md5=$(md5sum ${f})"; fi`,
    ].join('; '));
    if (/^missing$/m.test(out)) return undefined;
    const size = /^size=\s*(\d+)/m.exec(out);
    const mode = /^mode=(\d*)/m.exec(out);
    const h = /^(sha256|md5)=([0-9a-f]+)/m.exec(out);
    return { bytes: size ? Number(size[1]) : -1, hashKind: h?.[1] ?? 'none', hash: h?.[2] ?? '', mode: mode?.[1] ?? '' };
  }

  /**
   * A folder left group/world-writable by someone else before us may hold planted symlinks (the
   * root agent would append its ledger or log to their targets, or publish snapshots where they
   * point): remove those, then nobody but root may write there. Symlinks are removed, never followed.
   * The folders become root's: with `su` adbd is the shell user, and a folder it made (or a user
   * made with `adb shell mkdir`) would stay writable by it.
   */
  private lockDownCommand(): string {
    const snaps = shq(`${this.dir}/snapshots`);
    return [
      'umask 022',
      `if [ -L ${snaps} ]; then rm -f ${snaps}; fi`,
      `mkdir -p ${snaps}`,
      chownRoot(`${shq(this.dir)} ${snaps}`),
      `chmod go-w ${shq(this.dir)} ${snaps}`,
      `for f in ${shqJoin(AGENT_STATE_FILES.map((f) => `${this.dir}/${f}`))}; do if [ -L "$f" ]; then rm -f "$f" || exit 1; elif [ -f "$f" ]; then chmod go-w "$f" || exit 1; fi; done`,
    ].join(' && ');
  }

  /**
   * Put the agent script at $DIR/kml-agent.sh, mode 0755, and verify size + hash on the device.
   * Pushed next to $DIR first, into a private staging folder (the shell user can write
   * /data/local/tmp even when $DIR is root-owned), then moved in and renamed over the old script:
   * a running agent keeps reading its own (old) inode, never a half-written file.
   */
  async install(): Promise<InstallResult> {
    let script: Buffer;
    try {
      script = await readFile(this.source);
    } catch (e) {
      throw new KmlError(ExitCode.INTERNAL, `cannot read the agent script ${this.source}: ${(e as Error).message}`);
    }
    const sha256 = createHash('sha256').update(script).digest('hex');
    const md5 = createHash('md5').update(script).digest('hex');
    const matches = (info: Awaited<ReturnType<AgentControl['remoteScriptInfo']>>) =>
      info !== undefined && info.bytes === script.length && info.mode === '755'
      && (info.hashKind === 'sha256' ? info.hash === sha256 : info.hashKind === 'md5' ? info.hash === md5 : true);

    if (matches(await this.remoteScriptInfo())) {
      await this.rootShellOk(this.lockDownCommand());
      return { path: this.scriptPath, bytes: script.length, sha256, changed: false };
    }
    // adbd gives a pushed file its owner bits for group and other too (0755 → 0777): stage it in a
    // folder private to the adbd user, and make it 0755 before it leaves that folder.
    const stageDir = `${path.posix.dirname(this.dir)}/.kml-stage-${randomBytes(6).toString('hex')}`;
    const staging = `${stageDir}/${AGENT_FILE}`;
    const tmp = `${this.scriptPath}.tmp`;
    try {
      await this.adb.shellOk(this.serial, `(umask 022 && mkdir -p ${shq(path.posix.dirname(stageDir))}) && umask 077 && mkdir ${shq(stageDir)}`, { timeoutMs: this.timeoutMs });
      await this.adb.push(this.serial, script, staging, { mode: 0o755, timeoutMs: 60_000 });
      await this.rootShellOk([
        'umask 022',
        this.lockDownCommand(),
        chownRoot(shq(staging)), // pushed by adbd: the shell user's file when adbd is not root
        `chmod 0755 ${shq(staging)}`,
        `mv -f ${shq(staging)} ${shq(tmp)}`,
        `mv -f ${shq(tmp)} ${shq(this.scriptPath)}`,
        `rm -rf ${shq(stageDir)}`,
      ].join(' && '));
    } catch (e) {
      await this.adb.shell(this.serial, asRoot(this.root, `rm -rf ${shq(stageDir)}; rm -f ${shq(tmp)}`), { timeoutMs: this.timeoutMs }).catch(() => undefined);
      throw e;
    }
    const info = await this.remoteScriptInfo();
    if (!matches(info)) {
      throw new KmlError(ExitCode.DEVICE, `agent install on ${this.serial} did not verify: the device has ${JSON.stringify(info ?? 'no file')}, expected ${script.length} bytes, sha256 ${sha256}, mode 755`, {
        hint: `check free space and permissions of ${this.dir} on the device`,
      });
    }
    this.log?.info({ serial: this.serial, path: this.scriptPath, bytes: script.length, sha256, hash: info!.hashKind }, 'agent installed');
    return { path: this.scriptPath, bytes: script.length, sha256, changed: true };
  }

  // -------------------------------------------------------------------------------- status

  async probe(): Promise<StatusProbe & { now?: number }> {
    const out = await this.rootShellOk(statusProbeCommand(this.dir));
    const now = /^now=(\d+)$/m.exec(out);
    return { ...parseStatusProbe(out), now: now ? Number(now[1]) : undefined };
  }

  /** Is the agent alive (pidfile + /proc/PID + cmdline), and its heartbeat. */
  async status(): Promise<AgentStatus> {
    const p = await this.probe();
    const running = probeSaysRunning(p);
    const updated = p.heartbeat?.updatedWall;
    return {
      running,
      pid: p.pidfilePid,
      cmdline: p.cmdline,
      heartbeat: p.heartbeat,
      heartbeatAgeS: updated !== undefined && p.now !== undefined ? Math.max(0, p.now - updated) : undefined,
    };
  }

  // --------------------------------------------------------------------------------- start

  /**
   * Start the agent detached (as root) unless one is already running. Returns once the new
   * agent's own heartbeat is there; throws with the tail of agent.log when it does not come up.
   */
  async start(cfg: AgentRunConfig, opts: { readyTimeoutMs?: number } = {}): Promise<StartResult> {
    const before = await this.status();
    if (before.running && before.pid !== undefined) {
      return { pid: before.pid, launched: false, launchMs: 0 };
    }
    const line = launchLine(this.dir, cfg, this.shellName);
    const t0 = Date.now();
    const r = await this.adb.shell(this.serial, asRoot(this.root, line), { timeoutMs: 15_000 });
    const launchMs = Date.now() - t0;
    if (r.exitCode !== 0) {
      throw new KmlError(ExitCode.DEVICE, `could not launch the agent on ${this.serial} (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`, {
        hint: `is ${this.dir} there? run install() first`,
      });
    }
    if (launchMs > 2_000) this.log?.warn({ serial: this.serial, launchMs }, 'agent launch call was slow to return');
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
    for (;;) {
      const st = await this.status();
      const seen = launchOutcome(before, st);
      if (seen === 'running') {
        this.log?.info({ serial: this.serial, pid: st.pid, launchMs }, 'agent started');
        return { pid: st.pid!, launched: true, launchMs };
      }
      if (seen === 'finished') {
        this.log?.info({ serial: this.serial, pid: st.heartbeat!.pid, launchMs, seq: st.heartbeat!.seq }, 'agent started and already finished its cycles');
        return { pid: st.heartbeat!.pid!, launched: true, launchMs, finished: true };
      }
      if (Date.now() > deadline) break;
      await sleep(200);
    }
    const tail = await this.logTail(8).catch(() => '');
    const refused = /already running/.test(tail);
    throw new KmlError(refused ? ExitCode.CONFLICT : ExitCode.DEVICE, `the agent did not start on ${this.serial}${tail ? `; agent.log ends with:\n${tail}` : ''}`, {
      hint: refused ? 'another agent runs in this directory: `kml stop` it first' : `look at ${this.dir}/agent.log on the device`,
    });
  }

  /** The last lines of agent.log (for error messages). */
  async logTail(lines = 20): Promise<string> {
    const out = await this.rootShellOk(`tail -n ${Math.max(1, Math.floor(lines))} ${shq(`${this.dir}/agent.log`)} 2>/dev/null; exit 0`);
    return out.trimEnd();
  }

  // ---------------------------------------------------------------------------------- stop

  /** SIGTERM (the agent finishes its current step), wait, then SIGKILL. */
  async stop(opts: { termTimeoutMs?: number; killTimeoutMs?: number } = {}): Promise<StopResult> {
    const st = await this.status();
    if (!st.running || st.pid === undefined) return { outcome: 'not-running' };
    const pid = st.pid;
    const gone = async (timeoutMs: number) => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const s = await this.status();
        if (!s.running || s.pid !== pid) return true;
        if (Date.now() > end) return false;
        await sleep(250);
      }
    };
    await this.rootShellOk(signalCommand(pid, 'TERM'));
    // A cycle can be mid-scan: scan-wait plus two scans (seconds, minutes on a big phone).
    const termTimeout = opts.termTimeoutMs ?? Math.max(30_000, ((st.heartbeat?.scanWaitS ?? 5) + 60) * 1000);
    if (await gone(termTimeout)) {
      this.log?.info({ serial: this.serial, pid }, 'agent stopped');
      return { outcome: 'term', pid };
    }
    this.log?.warn({ serial: this.serial, pid, termTimeout }, 'agent ignored SIGTERM; sending SIGKILL');
    await this.rootShellOk(signalCommand(pid, 'KILL'));
    if (await gone(opts.killTimeoutMs ?? 10_000)) return { outcome: 'kill', pid };
    throw new KmlError(ExitCode.DEVICE, `agent pid ${pid} on ${this.serial} survived SIGKILL`);
  }

  // ----------------------------------------------------------------------------- snapshots

  /** Numbers of the published (complete) snapshots, ascending. Anything not all digits is ignored. */
  async listComplete(): Promise<number[]> {
    const entries = await this.adb.readdir(this.serial, `${this.dir}/snapshots`, { timeoutMs: this.timeoutMs });
    const out: number[] = [];
    for (const e of entries) {
      if (!e.isDirectory) continue;
      const n = snapshotNumber(e.name);
      if (n !== undefined) out.push(n);
    }
    return out.sort((a, b) => a - b);
  }

  /** Parsed meta.txt of snapshot N; throws KmlError(DEVICE) when it is missing or unparsable. */
  async readMeta(n: number): Promise<SnapshotMeta> {
    const p = `${this.snapshotPath(n)}/meta.txt`;
    let text: string;
    try {
      text = (await this.adb.pullBuffer(this.serial, p, { timeoutMs: this.timeoutMs, maxBytes: 1024 * 1024 })).toString('utf8');
    } catch (e) {
      if (e instanceof AdbError && (e.kind === 'remote-fail' || e.kind === 'no-such-file')) {
        throw new KmlError(ExitCode.DEVICE, `snapshot ${n} on ${this.serial} has no readable meta.txt: ${e.message}`, { cause: e });
      }
      throw e;
    }
    try {
      const meta = parseMeta(text);
      if (meta.seq !== n) throw new MetaParseError(`meta.txt of snapshot ${n} says seq=${meta.seq}`);
      return meta;
    } catch (e) {
      if (e instanceof MetaParseError) throw new KmlError(ExitCode.DEVICE, `snapshot ${n} on ${this.serial}: ${e.message}`, { cause: e });
      throw e;
    }
  }

  /** Remove published snapshot N (call only once the host copy is durable). Idempotent. */
  async deleteSnapshot(n: number): Promise<void> {
    const p = shq(this.snapshotPath(n));
    await this.rootShellOk(`rm -rf ${p} && [ ! -e ${p} ]`);
  }

  /** skipped.log entries (cycles skipped for lack of space), oldest first; [] when there is none. */
  async readSkipped(): Promise<SkippedEntry[]> {
    const p = `${this.dir}/skipped.log`;
    const st = await this.adb.stat(this.serial, p, { timeoutMs: this.timeoutMs });
    if (!st) return [];
    const buf = await this.adb.pullBuffer(this.serial, p, { timeoutMs: this.timeoutMs, maxBytes: 16 * 1024 * 1024 });
    return parseSkipped(buf.toString('utf8'));
  }
}
