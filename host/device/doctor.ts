// `kml doctor`, the I/O half: ask the device (through host/adb) everything needed to decide
// whether kmemleak collection can run, then let doctor-checks.ts judge. runDoctor() is also what
// `kml collect` calls before it starts; its result (root method, kernel facts) goes into run.json.
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Adb, resolveAdbEndpoint } from '../adb/client.js';
import { ABSENT, isOnline, stateWord, type DeviceState } from '../adb/device-list.js';
import { AdbError } from '../adb/errors.js';
import { shDisplay, shq, validateSerial } from '../adb/quote.js';
import { ExitCode, KmlError } from '../errors.js';
import { adbdIsRoot, asRoot, detectRoot, type RootInfo, type RootMethod } from '../adb/root.js';
import type { Logger } from '../log.js';
import {
  check, classifyProbe, configExcerpt, configHz, debugfsMountPoints, doctorExitCode, evaluateBootParams,
  evaluateKernelConfig, evaluateKernelLog, evaluateProbe, formatBytes, KMEMLEAK_PROBE_COMMAND, type CheckResult,
  type KernelLogFindings, parseDfK, parseKernelConfig, parseStatFs, type ProbeVerdict, scanKernelLog, SPACE_LIMITS, spaceStatus,
} from './doctor-checks.js';
import { debugfsRemedy, deviceSpaceRemedy, hostSpaceRemedy, keepDebugfsRemedy, noRootRemedy, REMEDY } from './remedies.js';

export const KMEMLEAK_PATH = '/sys/kernel/debug/kmemleak';
export const DEBUGFS_PATH = '/sys/kernel/debug';
export const DEVICE_WORK_DIR = '/data/local/tmp';
export const DEFAULT_OUT_DIR = 'kml-runs';

/** Properties recorded in the result (and run.json). */
const PROPS = [
  'ro.product.manufacturer', 'ro.product.model', 'ro.product.device', 'ro.build.fingerprint', 'ro.build.type',
  'ro.build.version.release', 'ro.build.version.sdk', 'ro.debuggable', 'ro.secure', 'ro.product.cpu.abi',
  'ro.product.debugfs_restrictions.enabled', 'persist.dbg.keep_debugfs_mounted', 'ro.boot.hardware', 'sys.boot_completed',
];

export interface DoctorOptions {
  adb?: Adb;
  /** adb server port when no Adb is given (else -P / ANDROID_ADB_SERVER_PORT / 5037). */
  port?: number;
  /** Host output folder whose free space is checked (default ./kml-runs). */
  outDir?: string;
  /** Mount debugfs at /sys/kernel/debug when it is not (needs root). */
  mountDebugfs?: boolean;
  /** May doctor run `adb root` (restarts adbd)? Default true. */
  allowAdbRoot?: boolean;
  log?: Logger;
}

export interface KernelFacts {
  release?: string;
  version?: string;
  cmdline?: string;
  bootconfig?: string;
  /** Where the config came from: /proc/config.gz, /boot/config-<release>, or nowhere. */
  configSource?: string;
  /** Kmemleak/debugfs/HZ lines of the config. */
  config?: Record<string, string>;
  hz?: number;
  debugfsMounted?: boolean;
  debugfsMountedByDoctor?: boolean;
  kmemleakFile?: boolean;
  probe?: ProbeVerdict;
  kernelLog?: KernelLogFindings;
  bootId?: string;
  uptimeS?: number;
}

export interface DoctorResult {
  schemaVersion: 1;
  serial: string;
  adbPort: number;
  /** Device state as the adb server listed it ('absent' when not listed). */
  state: DeviceState;
  ready: boolean;
  exitCode: number;
  checks: CheckResult[];
  root?: RootInfo;
  /** Shortcut to root.method; 'none' when unknown. Collect uses it with asRoot(). */
  rootMethod: RootMethod;
  sdk?: number;
  props: Record<string, string>;
  kernel: KernelFacts;
  space: { deviceDir: string; deviceAvailableBytes?: number; hostDir: string; hostAvailableBytes?: number };
  startedAt: string;
  durationMs: number;
}

/** getprop output `[key]: [value]` → map. */
export function parseGetprop(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^\[([^\]]+)\]: \[([^\]]*)\]/gm)) out[m[1]] = m[2];
  return out;
}

/** The nearest existing folder at or above `dir` (statfs needs an existing path). */
async function existingAncestor(dir: string): Promise<string> {
  let d = path.resolve(dir);
  for (;;) {
    try { await statfs(d); return d; } catch {
      const up = path.dirname(d);
      if (up === d) return d;
      d = up;
    }
  }
}

export async function hostFreeBytes(dir: string): Promise<{ dir: string; bytes?: number }> {
  const d = await existingAncestor(dir);
  try {
    const s = await statfs(d);
    return { dir: d, bytes: Number(s.bavail) * Number(s.bsize) };
  } catch {
    return { dir: d };
  }
}

class DeviceProbe {
  constructor(readonly adb: Adb, readonly serial: string, readonly log?: Logger) {}
  method: RootMethod = 'none';

  get root(): boolean { return this.method !== 'none'; }

  /** As root when we can be, else as the shell user. */
  wrap(cmd: string): string { return this.root ? asRoot(this.method, cmd) : cmd; }

  async sh(cmd: string, timeoutMs = 15_000) {
    return this.adb.shell(this.serial, cmd, { timeoutMs });
  }

  /** stdout of a command that must succeed, or undefined (logged) when it does not. */
  async text(cmd: string, timeoutMs = 15_000): Promise<string | undefined> {
    try {
      const r = await this.sh(cmd, timeoutMs);
      if (r.exitCode === 0) return r.stdout;
      this.log?.debug({ cmd, exitCode: r.exitCode, stderr: r.stderr.slice(0, 200) }, 'doctor command failed');
    } catch (e) {
      if (e instanceof AdbError && !['timeout', 'protocol', 'remote-fail', 'command-failed'].includes(e.kind)) throw e;
      this.log?.debug({ cmd, err: { message: (e as Error).message } }, 'doctor command error');
    }
    return undefined;
  }

  /** Read a small file as the shell user, falling back to root. */
  async readFile(file: string, timeoutMs = 15_000): Promise<string | undefined> {
    const q = `cat ${shq(file)}`;
    return (await this.text(q, timeoutMs)) ?? (this.root ? this.text(this.wrap(q), timeoutMs) : undefined);
  }
}

/** /proc/config.gz over sync (adbd may read it), else exec-out as root; gunzipped here, never via a pty. */
async function readKernelConfig(p: DeviceProbe, release: string | undefined): Promise<{ text?: string; source?: string; why?: string }> {
  const tries: Array<{ source: string; get: () => Promise<Buffer> }> = [
    { source: '/proc/config.gz', get: () => p.adb.pullBuffer(p.serial, '/proc/config.gz', { timeoutMs: 20_000, maxBytes: 8 << 20 }) },
  ];
  if (p.root) tries.push({ source: '/proc/config.gz', get: () => p.adb.execOut(p.serial, p.wrap('cat /proc/config.gz'), { timeoutMs: 20_000, maxBytes: 8 << 20 }) });
  const why: string[] = [];
  for (const t of tries) {
    try {
      const gz = await t.get();
      if (gz.length === 0) { why.push('empty'); continue; }
      return { text: gunzipSync(gz).toString('utf8'), source: t.source };
    } catch (e) {
      if (e instanceof AdbError && ['not-found', 'offline', 'unauthorized', 'server-unreachable', 'no-permissions'].includes(e.kind)) throw e;
      why.push((e as Error).message.replace(/^.*?: /, ''));
    }
  }
  // Plain Linux (our host adbd, some dev boards) keeps it in /boot.
  if (release && /^[A-Za-z0-9._+-]+$/.test(release)) {
    const boot = `/boot/config-${release}`;
    const text = await p.readFile(boot, 20_000);
    if (text && /CONFIG_/.test(text)) return { text, source: boot };
  }
  return { why: why.length ? `/proc/config.gz: ${[...new Set(why)].join('; ')}` : undefined };
}

function deviceCheck(serial: string, state: DeviceState, adb: Adb): CheckResult {
  const title = 'device reachable';
  if (isOnline(state)) return check('device', title, 'PASS', `${serial} is in state "device"`);
  const e = adb.stateError(serial, state);
  return check('device', title, 'FAIL', state === ABSENT ? `${serial} is not attached` : `${serial} is ${stateWord(state)}`, e.hint);
}

function rootCheck(info: RootInfo, serial: string, port: number, allowAdbRoot: boolean): CheckResult {
  const title = 'root';
  const what: Record<RootMethod, string> = {
    'adbd-root': 'adbd runs as root',
    'adb-root': 'adbd restarted as root with `adb root` (lost at reboot; kml redoes it)',
    'su-0': 'via `su 0 sh -c` (AOSP su)',
    'su-c': 'via `su -c` (Magisk/SuperSU)',
    none: '',
  };
  if (info.method !== 'none') return check('root', title, 'PASS', what[info.method]);
  const tried = info.attempts.map((a) => `${a.method}: ${a.detail}`).join('; ');
  return check('root', title, 'FAIL', `no way to run commands as root (${tried})`, noRootRemedy({ serial, port, debuggable: info.debuggable, allowAdbRoot }));
}

/**
 * Run every doctor check on one device. Never throws for a device that is merely unusable
 * (offline, unauthorized, absent → a FAIL 'device' check, exit code 3); throws AdbError when the adb
 * server itself is unreachable, KmlError(USAGE) for a bad serial.
 */
export async function runDoctor(serial: string, opts: DoctorOptions = {}): Promise<DoctorResult> {
  validateSerial(serial);
  const started = Date.now();
  const adb = opts.adb ?? new Adb(resolveAdbEndpoint({ port: opts.port }), { log: opts.log });
  const log = opts.log;
  const hostDirWanted = opts.outDir ?? DEFAULT_OUT_DIR;
  const allowAdbRoot = opts.allowAdbRoot ?? true;
  const checks: CheckResult[] = [];
  const kernel: KernelFacts = {};
  const result: DoctorResult = {
    schemaVersion: 1, serial, adbPort: adb.endpoint.port, state: ABSENT, ready: false, exitCode: 0, checks,
    rootMethod: 'none', props: {}, kernel, space: { deviceDir: DEVICE_WORK_DIR, hostDir: path.resolve(hostDirWanted) },
    startedAt: new Date(started).toISOString(), durationMs: 0,
  };
  const finish = (): DoctorResult => {
    result.exitCode = doctorExitCode(checks);
    result.ready = result.exitCode === 0;
    result.durationMs = Date.now() - started;
    return result;
  };
  const hostSpace = async () => {
    const h = await hostFreeBytes(hostDirWanted);
    result.space.hostDir = h.dir;
    result.space.hostAvailableBytes = h.bytes;
    if (h.bytes === undefined) return check('host-space', 'free space on the host', 'WARN', `cannot read free space of ${h.dir}`);
    const st = spaceStatus(h.bytes, SPACE_LIMITS.host);
    return check('host-space', 'free space on the host', st, `${formatBytes(h.bytes)} free in ${h.dir}`, st === 'PASS' ? undefined : hostSpaceRemedy(h.dir));
  };

  // 1. device state
  result.state = await adb.getState(serial);
  checks.push(deviceCheck(serial, result.state, adb));
  if (!isOnline(result.state)) {
    checks.push(await hostSpace());
    return finish();
  }
  const p = new DeviceProbe(adb, serial, log);

  // 2. properties (no root needed)
  result.props = Object.fromEntries(Object.entries(parseGetprop((await p.text('getprop', 15_000)) ?? '')).filter(([k]) => PROPS.includes(k)));
  const sdk = Number(result.props['ro.build.version.sdk']);
  if (Number.isInteger(sdk) && sdk > 0) result.sdk = sdk;
  if (result.props['ro.product.model']) checks[0].detail += ` (${result.props['ro.product.model']}${result.sdk ? `, API ${result.sdk}` : ''}${result.props['ro.build.type'] ? `, ${result.props['ro.build.type']}` : ''})`;

  // 3. root
  result.root = await detectRoot(adb, serial, { allowAdbRoot });
  result.rootMethod = result.root.method;
  p.method = result.root.method;
  checks.push(rootCheck(result.root, serial, adb.endpoint.port, allowAdbRoot));
  log?.info({ serial, rootMethod: p.method }, 'root method');

  // 4. kernel identity
  kernel.release = (await p.text('uname -r'))?.trim() || undefined;
  kernel.version = (await p.readFile('/proc/version'))?.trim() || undefined;
  kernel.bootId = (await p.readFile('/proc/sys/kernel/random/boot_id'))?.trim() || undefined;
  const up = Number((await p.readFile('/proc/uptime'))?.trim().split(/\s+/)[0]);
  if (Number.isFinite(up)) kernel.uptimeS = up;

  // 5. config and boot parameters
  const cfgText = await readKernelConfig(p, kernel.release);
  const cfg = cfgText.text ? parseKernelConfig(cfgText.text) : undefined;
  if (cfg) {
    kernel.configSource = cfgText.source;
    kernel.config = configExcerpt(cfg);
    kernel.hz = configHz(cfg);
  }
  checks.push(evaluateKernelConfig(cfg, cfgText.why));
  kernel.cmdline = (await p.readFile('/proc/cmdline'))?.trim();
  kernel.bootconfig = (await p.text(p.wrap('cat /proc/bootconfig 2>/dev/null')))?.trim() || undefined;
  checks.push(evaluateBootParams(cfg, kernel.cmdline, kernel.bootconfig));

  // 6. debugfs
  const mountsNow = async () => debugfsMountPoints((await p.readFile('/proc/mounts')) ?? '');
  let points = await mountsNow();
  kernel.debugfsMounted = points.includes(DEBUGFS_PATH);
  if (!kernel.debugfsMounted && opts.mountDebugfs && p.root) {
    const r = await p.sh(p.wrap(`mount -t debugfs debugfs ${DEBUGFS_PATH}`), 20_000).catch((e: Error) => ({ exitCode: -1, stderr: e.message, stdout: '' }));
    log?.info({ serial, exitCode: r.exitCode, stderr: r.stderr.trim() }, 'mount debugfs');
    points = await mountsNow();
    kernel.debugfsMounted = points.includes(DEBUGFS_PATH);
    kernel.debugfsMountedByDoctor = kernel.debugfsMounted;
  }
  const restricted = result.props['ro.product.debugfs_restrictions.enabled'] === 'true';
  const keep = result.props['persist.dbg.keep_debugfs_mounted'];
  if (kernel.debugfsMounted) {
    const note = kernel.debugfsMountedByDoctor ? 'mounted now by kml doctor' : 'mounted';
    if (restricted && !keep) {
      checks.push(check('debugfs', 'debugfs mounted', 'WARN', `${note} at ${DEBUGFS_PATH}, but init unmounts it after the next boot (debugfs restrictions)`,
        keepDebugfsRemedy(serial, p.method, adb.endpoint.port)));
    } else {
      checks.push(check('debugfs', 'debugfs mounted', 'PASS', `${note} at ${DEBUGFS_PATH}`));
    }
  } else {
    const fsList = (await p.readFile('/proc/filesystems')) ?? '';
    const noDebugfs = fsList !== '' && !/\bdebugfs\b/.test(fsList);
    const elsewhere = points.length ? ` (mounted elsewhere: ${points.join(', ')})` : '';
    checks.push(noDebugfs
      ? check('debugfs', 'debugfs mounted', 'FAIL', 'the kernel has no debugfs (not in /proc/filesystems)', REMEDY.debugFsConfig)
      : check('debugfs', 'debugfs mounted', 'FAIL', `debugfs is not mounted at ${DEBUGFS_PATH}${elsewhere}${opts.mountDebugfs && !p.root ? '; cannot mount it without root' : ''}`,
        debugfsRemedy({ serial, port: adb.endpoint.port, method: p.method, sdk: result.sdk, buildType: result.props['ro.build.type'] })));
  }

  // 7. kmemleak file, probe, kernel log (root only: /sys/kernel/debug is root-only and SELinux-guarded)
  if (!p.root) {
    checks.push(check('kmemleak-file', `${KMEMLEAK_PATH} present`, 'SKIP', 'needs root'));
    checks.push(check('kmemleak-enabled', 'kmemleak detector running', 'SKIP', 'needs root'));
  } else if (!kernel.debugfsMounted) {
    checks.push(check('kmemleak-file', `${KMEMLEAK_PATH} present`, 'SKIP', 'debugfs is not mounted'));
    checks.push(check('kmemleak-enabled', 'kmemleak detector running', 'SKIP', 'debugfs is not mounted'));
  } else {
    const t = await p.sh(p.wrap(`test -e ${KMEMLEAK_PATH}`), 15_000);
    kernel.kmemleakFile = t.exitCode === 0;
    if (!kernel.kmemleakFile) {
      const cfgOn = cfg?.get('CONFIG_DEBUG_KMEMLEAK') === 'y';
      checks.push(check('kmemleak-file', `${KMEMLEAK_PATH} present`, 'FAIL',
        `${KMEMLEAK_PATH} does not exist${cfgOn ? ' although CONFIG_DEBUG_KMEMLEAK=y' : ''}`,
        cfgOn ? REMEDY.kmemleakMissingOldKernel : REMEDY.kmemleakConfig));
      checks.push(check('kmemleak-enabled', 'kmemleak detector running', 'SKIP', 'no kmemleak file'));
    } else {
      checks.push(check('kmemleak-file', `${KMEMLEAK_PATH} present`, 'PASS', 'present'));
      kernel.probe = await probeKmemleak(p);
    }
  }
  let logFindings: KernelLogFindings | undefined;
  let logWhy: string | undefined;
  try {
    const r = await p.sh(p.wrap('dmesg'), 30_000);
    if (r.exitCode === 0 && r.stdout.trim()) logFindings = scanKernelLog(r.stdout);
    else logWhy = (r.stderr || r.stdout).trim().split('\n').pop() || `dmesg exited ${r.exitCode}`;
  } catch (e) {
    if (e instanceof AdbError && e.kind !== 'timeout' && e.kind !== 'protocol') throw e;
    logWhy = (e as Error).message;
  }
  kernel.kernelLog = logFindings;
  if (kernel.probe) checks.push(evaluateProbe(kernel.probe, logFindings, '', checks.find((c) => c.id === 'boot-params')?.status));
  checks.push(cfg && cfg.get('CONFIG_DEBUG_KMEMLEAK') !== 'y' && !logFindings?.initialized
    ? check('kernel-log', 'kernel log about kmemleak', 'SKIP', 'kmemleak is not built into this kernel')
    : evaluateKernelLog(logFindings, logWhy));

  // 8. free space
  const df = await p.text(`stat -f -c '%a %S' ${DEVICE_WORK_DIR}`);
  let devBytes = df ? parseStatFs(df) : undefined;
  if (devBytes === undefined) {
    const d = await p.text(`df -k ${DEVICE_WORK_DIR}`);
    devBytes = d ? parseDfK(d) : undefined;
  }
  result.space.deviceAvailableBytes = devBytes;
  if (devBytes === undefined) {
    checks.push(check('device-space', 'free space on the device', 'WARN', `cannot read free space of ${DEVICE_WORK_DIR}`));
  } else {
    const st = spaceStatus(devBytes, SPACE_LIMITS.device);
    checks.push(check('device-space', 'free space on the device', st, `${formatBytes(devBytes)} free in ${DEVICE_WORK_DIR}`, st === 'PASS' ? undefined : deviceSpaceRemedy(serial, adb.endpoint.port)));
  }
  checks.push(await hostSpace());
  // Sync runs as the shell user unless adbd is root: noted for collect (it pulls root-written files).
  log?.debug({ serial, adbdRoot: adbdIsRoot(p.method) }, 'doctor done');
  return finish();
}

/** The harmless probe write (see KMEMLEAK_PROBE_COMMAND) → verdict. */
async function probeKmemleak(p: DeviceProbe): Promise<ProbeVerdict> {
  const cmd = `echo ${KMEMLEAK_PROBE_COMMAND} > ${KMEMLEAK_PATH}`;
  try {
    // A running scan holds scan_mutex and the write waits for it; give it time.
    const r = await p.sh(p.wrap(cmd), 90_000);
    return classifyProbe(r.exitCode, `${r.stderr}\n${r.stdout}`);
  } catch (e) {
    if (e instanceof AdbError && e.kind === 'timeout') return 'timeout';
    throw e;
  }
}

export type Readiness = 'ready' | 'not-ready' | string;

export interface QuickReadiness {
  serial: string;
  state: DeviceState;
  /** ready / not-ready, or the state word when not online (offline, unauthorized, ...). */
  readiness: Readiness;
  reason: string;
  model?: string;
  rootMethod?: RootMethod;
}

/**
 * `kml devices`' quick look: a few short shell calls, no `adb root` (it would restart adbd), no
 * mounting. "ready" means root works and the kmemleak probe says enabled.
 */
export async function quickReadiness(adb: Adb, serial: string, state: DeviceState, opts: { timeoutMs?: number } = {}): Promise<QuickReadiness> {
  const out: QuickReadiness = { serial, state, readiness: stateWord(state), reason: '' };
  if (!isOnline(state)) {
    out.reason = adb.stateError(serial, state).hint ?? '';
    return out;
  }
  const t = opts.timeoutMs ?? 5_000;
  try {
    const props = parseGetprop((await adb.shell(serial, 'getprop', { timeoutMs: t })).stdout);
    out.model = props['ro.product.model'] || undefined;
    const root = await detectRoot(adb, serial, { allowAdbRoot: false, probeTimeoutMs: t });
    out.rootMethod = root.method;
    if (root.method === 'none') {
      out.readiness = 'not-ready';
      out.reason = props['ro.debuggable'] === '1' ? 'adbd is not root (`kml doctor` runs adb root)' : 'no root';
      return out;
    }
    const p = new DeviceProbe(adb, serial);
    p.method = root.method;
    const exists = await p.sh(p.wrap(`test -e ${KMEMLEAK_PATH}`), t);
    if (exists.exitCode !== 0) {
      out.readiness = 'not-ready';
      out.reason = `no ${KMEMLEAK_PATH} (kmemleak not built in, or debugfs not mounted)`;
      return out;
    }
    const verdict = await probeKmemleak(p);
    out.readiness = verdict === 'enabled' ? 'ready' : 'not-ready';
    const why: Record<ProbeVerdict, string> = {
      enabled: 'kmemleak running', 'disabled-eperm': 'kmemleak disabled (EPERM)', 'disabled-ebusy': 'kmemleak disabled (EBUSY)',
      'no-file': 'no kmemleak file', 'permission-denied': 'kmemleak not writable (SELinux?)', timeout: 'kmemleak busy (long scan)', unknown: 'kmemleak state unknown',
    };
    out.reason = why[verdict];
  } catch (e) {
    out.readiness = 'not-ready';
    out.reason = (e as Error).message;
  }
  return out;
}

/**
 * For callers that refuse to start on a device that is not ready (kml collect): undefined when
 * ready, else a KmlError — ExitCode.DEVICE when the device is unavailable, ExitCode.NOT_CAPABLE
 * otherwise — naming the failed checks, with the first remedy as hint and all checks in details.
 */
export function doctorFailure(r: DoctorResult): KmlError | undefined {
  if (r.ready) return undefined;
  const fails = r.checks.filter((c) => c.status === 'FAIL');
  const code = r.exitCode === ExitCode.DEVICE ? ExitCode.DEVICE : ExitCode.NOT_CAPABLE;
  const what = fails.map((c) => `${c.title}: ${c.detail}`).join('; ');
  return new KmlError(code, `device ${r.serial} is not ready for kmemleak collection (${what})`, {
    hint: `${fails[0]?.remedy ?? 'run `kml doctor` for details'}\n(run \`kml doctor -s ${shDisplay(r.serial)}\` for the full report)`,
    details: { checks: r.checks },
  });
}
