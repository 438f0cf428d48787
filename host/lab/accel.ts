// Which QEMU accelerator the lab uses. TCG always works; KVM only when the CPU really has VMX/SVM.
// A /dev/kvm can exist without them (kvm_pvm, a software nested hypervisor): there a Linux guest
// takes minutes per boot step and then dies on an unemulated instruction, so /dev/kvm alone proves
// nothing. Detection is quick and conservative: flags + a device we can open + a 3-second QEMU probe.
import { spawn } from 'node:child_process';
import { constants, accessSync, readFileSync } from 'node:fs';
import { ExitCode, KmlError } from '../errors.js';

export type AccelRequest = 'auto' | 'tcg' | 'kvm';
export type Accel = 'tcg' | 'kvm';

export interface AccelFacts {
  /** /proc/cpuinfo lists vmx or svm. */
  hardwareVirt: boolean;
  /** /dev/kvm can be opened read-write. */
  kvmDevice: boolean;
}

export interface AccelChoice {
  accel: Accel;
  reason: string;
}

export function cpuHasVirtFlags(cpuinfo: string): boolean {
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
}

/** The decision without the probe: undefined means "auto, and KVM looks possible: probe it". */
export function decideAccel(request: AccelRequest, facts: AccelFacts): AccelChoice | undefined {
  if (request === 'tcg') return { accel: 'tcg', reason: 'requested' };
  if (request === 'kvm') {
    if (!facts.hardwareVirt) {
      throw new KmlError(ExitCode.LAB, '--accel kvm: this CPU has no vmx/svm flag, so KVM cannot run a Linux guest here', {
        hint: 'use --accel tcg (the default picks it automatically); a /dev/kvm without vmx/svm (kvm_pvm) hangs the guest',
      });
    }
    if (!facts.kvmDevice) {
      throw new KmlError(ExitCode.LAB, '--accel kvm: /dev/kvm cannot be opened', { hint: 'add yourself to the kvm group, or use --accel tcg' });
    }
    return { accel: 'kvm', reason: 'requested' };
  }
  if (!facts.hardwareVirt) return { accel: 'tcg', reason: 'no vmx/svm CPU flag' };
  if (!facts.kvmDevice) return { accel: 'tcg', reason: '/dev/kvm not usable' };
  return undefined;
}

export function readAccelFacts(): AccelFacts {
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux: TCG
  }
  let kvmDevice = false;
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    kvmDevice = true;
  } catch {
    kvmDevice = false;
  }
  return { hardwareVirt: cpuHasVirtFlags(cpuinfo), kvmDevice };
}

/** Does QEMU start a KVM machine at all (within 3 s)? Catches broken setups such as MSR errors. */
export function probeKvm(qemu: string, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(qemu, ['-accel', 'kvm', '-cpu', 'host', '-machine', 'q35', '-m', '64', '-nodefaults', '-display', 'none', '-S', '-monitor', 'stdio'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // The monitor prompt means the KVM machine was created; `info kvm` confirms it is enabled.
      if (out.includes('(qemu)') && !out.includes('kvm support')) child.stdin.write('info kvm\n');
      if (/kvm support: enabled/.test(out)) done(true);
      else if (/kvm support: disabled/.test(out)) done(false);
    });
    child.once('error', () => done(false));
    child.once('exit', () => done(false));
  });
}

export async function chooseAccel(request: AccelRequest, qemu: string): Promise<AccelChoice> {
  const decided = decideAccel(request, readAccelFacts());
  if (decided) return decided;
  return (await probeKvm(qemu)) ? { accel: 'kvm', reason: 'vmx/svm present and the KVM probe passed' } : { accel: 'tcg', reason: 'KVM probe failed' };
}
