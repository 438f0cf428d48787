// `kml lab ...`: a lab device (a real kmemleak kernel under QEMU, reached through the real adb server).
import { Command, Option } from 'commander';
import { ExitCode, KmlError } from '../errors.js';
import {
  DEFAULT_UP, labDown, labKillAdbd, labLeak, labList, labReboot, labReplug, labUnplug, labUp, parseLeakPaths, prepareLab,
  type LabContext, type LabDevice, type UpOptions,
} from '../lab/lab.js';
import { action, globalOptions, parseDuration, parsePositiveInt, serialFrom, stderrLogger } from './context.js';
import { terminalSafe } from '../terminal.js';
import { LAB_BUILDS, LAB_SUS, type LabBuild, type LabSu } from '../lab/guest-config.js';

function context(cmd: Command): LabContext {
  const g = globalOptions(cmd);
  return {
    adbPort: g.adbPort,
    log: stderrLogger(g.logLevel),
    progress: process.stdout.isTTY ? process.stderr : undefined,
  };
}

function parseNonNegativeInt(name: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new KmlError(ExitCode.USAGE, `${name} must be a whole number ≥ 0, got ${JSON.stringify(text)}`);
  return Number(text);
}

function out(json: boolean, value: unknown, human: string): void {
  process.stdout.write(json ? JSON.stringify(value) + '\n' : terminalSafe(human));
}

/** The one serial a fault command acts on: the argument, -s, ANDROID_SERIAL, or the only running lab device. */
function oneSerial(ctx: LabContext, arg: string | undefined, cmd: Command): string {
  if (arg) return arg;
  const fromOpt = serialFrom((cmd.optsWithGlobals() as { serial?: string }).serial);
  if (fromOpt.length) return fromOpt[0];
  const running = labList(ctx);
  if (running.length === 1) return running[0].serial;
  throw new KmlError(ExitCode.USAGE, running.length ? `several lab devices run (${running.map((d) => d.serial).join(', ')}): name one` : 'no lab device is running', {
    hint: running.length ? undefined : 'kml lab up',
  });
}

function deviceLine(d: LabDevice): string {
  const live = d.state === 'running' || d.state === 'booting';
  const extra = [d.state, live && !d.plugged ? 'unplugged' : '', d.kmemleak ? 'kmemleak=on' : 'kmemleak=off', d.build, d.accel, `${d.memMb}MB`, `slot ${d.slot}`]
    .filter(Boolean).join('  ');
  return `${d.serial.padEnd(21)} ${extra}${d.error ? `  (${d.error})` : ''}`;
}

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('lab devices: a real kmemleak kernel under QEMU, connected to the real adb server')
    .addHelpText('after', `
Examples:
  kml lab up                               boot one device; prints its serial (127.0.0.1:PORT)
  kml lab up --count 2 --json              two devices, JSON for scripts
  kml lab up --no-kmemleak                 kmemleak compiled in but off (writes to it fail with EPERM)
  kml lab list                             running lab devices
  kml lab leak 127.0.0.1:40123 --rate 20   start leaking 20 kernel objects/s (module kml_leaky)
  kml lab unplug 127.0.0.1:40123           pull the "cable": adb shows it offline
  kml lab replug 127.0.0.1:40123           plug it back and reconnect adb
  kml lab reboot 127.0.0.1:40123           reboot the guest, wait until adb works again
  kml lab kill-adbd 127.0.0.1:40123        kill adbd and every process it started
  kml lab down                             stop all lab devices

The first 'up' builds the kernel (about 6 minutes on 2 cores); later boots take seconds.
Builds are cached in $KML_CACHE_DIR (default ~/.cache/kml), device state in $KML_STATE_DIR.`);

  lab
    .command('up')
    .description('boot lab device(s), adb connect them, wait until `adb shell` works, print the serial(s)')
    .option('--count <n>', 'number of devices', '1')
    .option('--no-kmemleak', 'boot without kmemleak=on (the kernel has DEBUG_KMEMLEAK_DEFAULT_OFF=y)')
    .option('--mem <mb>', 'guest memory in MB', String(DEFAULT_UP.memMb))
    .option('--data-size <mb>', 'size of the persistent /data disk in MB', String(DEFAULT_UP.dataSizeMb))
    .addOption(new Option('--debugfs <state>', 'debugfs at /sys/kernel/debug after boot').choices(['mounted', 'unmounted']).default('mounted'))
    .addOption(new Option('--build <type>', 'root as on this kind of build: userdebug-root (adbd runs as root), userdebug (adbd runs as the shell user until `adb root`), user (no root at all)').choices([...LAB_BUILDS]).default(DEFAULT_UP.build))
    .addOption(new Option('--su <kind>', 'the device\'s su: aosp (`su 0 CMD`, userdebug builds), magisk (`su -c CMD`), none; default: aosp, none on a user build').choices([...LAB_SUS]))
    .option('--cpus <n>', 'guest CPUs', String(DEFAULT_UP.cpus))
    .addOption(new Option('--accel <accel>', 'QEMU accelerator; auto uses KVM only where it really works').choices(['auto', 'tcg', 'kvm']).default('auto'))
    .option('--wipe-data', 'start with an empty /data disk')
    .option('--timeout <duration>', 'give up if a device is not usable after this long', '180s')
    .option('--json', 'print JSON')
    .addHelpText('after', `
Examples:
  kml lab up
  kml lab up --count 2 --mem 768 --json
  kml lab up --no-kmemleak --debugfs unmounted
  kml lab up --build userdebug             adbd as the shell user: kml must \`adb root\` (or su 0)
  kml lab up --build user --su magisk      a Magisk-rooted production build: only \`su -c\``)
    .action(action(async (o: Record<string, string | boolean>, cmd: Command) => {
      const ctx = context(cmd);
      const opts: UpOptions = {
        count: parsePositiveInt('--count', String(o.count)),
        memMb: parsePositiveInt('--mem', String(o.mem)),
        dataSizeMb: parsePositiveInt('--data-size', String(o.dataSize)),
        kmemleak: o.kmemleak !== false,
        debugfsMounted: o.debugfs !== 'unmounted',
        build: o.build as LabBuild,
        su: o.su as LabSu | undefined,
        cpus: parsePositiveInt('--cpus', String(o.cpus)),
        accel: o.accel as UpOptions['accel'],
        wipeData: Boolean(o.wipeData),
        timeoutMs: parseDuration('--timeout', String(o.timeout)),
      };
      if (opts.memMb < 128) throw new KmlError(ExitCode.USAGE, '--mem must be at least 128 MB (node runs in the guest)');
      if (opts.dataSizeMb < 16) throw new KmlError(ExitCode.USAGE, '--data-size must be at least 16 MB');
      if (opts.count > 16) throw new KmlError(ExitCode.USAGE, '--count: at most 16 devices');
      const devices = await labUp(ctx, opts);
      out(Boolean(o.json), { ok: true, devices }, devices.map((d) => `${d.serial}\n`).join(''));
    }));

  lab
    .command('down')
    .description('disconnect and stop lab devices (all when no serial is given)')
    .argument('[serial...]', 'device serials (127.0.0.1:PORT)')
    .option('--json', 'print JSON')
    .addHelpText('after', `
Examples:
  kml lab down
  kml lab down 127.0.0.1:40123`)
    .action(action(async (serials: string[], o: { json?: boolean }, cmd: Command) => {
      const stopped = await labDown(context(cmd), serials);
      out(Boolean(o.json), { ok: true, stopped: stopped.map((d) => d.serial) }, stopped.map((d) => `stopped ${d.serial}\n`).join(''));
    }));

  lab
    .command('list')
    .description('list lab devices')
    .option('--all', 'include stopped devices (their /data disks are kept)')
    .option('--json', 'print JSON')
    .action(action(async (o: { json?: boolean; all?: boolean }, cmd: Command) => {
      const devices = labList(context(cmd), { all: o.all });
      out(Boolean(o.json), { ok: true, devices }, devices.length ? devices.map((d) => deviceLine(d) + '\n').join('') : 'no lab devices running\n');
    }));

  lab
    .command('build')
    .description('build (or find cached) the lab kernel and guest initramfs')
    .option('--json', 'print JSON')
    .action(action(async (o: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const prep = await prepareLab({ ...ctx, progress: process.stderr.isTTY ? process.stderr : undefined }, 'tcg');
      out(Boolean(o.json), { ok: true, kernel: prep.kernel.dir, release: prep.kernel.release, initramfs: prep.initramfs },
        `kernel ${prep.kernel.release}: ${prep.kernel.dir}\ninitramfs: ${prep.initramfs}\n`);
    }));

  lab
    .command('reboot')
    .description('reboot a lab device and wait until adb works again (boot_id changes)')
    .argument('[serial]', 'device serial (default: -s, ANDROID_SERIAL, or the only running device)')
    .option('-s, --serial <serial>', 'device serial (also ANDROID_SERIAL)')
    .option('--hard', 'reset the VM instead of a clean reboot (like a watchdog reset)')
    .option('--json', 'print JSON')
    .action(action(async (serial: string | undefined, o: { json?: boolean; hard?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const r = await labReboot(ctx, oneSerial(ctx, serial, cmd), { hard: o.hard });
      out(Boolean(o.json), { ok: true, ...r }, `${r.serial} rebooted; adb works again after ${(r.rebootToDeviceMs / 1000).toFixed(1)} s\n`);
    }));

  lab
    .command('unplug')
    .description('pull the "cable": connections drop, adb shows the device offline (and forgets it after ~60 s)')
    .argument('[serial]', 'device serial')
    .option('-s, --serial <serial>', 'device serial (also ANDROID_SERIAL)')
    .option('--json', 'print JSON')
    .action(action(async (serial: string | undefined, o: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const r = await labUnplug(ctx, oneSerial(ctx, serial, cmd));
      out(Boolean(o.json), { ok: true, ...r }, `${r.serial} unplugged (${r.connectionsReset} connection(s) reset)\n`);
    }));

  lab
    .command('replug')
    .description('plug the "cable" back, adb connect again, wait until adb works')
    .argument('[serial]', 'device serial')
    .option('-s, --serial <serial>', 'device serial (also ANDROID_SERIAL)')
    .option('--json', 'print JSON')
    .action(action(async (serial: string | undefined, o: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const r = await labReplug(ctx, oneSerial(ctx, serial, cmd));
      out(Boolean(o.json), { ok: true, ...r }, `${r.serial} replugged; adb works again after ${(r.replugToDeviceMs / 1000).toFixed(1)} s\n`);
    }));

  lab
    .command('kill-adbd')
    .description("kill the device's adbd and every process it started (Android's init does the same); it restarts ~1 s later")
    .argument('[serial]', 'device serial')
    .option('-s, --serial <serial>', 'device serial (also ANDROID_SERIAL)')
    .option('--wait', 'return only once adb works again')
    .option('--json', 'print JSON')
    .action(action(async (serial: string | undefined, o: { json?: boolean; wait?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const r = await labKillAdbd(ctx, oneSerial(ctx, serial, cmd), { wait: o.wait });
      out(Boolean(o.json), { ok: true, ...r }, `${r.serial}: adbd killed${o.wait ? ' and back' : ''}\n`);
    }));

  lab
    .command('leak')
    .description('make the kernel leak: load kml_leaky or change its rate, paths and sizes at runtime')
    .argument('[serial]', 'device serial')
    .option('-s, --serial <serial>', 'device serial (also ANDROID_SERIAL)')
    .option('--rate <n>', 'objects leaked per second (0 stops)')
    .option('--paths <list>', 'call paths: cache,request,name (or 1,2,3, or all)')
    .option('--sizes <list>', 'object sizes in bytes for paths 1,2,3, e.g. 200,1500,64')
    .option('--max-kb <n>', 'stop after leaking this many KiB in total (0 = no limit)')
    .option('--stop', 'same as --rate 0')
    .option('--unload', 'rmmod kml_leaky (its leaked objects stay leaked)')
    .option('--json', 'print JSON')
    .addHelpText('after', `
Examples:
  kml lab leak 127.0.0.1:40123 --rate 20
  kml lab leak 127.0.0.1:40123 --rate 5 --paths cache,name --sizes 4096,1500,64
  kml lab leak --stop`)
    .action(action(async (serial: string | undefined, o: Record<string, string | boolean | undefined>, cmd: Command) => {
      const ctx = context(cmd);
      const sizes = typeof o.sizes === 'string' ? o.sizes.split(',').map((s) => parsePositiveInt('--sizes', s)) : undefined;
      if (sizes && (sizes.length > 3 || sizes.some((s) => s > 65536))) throw new KmlError(ExitCode.USAGE, '--sizes: up to 3 sizes of at most 65536 bytes');
      const r = await labLeak(ctx, oneSerial(ctx, serial, cmd), {
        rate: o.stop ? 0 : typeof o.rate === 'string' ? parseNonNegativeInt('--rate', o.rate) : undefined,
        paths: typeof o.paths === 'string' ? parseLeakPaths(o.paths) : undefined,
        sizes,
        maxKb: typeof o.maxKb === 'string' ? parseNonNegativeInt('--max-kb', o.maxKb) : undefined,
        unload: Boolean(o.unload),
      });
      out(Boolean(o.json), { ok: true, ...r }, r.loaded
        ? `${r.serial}: kml_leaky rate=${r.rate}/s paths=${r.paths} sizes=${r.sizes?.join(',')} leaked so far ${r.leakedObjects} objects (${r.leakedBytes} bytes)\n`
        : `${r.serial}: kml_leaky unloaded\n`);
    }));
}
