// The QEMU command line of a lab device (pure), and where QEMU is.
import { execFileSync } from 'node:child_process';
import { ExitCode, KmlError } from '../errors.js';
import type { Accel } from './accel.js';
import type { Share } from './guest-config.js';

export interface QemuSpec {
  name: string;
  accel: Accel;
  cpus: number;
  memMb: number;
  kernel: string;
  initramfs: string;
  kmemleak: boolean;
  debugfsMounted: boolean;
  /** Host port (on 127.0.0.1) forwarded to the guest's adbd port 5555. */
  forwardPort: number;
  dataImage: string;
  shares: Share[];
  qmpSocket: string;
  pidFile: string;
}

export function kernelCmdline(spec: Pick<QemuSpec, 'kmemleak' | 'debugfsMounted'>): string {
  const words = ['console=ttyS0,115200', 'quiet', 'panic=-1', 'page_owner=on'];
  // Like the seed's kernel: CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF=y, so kmemleak runs only with kmemleak=on.
  if (spec.kmemleak) words.push('kmemleak=on');
  words.push(`kml.debugfs=${spec.debugfsMounted ? 'mounted' : 'unmounted'}`);
  return words.join(' ');
}

export function qemuArgs(spec: QemuSpec): string[] {
  const accel = spec.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max'];
  const args = [
    '-name', spec.name,
    ...accel,
    '-machine', 'q35',
    '-smp', String(spec.cpus),
    '-m', String(spec.memMb),
    '-nodefaults', '-no-user-config',
    '-display', 'none',
    '-kernel', spec.kernel,
    '-initrd', spec.initramfs,
    '-append', kernelCmdline(spec),
    // Serial console on stdio: the supervisor logs it and types control lines into it.
    '-serial', 'stdio',
    '-qmp', `unix:${spec.qmpSocket},server=on,wait=off`,
    '-pidfile', spec.pidFile,
    // User-mode network, nothing leaves QEMU (restrict=on) except the loopback-only forward to adbd.
    '-netdev', `user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:${spec.forwardPort}-:5555`,
    '-device', 'virtio-net-pci,netdev=net0',
    // /data: the per-device ext4 image.
    '-drive', `file=${spec.dataImage},format=raw,if=none,id=data,cache=writeback`,
    '-device', 'virtio-blk-pci,drive=data',
  ];
  for (const s of spec.shares) {
    if (/[,=]/.test(s.hostPath)) {
      throw new KmlError(ExitCode.LAB, `cannot share ${JSON.stringify(s.hostPath)} with the guest: QEMU option values cannot contain ',' or '='`, {
        hint: 'move kml or node to a path without commas',
      });
    }
    args.push('-virtfs', `local,path=${s.hostPath},mount_tag=${s.tag},security_model=none,readonly=on`);
  }
  return args;
}

export const QEMU_BINARY = 'qemu-system-x86_64';

/** The QEMU binary's path; a clear error when it is not installed. */
export function findQemu(env: NodeJS.ProcessEnv = process.env): string {
  const wanted = env.KML_QEMU || QEMU_BINARY;
  try {
    execFileSync(wanted, ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return wanted;
  } catch {
    throw new KmlError(ExitCode.LAB, `${wanted} not found or not runnable`, { hint: 'install it: apt-get install qemu-system-x86 (or run scripts/setup)' });
  }
}
