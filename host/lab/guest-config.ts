// What the guest needs from the host to run our adbd: the host's own node (over read-only 9p
// shares, started through its dynamic loader so that adbd's commands see the guest's own root
// filesystem — no chroot), and per-device settings. Written into the device's cfg/ folder, which
// the guest mounts read-only as the `kmlcfg` 9p share (see scripts/lab/guest/rcS).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ExitCode, KmlError } from '../errors.js';

export interface Share {
  /** 9p mount tag (QEMU -virtfs mount_tag). */
  tag: string;
  hostPath: string;
  guestPath: string;
}

export interface GuestNode {
  /** Guest path of the ELF loader, or '' when node is static. */
  loader: string;
  /** Guest library search path for the loader (colon separated). */
  libraryPath: string;
  node: string;
  shares: Share[];
}

/** Map a host path to its guest path through the shares, or undefined when no share covers it. */
export function toGuestPath(hostPath: string, shares: Share[]): string | undefined {
  for (const s of shares) {
    const rel = path.relative(s.hostPath, hostPath);
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) return path.posix.join(s.guestPath, rel.split(path.sep).join('/'));
  }
  return undefined;
}

/** Parse `ldd` output into the interpreter and the resolved libraries (host paths, not yet realpath'd). */
export function parseLdd(text: string): { interpreter?: string; libraries: string[]; isStatic: boolean } {
  if (/not a dynamic executable|statically linked/.test(text)) return { libraries: [], isStatic: true };
  const libraries: string[] = [];
  let interpreter: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const arrow = /^\S+ => (\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (arrow) {
      libraries.push(arrow[1]);
      continue;
    }
    const direct = /^(\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (direct) {
      if (/ld-linux|ld64|ld-musl/.test(path.basename(direct[1]))) interpreter = direct[1];
      else libraries.push(direct[1]);
    }
  }
  return { interpreter, libraries, isStatic: false };
}

/**
 * Shares and paths for running this host's node inside the guest. /usr is shared (node and glibc on
 * Debian's merged /usr); a node installed elsewhere gets its own share of its install prefix.
 * Nothing else of the host is visible to the guest (adbd itself is copied into the cfg share).
 */
export function guestNode(nodePath: string = process.execPath): GuestNode {
  const node = realpathSync(nodePath);
  const shares: Share[] = [{ tag: 'usr', hostPath: '/usr', guestPath: '/host/usr' }];
  if (!toGuestPath(node, shares)) {
    shares.push({ tag: 'nodeprefix', hostPath: path.dirname(path.dirname(node)), guestPath: '/host/node' });
  }

  let lddText: string;
  try {
    lddText = execFileSync('ldd', [node], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const out = String((e as { stdout?: string }).stdout ?? '') + String((e as { stderr?: string }).stderr ?? '');
    if (/not a dynamic executable/.test(out)) lddText = out;
    else throw new KmlError(ExitCode.LAB, `cannot inspect ${node} with ldd: ${(e as Error).message}`, { hint: 'the lab needs a glibc Linux host' });
  }
  const ldd = parseLdd(lddText);
  const guestNodePath = toGuestPath(node, shares)!;
  if (ldd.isStatic) return { loader: '', libraryPath: '', node: guestNodePath, shares };
  if (!ldd.interpreter) throw new KmlError(ExitCode.LAB, `cannot find the ELF loader of ${node} in ldd's output`);
  const unmapped: string[] = [];
  const map = (p: string): string => {
    const g = toGuestPath(realpathSync(p), shares);
    if (!g) unmapped.push(p);
    return g ?? '';
  };
  const loader = map(ldd.interpreter);
  const dirs = [...new Set(ldd.libraries.map((l) => path.posix.dirname(map(l))))].filter((d) => d && d !== '.');
  if (unmapped.length) {
    throw new KmlError(ExitCode.LAB, `node's libraries are outside the folders the lab shares with the guest: ${unmapped.join(', ')}`, {
      hint: 'use a node installed under /usr or in its own prefix folder',
    });
  }
  return { loader, libraryPath: dirs.join(':'), node: guestNodePath, shares };
}

/** Single-quote a value for a POSIX shell (guest.env is sourced by busybox sh). */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export interface DeviceIdentity {
  serialno: string;
  model: string;
  product: string;
  device: string;
}

export const DEFAULT_IDENTITY: Omit<DeviceIdentity, 'serialno'> = {
  model: 'kml_lab',
  product: 'kml_lab_x86_64',
  device: 'kml_lab',
};

/** guest.env: sourced by the guest's rcS and adbd-service. */
export function renderGuestEnv(g: GuestNode, adbdGuestPath: string, hostname: string): string {
  const vars: Record<string, string> = {
    KML_SHARES: g.shares.map((s) => `${s.tag}:${s.guestPath}`).join(' '),
    KML_LD: g.loader,
    KML_LIBPATH: g.libraryPath,
    KML_NODE: g.node,
    KML_ADBD: adbdGuestPath,
    KML_ADBD_PORT: '5555',
    KML_HOSTNAME: hostname,
  };
  return '# Written by kml lab up; sourced by the guest (scripts/lab/guest/rcS, adbd-service).\n' +
    Object.entries(vars).map(([k, v]) => `${k}=${shQuote(v)}`).join('\n') + '\n';
}

/** adbd.args: one command-line argument per line (values may contain spaces). */
export function renderAdbdArgs(id: DeviceIdentity): string {
  const args = ['--port', '5555', '--listen', '0.0.0.0', '--shell', '/system/bin/sh',
    '--product', id.product, '--model', id.model, '--device', id.device,
    // busybox `reboot` asks init for a clean reboot (the data disk is unmounted first).
    '--reboot-cmd', 'reboot'];
  for (const a of args) if (a.includes('\n')) throw new KmlError(ExitCode.USAGE, `adbd argument contains a newline: ${JSON.stringify(a)}`);
  return args.join('\n') + '\n';
}

/**
 * What kind of Android build the lab device plays, as far as root goes:
 *   userdebug-root  a userdebug build after `adb root`: adbd runs as root (the default)
 *   userdebug       adbd starts as the shell user (uid 2000); `adb root` restarts it as root
 *   user            a production build: adbd runs as the shell user and refuses `adb root`
 */
export type LabBuild = 'userdebug-root' | 'userdebug' | 'user';
export const LAB_BUILDS: readonly LabBuild[] = ['userdebug-root', 'userdebug', 'user'];

/**
 * Which su the device has: AOSP's (`su 0 CMD...`, shell user and root only; userdebug builds ship
 * it), Magisk's (`su -c CMD`; a rooted user build), or none. Default: AOSP's on userdebug builds.
 */
export type LabSu = 'aosp' | 'magisk' | 'none';
export const LAB_SUS: readonly LabSu[] = ['aosp', 'magisk', 'none'];

/** Properties that make the guest's build.prop (a userdebug build, adbd root) into `build`. */
function buildProps(build: LabBuild, su: LabSu | undefined): string[] {
  const suProp = `kml.lab.su=${su ?? (build === 'user' ? 'none' : 'aosp')}`;
  if (build === 'userdebug') return ['service.adb.root=0', suProp];
  if (build === 'user') return ['ro.build.type=user', 'ro.build.tags=release-keys', 'ro.debuggable=0', 'service.adb.root=0', suProp];
  return [suProp];
}

/** device.prop: the per-device system properties getprop answers. */
export function renderDeviceProps(id: DeviceIdentity, debugfsMounted = true, build: LabBuild = 'userdebug-root', su?: LabSu): string {
  return [
    // Android 12+ userdebug: debugfs is unmounted after boot when restrictions are enabled.
    ...(debugfsMounted ? [] : ['ro.product.debugfs_restrictions.enabled=true']),
    // Read by scripts/lab/guest/adbd-service: whether adbd runs as root, and whether `adb root` works.
    ...buildProps(build, su),
    `ro.serialno=${id.serialno}`,
    `ro.boot.serialno=${id.serialno}`,
    `ro.product.model=${id.model}`,
    `ro.product.name=${id.product}`,
    `ro.product.device=${id.device}`,
  ].join('\n') + '\n';
}

/** Where the cfg share appears in the guest (scripts/lab/guest/rcS mounts it). */
export const GUEST_CFG_DIR = '/run/kml/cfg';
/** Where rcS puts the adbd snapshot inside the guest (tmpfs). */
export const GUEST_ADBD_MAIN = '/run/kml/adbd/main.js';

/**
 * Snapshot the compiled adbd (self-contained: node built-ins only) into the device's cfg folder, so
 * the guest never runs a dist/ that is being rebuilt, and sees nothing else of the checkout.
 * Returns the guest path of its main.js.
 */
export function snapshotAdbd(adbdDistDir: string, cfgDir: string): string {
  const target = path.join(cfgDir, 'adbd');
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  cpSync(adbdDistDir, target, { recursive: true, filter: (src) => !src.endsWith('.map') });
  // The compiled files are ES modules; outside the checkout nothing else says so.
  writeFileSync(path.join(target, 'package.json'), '{ "type": "module" }\n');
  // rcS copies it to the guest's tmpfs: loading ~20 modules over 9p costs seconds under TCG.
  return GUEST_ADBD_MAIN;
}
