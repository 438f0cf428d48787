// Where the lab keeps things: build outputs in the cache (shared, survives reboots of the host),
// per-device state (supervisor sockets, data disks) in the state dir, scripts in the checkout.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url)); // <repo>/dist/host/lab
/** The kml checkout (or installed package) root: the guest runs adbd from here over 9p. */
export const PACKAGE_ROOT = path.resolve(here, '..', '..', '..');
export const LAB_SCRIPTS = path.join(PACKAGE_ROOT, 'scripts', 'lab');
export const BUILD_KERNEL_SCRIPT = path.join(LAB_SCRIPTS, 'build-kernel');
export const MAKE_INITRAMFS_SCRIPT = path.join(LAB_SCRIPTS, 'make-initramfs');
/** The compiled device-side adb daemon (scripts/lab/adbd, built by `npm run build`). */
export const ADBD_MAIN = path.join(PACKAGE_ROOT, 'dist', 'scripts', 'lab', 'adbd', 'main.js');
/** The supervisor's entry point, started detached by `kml lab up`. */
export const SUPERVISOR_MAIN = path.join(here, 'supervisor-main.js');

type Env = NodeJS.ProcessEnv;

/** ${KML_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/kml}: the same rule as scripts/lab/build-kernel. */
export function cacheRoot(env: Env = process.env): string {
  if (env.KML_CACHE_DIR) return path.resolve(env.KML_CACHE_DIR);
  const xdg = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(xdg, 'kml');
}

/** ${KML_STATE_DIR:-$XDG_RUNTIME_DIR/kml or ~/.cache/kml}/lab: one dev-<slot>/ folder per lab device. */
export function labStateDir(env: Env = process.env): string {
  if (env.KML_STATE_DIR) return path.join(path.resolve(env.KML_STATE_DIR), 'lab');
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'kml', 'lab');
  return path.join(env.HOME || os.homedir(), '.cache', 'kml', 'lab');
}
