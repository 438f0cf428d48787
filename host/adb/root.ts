// How to be root on a device, found once and remembered per serial:
//   adbd-root  adbd already runs as root (eng build, or `adb root` done earlier)
//   adb-root   kml ran `adb root` (userdebug/eng): adbd restarted as root; lost at reboot
//   su-0       AOSP su (userdebug): `su 0 sh -c CMD` — AOSP su has no -c option
//   su-c       Magisk/SuperSU: `su -c CMD`
//   none       no way: kmemleak cannot be read
// Reading /sys/kernel/debug/kmemleak needs uid 0 *and* a permissive domain; adb root and AOSP su
// both give the permissive `su` domain on userdebug builds.
import { ExitCode, KmlError } from '../errors.js';
import type { Adb } from './client.js';
import { AdbError } from './errors.js';
import { shDisplay, shq } from './quote.js';
import pRetry, { AbortError } from 'p-retry';

export type RootMethod = 'adbd-root' | 'adb-root' | 'su-0' | 'su-c' | 'none';

export const ROOT_METHODS: readonly RootMethod[] = ['adbd-root', 'adb-root', 'su-0', 'su-c', 'none'];

/** Wrap a shell command so it runs as root with `method`; the command is quoted, never spliced. */
export function asRoot(method: RootMethod, cmd: string): string {
  switch (method) {
    case 'adbd-root':
    case 'adb-root':
      return cmd;
    case 'su-0':
      return `su 0 sh -c ${shq(cmd)}`;
    case 'su-c':
      return `su -c ${shq(cmd)}`;
    default:
      throw new KmlError(ExitCode.NOT_CAPABLE, 'no way to run commands as root on this device', {
        hint: 'use a userdebug/eng build (adb root) or a rooted device (su)',
      });
  }
}

/** True when adbd itself is root, so sync (pull/push) also runs as root. */
export function adbdIsRoot(method: RootMethod): boolean {
  return method === 'adbd-root' || method === 'adb-root';
}

export interface RootAttempt {
  method: RootMethod;
  ok: boolean;
  detail: string;
}

export interface RootInfo {
  method: RootMethod;
  attempts: RootAttempt[];
  /** ro.debuggable ('1' on userdebug/eng), when it could be read. */
  debuggable?: string;
}

export interface RootOptions {
  /** Allow `adb root` (restarts adbd: kills anything started from an adb shell). Default true. */
  allowAdbRoot?: boolean;
  /** Deadline for one probe command. */
  probeTimeoutMs?: number;
  /** Deadline for adbd to come back after `adb root`. */
  restartTimeoutMs?: number;
}

const remembered = new Map<string, RootMethod>();

/** Errors that mean "the device is gone", which root detection passes on instead of recording. */
const UNAVAILABLE = new Set(['not-found', 'unauthorized', 'no-permissions', 'server-unreachable']);

/** The method found last for this serial (in this process), if any. */
export function rememberedRootMethod(serial: string): RootMethod | undefined {
  return remembered.get(serial);
}

export function forgetRootMethod(serial: string): void {
  remembered.delete(serial);
}

/** Does `cmd` wrapped for `method` print uid 0? Errors (timeouts, su prompts) count as no. */
async function probeUid0(adb: Adb, serial: string, method: RootMethod, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  try {
    const r = await adb.shell(serial, asRoot(method, 'id -u'), { timeoutMs });
    const out = r.stdout.trim();
    if (r.exitCode === 0 && out === '0') return { ok: true, detail: 'uid 0' };
    // Ran, but not as root (adbd as the shell user), or printed nothing (a su that ignored the command).
    if (r.exitCode === 0 && /^\d+$/.test(out)) return { ok: false, detail: `uid ${out}` };
    if (r.exitCode === 0 && out === '' && !r.stderr.trim()) return { ok: false, detail: 'exit 0 without output (the command did not run)' };
    const why = (r.stderr.trim() || out).split('\n').pop() ?? '';
    return { ok: false, detail: `exit ${r.exitCode}${why ? `: ${why.slice(0, 120)}` : ''}` };
  } catch (e) {
    if (e instanceof AdbError && UNAVAILABLE.has(e.kind)) throw e;
    return { ok: false, detail: (e as Error).message };
  }
}

async function hasSu(adb: Adb, serial: string, timeoutMs: number): Promise<boolean> {
  const r = await adb.shell(serial, 'command -v su >/dev/null 2>&1 || which su >/dev/null 2>&1', { timeoutMs });
  return r.exitCode === 0;
}

/**
 * `adb root`, then wait for the adbd restart (adbkit's root() does not): the device drops off,
 * comes back, and `id -u` says 0. Tradefed style: a short pause, wait-for-device, re-check.
 */
async function adbRoot(adb: Adb, serial: string, opts: Required<RootOptions>): Promise<{ ok: boolean; detail: string }> {
  const answer = await adb.rootService(serial, { timeoutMs: opts.probeTimeoutMs });
  if (/cannot run as root|production build/i.test(answer)) return { ok: false, detail: answer };
  if (/already running as root/i.test(answer)) {
    const p = await probeUid0(adb, serial, 'adbd-root', opts.probeTimeoutMs);
    return { ok: p.ok, detail: `${answer}; ${p.detail}` };
  }
  if (!/restarting adbd as root/i.test(answer)) return { ok: false, detail: answer || 'no answer to `adb root`' };
  const end = Date.now() + opts.restartTimeoutMs;
  await new Promise((r) => setTimeout(r, 1_000)); // adbd needs a moment to go away (Tradefed: 2 s)
  try {
    await pRetry(async () => {
      const left = end - Date.now();
      if (left <= 0) throw new AbortError('adbd did not come back as root in time');
      await adb.waitForDevice(serial, { timeoutMs: left });
      const p = await probeUid0(adb, serial, 'adbd-root', Math.min(opts.probeTimeoutMs, Math.max(500, end - Date.now())));
      if (!p.ok) throw new Error(`not root yet (${p.detail})`);
    }, { retries: 30, minTimeout: 300, maxTimeout: 2_000, maxRetryTime: opts.restartTimeoutMs });
    return { ok: true, detail: answer };
  } catch (e) {
    return { ok: false, detail: `${answer}; adbd did not come back as root: ${(e as Error).message}` };
  }
}

/**
 * Find how to be root, in order: adbd already root, `adb root` (if allowed), `su 0`, `su -c`.
 * Remembers the result for the serial. Throws only for device-unavailable errors.
 */
export async function detectRoot(adb: Adb, serial: string, options: RootOptions = {}): Promise<RootInfo> {
  const opts: Required<RootOptions> = {
    allowAdbRoot: options.allowAdbRoot ?? true,
    probeTimeoutMs: options.probeTimeoutMs ?? 10_000,
    restartTimeoutMs: options.restartTimeoutMs ?? 45_000,
  };
  const attempts: RootAttempt[] = [];
  const done = (method: RootMethod, debuggable?: string): RootInfo => {
    remembered.set(serial, method);
    return { method, attempts, debuggable };
  };

  const direct = await probeUid0(adb, serial, 'adbd-root', opts.probeTimeoutMs);
  attempts.push({ method: 'adbd-root', ok: direct.ok, detail: direct.detail });
  if (direct.ok) return done('adbd-root');

  let debuggable: string | undefined;
  try {
    debuggable = (await adb.shell(serial, 'getprop ro.debuggable', { timeoutMs: opts.probeTimeoutMs })).stdout.trim();
  } catch { /* leave undefined */ }

  if (opts.allowAdbRoot && debuggable !== '0') {
    let r: { ok: boolean; detail: string };
    try {
      r = await adbRoot(adb, serial, opts);
    } catch (e) {
      if (e instanceof AdbError && UNAVAILABLE.has(e.kind)) throw e;
      r = { ok: false, detail: `adb root failed: ${(e as Error).message}` };
    }
    attempts.push({ method: 'adb-root', ok: r.ok, detail: r.detail });
    if (r.ok) return done('adb-root', debuggable);
  } else {
    attempts.push({ method: 'adb-root', ok: false, detail: opts.allowAdbRoot ? 'ro.debuggable=0 (user build)' : 'not tried (--no-adb-root)' });
  }

  if (await hasSu(adb, serial, opts.probeTimeoutMs).catch(() => false)) {
    for (const m of ['su-0', 'su-c'] as const) {
      const p = await probeUid0(adb, serial, m, opts.probeTimeoutMs);
      attempts.push({ method: m, ok: p.ok, detail: p.detail });
      if (p.ok) return done(m, debuggable);
    }
  } else {
    attempts.push({ method: 'su-0', ok: false, detail: 'no su binary' });
  }
  return done('none', debuggable);
}

/**
 * The remembered method if it still works (a reboot undoes `adb root`), else detect again.
 * Throws KmlError(NOT_CAPABLE) when there is no way to be root.
 */
export async function ensureRoot(adb: Adb, serial: string, options: RootOptions = {}): Promise<RootMethod> {
  const known = remembered.get(serial);
  if (known && known !== 'none') {
    const p = await probeUid0(adb, serial, known, options.probeTimeoutMs ?? 10_000);
    if (p.ok) return known;
  }
  const info = await detectRoot(adb, serial, options);
  if (info.method === 'none') {
    throw new KmlError(ExitCode.NOT_CAPABLE, `cannot run commands as root on ${shDisplay(serial)}`, {
      hint: rootRemedy(info.debuggable),
      details: { attempts: info.attempts },
    });
  }
  return info.method;
}

/** What to do when no root method works. */
export function rootRemedy(debuggable?: string): string {
  return debuggable === '0'
    ? 'this is a user build (ro.debuggable=0): flash a userdebug or eng build (adb root works there) or root the device (Magisk su)'
    : 'run `adb root` (userdebug/eng builds) or install su; kmemleak can only be read as root';
}
