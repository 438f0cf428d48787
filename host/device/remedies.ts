// What to tell a user when a doctor check fails: the exact defconfig lines and kernel command-line
// change, as in the seed recipe (a defconfig diff turning on CONFIG_DEBUG_KMEMLEAK and turning off
// CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF, and " kmemleak=on" appended by the bootloader).
import { shDisplay } from '../adb/quote.js';
import type { RootMethod } from '../adb/root.js';

/** `adb -s SERIAL` (with -P when not the default server), quoted for copy-paste. */
export function adbPrefix(serial: string, port?: number): string {
  return `adb${port && port !== 5037 ? ` -P ${port}` : ''} -s ${shDisplay(serial)}`;
}

/** A device command as a user would type it, wrapped for the root method that works. */
export function rootShell(serial: string, cmd: string, method: RootMethod | undefined, port?: number): string {
  const q = `'${cmd.replace(/'/g, `'\\''`)}'`;
  switch (method) {
    case 'su-0': return `${adbPrefix(serial, port)} shell su 0 sh -c ${q}`;
    case 'su-c': return `${adbPrefix(serial, port)} shell su -c ${q}`;
    case 'adbd-root':
    case 'adb-root': return `${adbPrefix(serial, port)} shell ${q}`;
    default: return `${adbPrefix(serial, port)} root && ${adbPrefix(serial, port)} shell ${q}`;
  }
}

export const REMEDY = {
  kmemleakConfig:
    'rebuild the kernel with kmemleak: add to the board defconfig (e.g. arch/arm64/configs/<board>_defconfig)\n'
    + '    CONFIG_DEBUG_KMEMLEAK=y\n'
    + '    # CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set\n'
    + '  (GKI: a debug fragment `scripts/config -e CONFIG_DEBUG_KMEMLEAK`), then flash the new boot image',

  defaultOff:
    'kmemleak is compiled in but off by default (CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y) and the command line lacks kmemleak=on. Either:\n'
    + '    in the defconfig: replace CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y with\n'
    + '    # CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set\n'
    + '  or add kmemleak=on to the kernel command line: in the bootloader (e.g. LK aboot.c appends " kmemleak=on")\n'
    + '    or BOARD_KERNEL_CMDLINE += kmemleak=on in BoardConfig.mk; then reboot',

  cmdlineOff:
    'the kernel command line has kmemleak=off, which disables kmemleak for this boot: remove it from the bootloader\n'
    + '  command line / BOARD_KERNEL_CMDLINE (and any androidboot/bootconfig kernel.kmemleak), then reboot',

  debugFsConfig:
    'the kernel has no debugfs: add CONFIG_DEBUG_FS=y to the defconfig (CONFIG_DEBUG_KMEMLEAK selects it), and on\n'
    + '  5.10+ kernels do not set CONFIG_DEBUG_FS_ALLOW_NONE / debugfs=off',

  earlyLog:
    'kmemleak ran out of its early log during boot and disabled itself: raise it in the defconfig\n'
    + '    CONFIG_DEBUG_KMEMLEAK_EARLY_LOG_SIZE=40000\n'
    + '  (kernels before 5.4; from 5.4 the equivalent is CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE), then reboot',

  memPool:
    'kmemleak\'s metadata pool ran empty (objects may go untracked or kmemleak may disable itself): raise it in the defconfig\n'
    + '    CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE=64000\n'
    + '  (or CONFIG_DEBUG_KMEMLEAK_EARLY_LOG_SIZE=40000 before 5.4)',

  disabledAtRuntime:
    'kmemleak disabled itself during this boot (a write of "off", or an internal error such as an allocation\n'
    + '  failure) and stays off until reboot: reboot the device; if it happens again, read `dmesg | grep kmemleak`',

  kmemleakMissingOldKernel:
    'on kernels before 4.19 the kmemleak file exists only while kmemleak is enabled: check CONFIG_DEBUG_KMEMLEAK=y,\n'
    + '  # CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set (or kmemleak=on on the command line), and no kmemleak=off',
} as const;

/** Android 12+ userdebug: init unmounts debugfs after boot unless this property is set. */
export function keepDebugfsRemedy(serial: string, method: RootMethod | undefined, port?: number): string {
  return `keep debugfs mounted across reboots: ${rootShell(serial, 'setprop persist.dbg.keep_debugfs_mounted 1', method, port)}`;
}

/** debugfs is not mounted at /sys/kernel/debug. */
export function debugfsRemedy(args: { serial: string; port?: number; method?: RootMethod; sdk?: number; buildType?: string }): string {
  const lines = [
    `mount debugfs as root: ${rootShell(args.serial, 'mount -t debugfs debugfs /sys/kernel/debug', args.method, args.port)}`,
    '  (or rerun `kml doctor --mount-debugfs`)',
  ];
  if (args.sdk !== undefined && args.sdk >= 31) {
    lines.push(`  Android 12+ userdebug unmounts debugfs after boot; ${keepDebugfsRemedy(args.serial, args.method, args.port)}`);
  }
  if (args.buildType === 'user' && args.sdk !== undefined && args.sdk >= 30) {
    lines.push('  this is a user build: Android 11+ user builds cannot mount debugfs; use a userdebug or eng build');
  }
  return lines.join('\n');
}

/** No root: what would give it. */
export function noRootRemedy(args: { serial: string; port?: number; debuggable?: string; allowAdbRoot: boolean }): string {
  if (args.debuggable === '0') {
    return 'this is a user build (ro.debuggable=0): flash a userdebug or eng build (adb root works there), or root it (Magisk su)';
  }
  if (!args.allowAdbRoot) return `allow adb root (drop --no-adb-root), or run \`${adbPrefix(args.serial, args.port)} root\` yourself`;
  return `run \`${adbPrefix(args.serial, args.port)} root\` (userdebug/eng builds) or install su; kmemleak can only be read as root`;
}

export function deviceSpaceRemedy(serial: string, port?: number): string {
  return `free space on the device's /data (snapshots go to /data/local/tmp/kml): e.g. \`${adbPrefix(serial, port)} shell rm -rf /data/local/tmp/<old files>\``;
}

export function hostSpaceRemedy(dir: string): string {
  return `free space on the host disk holding ${shDisplay(dir)}, or pass --out DIR on another disk`;
}
