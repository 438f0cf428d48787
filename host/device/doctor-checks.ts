// Pure part of `kml doctor`: parse what the device said (kernel config, command line, bootconfig,
// mounts, the probe write's error, the kernel log, free space) and turn facts into PASS/WARN/FAIL
// verdicts with remedies. No I/O here; doctor.ts gathers the text.
import { ExitCode } from '../errors.js';
import { REMEDY } from './remedies.js';

export type CheckStatus = 'PASS' | 'WARN' | 'FAIL' | 'SKIP';

export type CheckId =
  | 'device' | 'root' | 'kernel-config' | 'boot-params' | 'debugfs' | 'kmemleak-file'
  | 'kmemleak-enabled' | 'kernel-log' | 'device-space' | 'host-space';

export interface CheckResult {
  id: CheckId;
  title: string;
  status: CheckStatus;
  /** One line: what was found. */
  detail: string;
  /** Present on FAIL (and some WARN): what to change, with exact config lines / commands. */
  remedy?: string;
}

export function check(id: CheckId, title: string, status: CheckStatus, detail: string, remedy?: string): CheckResult {
  return remedy ? { id, title, status, detail, remedy } : { id, title, status, detail };
}

// ------------------------------------------------------------------ kernel config

/** `CONFIG_X=v` → v; `# CONFIG_X is not set` → 'n'. */
export function parseKernelConfig(text: string): Map<string, string> {
  const cfg = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    let m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) { cfg.set(m[1], m[2].replace(/^"(.*)"$/, '$1')); continue; }
    m = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (m) cfg.set(m[1], 'n');
  }
  return cfg;
}

const EXCERPT = /^CONFIG_(HAVE_DEBUG_KMEMLEAK|DEBUG_KMEMLEAK.*|DEBUG_FS.*|IKCONFIG.*|HZ|HZ_\d+|KALLSYMS.*|STACKTRACE|SLUB_DEBUG.*|PAGE_OWNER|PREEMPT.*|DEBUG_TASK_STACK_SCAN_OFF|SAMPLE_KMEMLEAK|MODULES|LOCALVERSION)$/;

/** The config lines kml records in run.json (kmemleak, debugfs, HZ, symbols). */
export function configExcerpt(cfg: Map<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of [...cfg.entries()].sort(([a], [b]) => a.localeCompare(b))) if (EXCERPT.test(k)) out[k] = v;
  return out;
}

/** CONFIG_HZ as a number, when the config says it. */
export function configHz(cfg: Map<string, string> | undefined): number | undefined {
  const v = cfg?.get('CONFIG_HZ');
  return v && /^\d+$/.test(v) ? Number(v) : undefined;
}

function yes(cfg: Map<string, string>, key: string): boolean {
  const v = cfg.get(key);
  return v === 'y' || v === 'm';
}

// ------------------------------------------------------------------ command line / bootconfig

/** Split a kernel command line like the kernel does (spaces, double quotes group). */
export function parseCmdline(text: string): Array<[string, string | undefined]> {
  const out: Array<[string, string | undefined]> = [];
  const re = /(?:[^\s"]+|"[^"]*")+/g;
  for (const m of text.trim().matchAll(re)) {
    const tok = m[0];
    const eq = tok.indexOf('=');
    const key = (eq < 0 ? tok : tok.slice(0, eq)).replace(/"/g, '');
    const value = eq < 0 ? undefined : tok.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    out.push([key, value]);
  }
  return out;
}

/** `kernel.kmemleak = "on"`-style keys from /proc/bootconfig (a vendor might pass it there). */
export function parseBootconfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z0-9_.-]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out.set(m[1], m[2].replace(/^"(.*)"$/, '$1'));
  }
  return out;
}

export interface KmemleakBootParam {
  /** Every kmemleak= value seen, in order (cmdline, then bootconfig kernel.kmemleak). */
  values: string[];
  /**
   * What they do: any `off` disables kmemleak at once (kmemleak_boot_config calls
   * kmemleak_disable(), which a later `on` cannot undo); else `on` lifts DEFAULT_OFF.
   */
  effective: 'on' | 'off' | undefined;
}

export function kmemleakBootParam(cmdline: string, bootconfig?: string): KmemleakBootParam {
  const values: string[] = [];
  for (const [k, v] of parseCmdline(cmdline)) if (k === 'kmemleak' && v !== undefined) values.push(v);
  const bc = bootconfig ? parseBootconfig(bootconfig).get('kernel.kmemleak') : undefined;
  if (bc !== undefined) values.push(bc);
  const effective = values.includes('off') ? 'off' : values.includes('on') ? 'on' : undefined;
  return { values, effective };
}

// ------------------------------------------------------------------ mounts

export function debugfsMountPoints(mounts: string): string[] {
  const out: string[] = [];
  for (const line of mounts.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 3 && f[2] === 'debugfs') out.push(f[1]);
  }
  return out;
}

// ------------------------------------------------------------------ the probe write

/**
 * The probe is `echo dump=0 > /sys/kernel/debug/kmemleak`. It changes nothing: while kmemleak is
 * enabled the kernel looks up object 0, finds none, logs "kmemleak: Unknown object at 0x00000000"
 * and returns EINVAL; while disabled every command except `clear` is refused before it is parsed,
 * with EBUSY (kernels before 5.3) or EPERM (5.3+). Not `scan=...` (restarts the auto-scan thread and
 * scans at once — it would undo a collector's `scan=off`), not `stack=on` (a vendor option turns
 * stack scanning off by default), never anything starting with `off`.
 */
export const KMEMLEAK_PROBE_COMMAND = 'dump=0';

export type ProbeVerdict = 'enabled' | 'disabled-ebusy' | 'disabled-eperm' | 'no-file' | 'permission-denied' | 'timeout' | 'unknown';

export function classifyProbe(exitCode: number | undefined, output: string): ProbeVerdict {
  const o = output.toLowerCase();
  if (/invalid argument/.test(o)) return 'enabled';
  if (/operation not permitted/.test(o)) return 'disabled-eperm';
  if (/device or resource busy|resource busy/.test(o)) return 'disabled-ebusy';
  if (/no such file or directory/.test(o)) return 'no-file';
  if (/permission denied|read-only file system/.test(o)) return 'permission-denied';
  if (exitCode === 0) return 'enabled'; // the write was accepted: only an enabled kmemleak accepts dump=
  return 'unknown';
}

// ------------------------------------------------------------------ kernel log

export interface KernelLogFindings {
  initialized: boolean;
  memPoolAvailable?: number;
  disabled: boolean;
  earlyLogExceeded: boolean;
  memPoolEmpty: boolean;
  allocFailed: boolean;
  treeInsertFailed: boolean;
  /** Sum of "N new suspected memory leaks" in the log. */
  leaksReported: number;
  /** The kmemleak lines that matter (problems first), for the report. */
  notable: string[];
}

export function scanKernelLog(text: string): KernelLogFindings {
  const f: KernelLogFindings = {
    initialized: false, disabled: false, earlyLogExceeded: false, memPoolEmpty: false,
    allocFailed: false, treeInsertFailed: false, leaksReported: 0, notable: [],
  };
  for (const line of text.split('\n')) {
    if (!/kmemleak/i.test(line)) continue;
    let m: RegExpExecArray | null;
    if ((m = /Kernel memory leak detector initialized(?: \(mem pool available: (\d+)\))?/.exec(line))) {
      f.initialized = true;
      if (m[1]) f.memPoolAvailable = Number(m[1]);
      f.notable.push(line.trim());
    } else if (/Kernel memory leak detector disabled/.test(line)) {
      f.disabled = true; f.notable.push(line.trim());
    } else if (/Early log buffer exceeded/.test(line)) {
      f.earlyLogExceeded = true; f.notable.push(line.trim());
    } else if (/Memory pool empty/.test(line)) {
      f.memPoolEmpty = true; f.notable.push(line.trim());
    } else if (/Cannot allocate a kmemleak_object structure/.test(line)) {
      f.allocFailed = true; f.notable.push(line.trim());
    } else if (/Cannot insert .* into the object search tree/.test(line)) {
      f.treeInsertFailed = true; f.notable.push(line.trim());
    } else if ((m = /(\d+) new suspected memory leaks/.exec(line))) {
      f.leaksReported += Number(m[1]);
    }
  }
  return f;
}

// ------------------------------------------------------------------ free space

/** `stat -f -c '%a %S' DIR` (toybox/busybox) → bytes available; undefined if unreadable. */
export function parseStatFs(text: string): number | undefined {
  const m = /^\s*(\d+)\s+(\d+)\s*$/m.exec(text);
  return m ? Number(m[1]) * Number(m[2]) : undefined;
}

/** `df -k DIR` → bytes available (column 4 of the last line); undefined if unreadable. */
export function parseDfK(text: string): number | undefined {
  const lines = text.trim().split('\n').filter((l) => l.trim());
  if (lines.length < 2) return undefined;
  const f = lines[lines.length - 1].trim().split(/\s+/);
  // A long filesystem name can wrap onto its own line: the numbers are then the whole last line.
  const nums = f.filter((x) => /^\d+$/.test(x));
  if (nums.length >= 3) return Number(nums[2]) * 1024;
  return undefined;
}

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(0)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KiB`;
  return `${n} B`;
}

export const SPACE_LIMITS = {
  device: { fail: 50 * 1024 * 1024, warn: 200 * 1024 * 1024 },
  host: { fail: 100 * 1024 * 1024, warn: 1024 * 1024 * 1024 },
} as const;

export function spaceStatus(bytes: number, limits: { fail: number; warn: number }): CheckStatus {
  return bytes < limits.fail ? 'FAIL' : bytes < limits.warn ? 'WARN' : 'PASS';
}

// ------------------------------------------------------------------ verdicts

/** CONFIG_DEBUG_KMEMLEAK from /proc/config.gz (undefined config: not readable). */
export function evaluateKernelConfig(cfg: Map<string, string> | undefined, why?: string): CheckResult {
  const title = 'kernel built with kmemleak';
  if (!cfg) {
    return check('kernel-config', title, 'WARN',
      `cannot read the kernel config (${why ?? '/proc/config.gz absent: CONFIG_IKCONFIG_PROC not set'}); relying on the runtime checks below`);
  }
  if (!yes(cfg, 'CONFIG_DEBUG_KMEMLEAK')) {
    return check('kernel-config', title, 'FAIL', `CONFIG_DEBUG_KMEMLEAK is ${cfg.get('CONFIG_DEBUG_KMEMLEAK') === 'n' ? 'not set' : 'absent'} in /proc/config.gz`, REMEDY.kmemleakConfig);
  }
  if (cfg.has('CONFIG_DEBUG_FS') && !yes(cfg, 'CONFIG_DEBUG_FS')) {
    return check('kernel-config', title, 'FAIL', 'CONFIG_DEBUG_KMEMLEAK=y but CONFIG_DEBUG_FS is not set', REMEDY.debugFsConfig);
  }
  const extras = ['CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF', 'CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN', 'CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE', 'CONFIG_DEBUG_KMEMLEAK_EARLY_LOG_SIZE']
    .filter((k) => cfg.has(k)).map((k) => `${k.replace('CONFIG_DEBUG_KMEMLEAK_', '')}=${cfg.get(k)}`);
  return check('kernel-config', title, 'PASS', `CONFIG_DEBUG_KMEMLEAK=y${extras.length ? ` (${extras.join(', ')})` : ''}`);
}

/** DEFAULT_OFF vs kmemleak=on, and any kmemleak=off. */
export function evaluateBootParams(cfg: Map<string, string> | undefined, cmdline: string | undefined, bootconfig?: string): CheckResult {
  const title = 'kmemleak enabled at boot';
  if (cmdline === undefined) {
    return check('boot-params', title, 'WARN', 'cannot read /proc/cmdline; relying on the runtime probe');
  }
  if (cfg && !yes(cfg, 'CONFIG_DEBUG_KMEMLEAK')) return check('boot-params', title, 'SKIP', 'kmemleak is not built into this kernel');
  const p = kmemleakBootParam(cmdline, bootconfig);
  if (p.effective === 'off') return check('boot-params', title, 'FAIL', 'the kernel command line has kmemleak=off', REMEDY.cmdlineOff);
  const defaultOff = cfg ? cfg.get('CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF') === 'y' : undefined;
  if (defaultOff === true && p.effective !== 'on') {
    return check('boot-params', title, 'FAIL', 'CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y and no kmemleak=on on the command line', REMEDY.defaultOff);
  }
  if (defaultOff === true) return check('boot-params', title, 'PASS', 'CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y, enabled by kmemleak=on');
  if (defaultOff === false) return check('boot-params', title, 'PASS', `on by default (CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF not set)${p.effective === 'on' ? ', kmemleak=on also given' : ''}`);
  return p.effective === 'on'
    ? check('boot-params', title, 'PASS', 'kmemleak=on on the command line')
    : check('boot-params', title, 'WARN', 'no kmemleak= on the command line and the config is unknown: if the kernel has CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y, add kmemleak=on');
}

/** The probe's verdict (and the kernel log) → is kmemleak running now? */
export function evaluateProbe(verdict: ProbeVerdict, log: KernelLogFindings | undefined, detailText: string, bootParams?: CheckStatus): CheckResult {
  const title = 'kmemleak detector running';
  switch (verdict) {
    case 'enabled':
      return check('kmemleak-enabled', title, 'PASS', `probe write "${KMEMLEAK_PROBE_COMMAND}" answered EINVAL (enabled; no state changed)`);
    case 'disabled-eperm':
    case 'disabled-ebusy': {
      const errno = verdict === 'disabled-eperm' ? 'EPERM' : 'EBUSY';
      // Boot settings wrong → that fix; right (or unknown) → it disabled itself at runtime.
      const remedy = log?.earlyLogExceeded ? REMEDY.earlyLog
        : log?.allocFailed || log?.treeInsertFailed ? REMEDY.disabledAtRuntime
        : bootParams === 'FAIL' ? REMEDY.defaultOff
        : bootParams === 'PASS' || log?.initialized ? REMEDY.disabledAtRuntime
        : `${REMEDY.defaultOff}\n  if the boot settings are right, ${REMEDY.disabledAtRuntime}`;
      return check('kmemleak-enabled', title, 'FAIL', `kmemleak is disabled: the probe write was refused with ${errno}`, remedy);
    }
    case 'no-file':
      return check('kmemleak-enabled', title, 'FAIL', '/sys/kernel/debug/kmemleak does not exist', REMEDY.kmemleakConfig);
    case 'permission-denied':
      return check('kmemleak-enabled', title, 'FAIL', `the probe write was denied (${detailText.trim().slice(0, 120)}); root in a permissive domain is needed`,
        'use adb root on a userdebug/eng build (AOSP su and adb root run in the permissive su domain)');
    case 'timeout':
      return check('kmemleak-enabled', title, 'WARN', 'the probe write did not return: a long kmemleak scan holds the scan lock; retry later');
    default:
      return check('kmemleak-enabled', title, 'WARN', `cannot tell from the probe write (${detailText.trim().slice(0, 160) || 'no output'})`);
  }
}

export function evaluateKernelLog(f: KernelLogFindings | undefined, why?: string): CheckResult {
  const title = 'kernel log about kmemleak';
  if (!f) return check('kernel-log', title, 'WARN', `cannot read the kernel log (${why ?? 'dmesg failed'})`);
  if (f.earlyLogExceeded) return check('kernel-log', title, 'FAIL', '"Early log buffer exceeded": kmemleak disabled itself at boot', REMEDY.earlyLog);
  if (f.allocFailed || f.treeInsertFailed) {
    return check('kernel-log', title, 'FAIL', f.allocFailed ? '"Cannot allocate a kmemleak_object structure": kmemleak disabled itself' : '"Cannot insert ... into the object search tree": kmemleak disabled itself', REMEDY.disabledAtRuntime);
  }
  if (f.disabled && f.initialized) {
    return check('kernel-log', title, 'FAIL', 'kmemleak started, then "Kernel memory leak detector disabled" (a write of "off" or an internal error)', REMEDY.disabledAtRuntime);
  }
  if (f.disabled) return check('kernel-log', title, 'FAIL', '"Kernel memory leak detector disabled" at boot', REMEDY.defaultOff);
  if (f.memPoolEmpty) return check('kernel-log', title, 'WARN', '"Memory pool empty": some allocations may not be tracked', REMEDY.memPool);
  if (f.initialized) {
    return check('kernel-log', title, 'PASS', `detector initialized${f.memPoolAvailable !== undefined ? ` (mem pool available: ${f.memPoolAvailable})` : ''}${f.leaksReported ? `; ${f.leaksReported} suspected leaks reported so far` : ''}`);
  }
  return check('kernel-log', title, 'PASS', 'no kmemleak problems in the kernel log (its boot lines may have rotated out)');
}

/** Exit code of a doctor run: 3 when the device is unavailable, 1 on any FAIL, else 0. */
export function doctorExitCode(checks: readonly CheckResult[]): number {
  const device = checks.find((c) => c.id === 'device');
  if (device && device.status === 'FAIL') return ExitCode.DEVICE;
  return checks.some((c) => c.status === 'FAIL') ? ExitCode.FAIL : ExitCode.OK;
}

/** One line per check for humans: `PASS  kernel built with kmemleak  CONFIG_DEBUG_KMEMLEAK=y`. */
export function formatCheckLines(checks: readonly CheckResult[]): string[] {
  const width = Math.max(...checks.map((c) => c.title.length), 10);
  const lines: string[] = [];
  const shown = new Map<string, string>();
  for (const c of checks) {
    lines.push(`${c.status.padEnd(4)}  ${c.title.padEnd(width)}  ${c.detail}`);
    if (c.remedy && c.status !== 'PASS' && shown.has(c.remedy)) {
      lines.push(`      fix: as for "${shown.get(c.remedy)}" above`);
    } else if (c.remedy && c.status !== 'PASS') {
      shown.set(c.remedy, c.title);
      const [first, ...rest] = c.remedy.split('\n');
      lines.push(`      fix: ${first}`);
      for (const r of rest) lines.push(`      ${r}`);
    }
  }
  return lines;
}
