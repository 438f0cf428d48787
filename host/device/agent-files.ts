// Pure parsers for the files the device agent (agent/kml-agent.sh) writes: heartbeat, per-snapshot
// meta.txt, skipped.log, and the status probe's output. Everything here is device text: untrusted.
// Unknown keys are kept in `raw` and otherwise ignored, so a newer agent does not break an older host.

/** A published snapshot directory name: decimal, no padding, no sign (the agent's sequence). */
const SNAPSHOT_NAME = /^[1-9][0-9]{0,8}$/;

/** Largest sequence number the agent can produce (mksh arithmetic is 32-bit; it keeps 9 digits). */
export const MAX_SEQ = 999_999_999;

/** The snapshot number a device directory name stands for, or undefined for anything else. */
export function snapshotNumber(name: string): number | undefined {
  return SNAPSHOT_NAME.test(name) ? Number(name) : undefined;
}

/** A sequence number safe to paste into a device path. */
export function isSnapshotNumber(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 && n <= MAX_SEQ;
}

/**
 * A file name listed in meta.txt that is safe to use as a local or device path component:
 * plain characters, ending in .txt, no dot-dot, no slash. Anything else is ignored.
 */
const SNAPSHOT_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\.txt$/;
export function isSnapshotFileName(name: string): boolean {
  return name.length <= 64 && SNAPSHOT_FILE_NAME.test(name) && name !== 'meta.txt';
}

/** `key=value` lines → a map. The first `=` splits; lines without one are skipped; later keys win. */
export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const line of text.split('\n')) {
    const l = line.replace(/\r$/, '');
    const eq = l.indexOf('=');
    if (eq <= 0) continue;
    out[l.slice(0, eq)] = l.slice(eq + 1);
  }
  return out;
}

function int(v: string | undefined): number | undefined {
  if (v === undefined || !/^-?\d{1,15}$/.test(v)) return undefined;
  return Number(v);
}

function num(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,12}(\.\d{1,9})?$/.test(v)) return undefined;
  return Number(v);
}

function words(v: string | undefined): string[] {
  return (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

// ------------------------------------------------------------------------------------ heartbeat

export type AgentState = 'running' | 'skipping' | 'stopping' | 'stopped';

export interface AgentHeartbeat {
  pid?: number;
  bootId?: string;
  /** Last sequence number used (published or skipped). */
  seq?: number;
  /** running | skipping (the last cycle was skipped: low space) | stopping | stopped (clean exit). */
  state?: AgentState | string;
  lastCycleWall?: number;
  nextCycleWall?: number;
  freeKb?: number;
  skippedTotal?: number;
  /** Error words of the last cycle, e.g. ["scan1:EPERM"]; empty when it went well. */
  lastError: string[];
  /** ok | disabled | missing | denied | error | unknown (before the first kmemleak access). */
  kmemleak?: string;
  protocol?: string;
  interval?: number;
  scanWaitS?: number;
  minFreeKb?: number;
  cycles?: number;
  startedWall?: number;
  updatedWall?: number;
  agentVersion?: number;
  raw: Record<string, string>;
}

export function parseHeartbeat(text: string): AgentHeartbeat {
  const kv = parseKeyValues(text);
  return {
    pid: int(kv.pid),
    bootId: kv.boot_id || undefined,
    seq: int(kv.seq),
    state: kv.state || undefined,
    lastCycleWall: int(kv.last_cycle_wall),
    nextCycleWall: int(kv.next_cycle_wall),
    freeKb: int(kv.free_kb),
    skippedTotal: int(kv.skipped_total),
    lastError: words(kv.last_error),
    kmemleak: kv.kmemleak || undefined,
    protocol: kv.protocol || undefined,
    interval: int(kv.interval),
    scanWaitS: int(kv.scan_wait_s),
    minFreeKb: int(kv.min_free_kb),
    cycles: int(kv.cycles),
    startedWall: int(kv.started_wall),
    updatedWall: int(kv.updated_wall),
    agentVersion: int(kv.agent_version),
    raw: kv,
  };
}

// ----------------------------------------------------------------------------------------- meta

export interface SnapshotFileInfo {
  name: string;
  bytes: number;
  /** Present when the device had sha256sum. */
  sha256?: string;
  /** Present when the device had only md5sum. */
  md5?: string;
}

export interface SnapshotMeta {
  seq: number;
  bootId: string;
  uptimeS?: number;
  wallTime?: number;
  protocol?: string;
  scanWaitS?: number;
  /** Duration of the first scan (double) or of the scan that preceded the read (seed); ms. */
  scan1Ms?: number;
  scan2Ms?: number;
  readMs?: number;
  /** Resolution of the durations: 1 (date +%N) or 10 (/proc/uptime hundredths). */
  clockResMs?: number;
  kmemleakBytes?: number;
  leakCount?: number;
  kmemleakState?: string;
  errors: string[];
  /** /proc files or the kernel log that could not be read this cycle (not errors: "when readable"). */
  unreadable: string[];
  hash: 'sha256' | 'md5' | 'none';
  /** Every file meta.txt describes, in meta order; names validated (see isSnapshotFileName). */
  files: SnapshotFileInfo[];
  /** Names meta.txt mentioned that were not safe file names: ignored. */
  rejectedNames: string[];
  agentVersion?: number;
  raw: Record<string, string>;
}

export class MetaParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetaParseError';
  }
}

/** Parse a snapshot's meta.txt. Throws MetaParseError when seq or boot_id is missing or bad. */
export function parseMeta(text: string): SnapshotMeta {
  const kv = parseKeyValues(text);
  const seq = snapshotNumber(kv.seq ?? '');
  if (seq === undefined) throw new MetaParseError(`meta.txt has no valid seq (${JSON.stringify(kv.seq ?? null)})`);
  const bootId = kv.boot_id ?? '';
  if (!/^[A-Za-z0-9-]{1,64}$/.test(bootId)) throw new MetaParseError(`meta.txt has no valid boot_id (${JSON.stringify(kv.boot_id ?? null)})`);
  const files = new Map<string, SnapshotFileInfo>();
  const rejected = new Set<string>();
  const fileFor = (name: string): SnapshotFileInfo | undefined => {
    if (!isSnapshotFileName(name)) {
      rejected.add(name);
      return undefined;
    }
    let f = files.get(name);
    if (!f) {
      f = { name, bytes: -1 };
      files.set(name, f);
    }
    return f;
  };
  for (const [k, v] of Object.entries(kv)) {
    const m = /^(size|sha256|md5)\.(.+)$/.exec(k);
    if (!m) continue;
    const f = fileFor(m[2]);
    if (!f) continue;
    if (m[1] === 'size') {
      const n = int(v);
      if (n !== undefined && n >= 0) f.bytes = n;
    } else if (m[1] === 'sha256' && /^[0-9a-f]{64}$/.test(v)) {
      f.sha256 = v;
    } else if (m[1] === 'md5' && /^[0-9a-f]{32}$/.test(v)) {
      f.md5 = v;
    }
  }
  for (const [name, f] of files) {
    if (f.bytes < 0) throw new MetaParseError(`meta.txt lists ${name} without a valid size`);
  }
  const hash = kv.hash === 'sha256' || kv.hash === 'md5' ? kv.hash : 'none';
  return {
    seq,
    bootId,
    uptimeS: num(kv.uptime_s),
    wallTime: int(kv.wall_time),
    protocol: kv.protocol || undefined,
    scanWaitS: int(kv.scan_wait_s),
    scan1Ms: int(kv.scan1_ms),
    scan2Ms: int(kv.scan2_ms),
    readMs: int(kv.read_ms),
    clockResMs: int(kv.clock_res_ms),
    kmemleakBytes: int(kv.kmemleak_bytes),
    leakCount: int(kv.leak_count),
    kmemleakState: kv.kmemleak_state || undefined,
    errors: words(kv.errors),
    unreadable: words(kv.unreadable),
    hash,
    files: [...files.values()],
    rejectedNames: [...rejected],
    agentVersion: int(kv.agent_version),
    raw: kv,
  };
}

// -------------------------------------------------------------------------------------- skipped

export interface SkippedEntry {
  seq: number;
  bootId: string;
  wallTime: number;
  /** low_space | no_space | mkdir_<ERRNO> | publish_<ERRNO> */
  reason: string;
}

/** skipped.log: `seq=<N> boot_id=<id> wall_time=<s> reason=<word>` per line; malformed lines are ignored. */
export function parseSkipped(text: string): SkippedEntry[] {
  const out: SkippedEntry[] = [];
  for (const line of text.split('\n')) {
    const kv: Record<string, string> = {};
    for (const field of line.trim().split(/\s+/)) {
      const eq = field.indexOf('=');
      if (eq > 0) kv[field.slice(0, eq)] = field.slice(eq + 1);
    }
    const seq = snapshotNumber(kv.seq ?? '');
    const wallTime = int(kv.wall_time);
    if (seq === undefined || wallTime === undefined || !kv.boot_id || !/^[A-Za-z0-9_-]{1,64}$/.test(kv.reason ?? '')) continue;
    out.push({ seq, bootId: kv.boot_id, wallTime, reason: kv.reason });
  }
  return out;
}

// --------------------------------------------------------------------------------- status probe

/** What the status probe (see statusProbeCommand in agent.ts) printed. */
export interface StatusProbe {
  /** The pid in agent.pid, if it held one. */
  pidfilePid?: number;
  /** /proc/<pid> exists (Perfetto's RUN/TERM idiom). */
  alive: boolean;
  /** /proc/<pid>/cmdline, NULs as spaces (shown to users; empty where the device has no `tr`). */
  cmdline?: string;
  /** The probe found `kml-agent` in /proc/<pid>/cmdline (with tr, or grep where tr is missing). */
  agentCmdline: boolean;
  heartbeat?: AgentHeartbeat;
}

export const STATUS_HEARTBEAT_MARK = '--kml-heartbeat--';

export function parseStatusProbe(stdout: string): StatusProbe {
  const mark = stdout.indexOf(STATUS_HEARTBEAT_MARK);
  const head = mark >= 0 ? stdout.slice(0, mark) : stdout;
  const hbText = mark >= 0 ? stdout.slice(mark + STATUS_HEARTBEAT_MARK.length) : '';
  const kv = parseKeyValues(head);
  const lines = head.split('\n').map((l) => l.trim());
  const pid = int(kv.pidfile);
  const cmdline = kv.cmdline?.trim();
  return {
    pidfilePid: pid !== undefined && pid > 0 ? pid : undefined,
    alive: lines.includes('RUN'),
    cmdline: cmdline || undefined,
    agentCmdline: kv.agent === '1',
    heartbeat: hbText.trim() ? parseHeartbeat(hbText) : undefined,
  };
}

/** An agent is running when agent.pid names a live process whose cmdline is kml-agent. */
export function probeSaysRunning(p: StatusProbe): boolean {
  return p.pidfilePid !== undefined && p.alive && p.agentCmdline;
}
