// Lab operations behind `kml lab ...`: boot devices (each owned by a detached supervisor), list,
// stop, and the fault controls (reboot, unplug/replug, kill adbd, leak).
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ExitCode, KmlError } from '../errors.js';
import type { Logger } from '../log.js';
import { chooseAccel, type AccelRequest } from './accel.js';
import { asRoot } from '../adb/root.js';
import { AdbLink } from './adb-link.js';
import { ensureInitramfs, ensureKernel, type KernelArtifacts } from './artifacts.js';
import { sendControl, type ControlReply, type ControlRequest } from './control.js';
import { DEFAULT_IDENTITY, guestNode, renderAdbdArgs, renderDeviceProps, renderGuestEnv, shQuote, snapshotAdbd, type LabBuild, type LabSu } from './guest-config.js';
import { ADBD_MAIN, SUPERVISOR_MAIN, labStateDir } from './paths.js';
import { findQemu } from './qemu.js';
import {
  DeviceDir, claimSlot, isSupervisor, listSlots, pidAlive, readJson, releaseSlot,
  type DeviceConfig, type DeviceOptions, type DeviceStatus,
} from './state.js';

export interface LabContext {
  adbPort: number;
  log: Logger;
  /** Lab state root (default: labStateDir()). */
  stateRoot?: string;
  env?: NodeJS.ProcessEnv;
  /** Human progress (kernel build, boot lines); undefined = quiet. */
  progress?: NodeJS.WritableStream;
  /** Stop the devices when this process dies (test helpers); default: devices outlive the caller. */
  ownerPid?: number;
}

export interface UpOptions {
  count: number;
  memMb: number;
  dataSizeMb: number;
  kmemleak: boolean;
  debugfsMounted: boolean;
  /** Root as which kind of build (see LabBuild). */
  build: LabBuild;
  /** Which su the device has (see LabSu); default: by build. */
  su?: LabSu;
  cpus: number;
  accel: AccelRequest;
  /** Start with an empty /data (recreate the slot's disk image). */
  wipeData: boolean;
  /** Boot + `adb shell echo` must succeed within this time (per device). */
  timeoutMs: number;
}

export const DEFAULT_UP: UpOptions = {
  count: 1, memMb: 512, dataSizeMb: 1024, kmemleak: true, debugfsMounted: true, build: 'userdebug-root', cpus: 1, accel: 'auto', wipeData: false, timeoutMs: 180_000,
};

export interface LabDevice {
  serial: string;
  slot: number;
  state: string;
  plugged: boolean;
  kmemleak: boolean;
  /** How root works on it (see LabBuild). */
  build: LabBuild;
  accel: string;
  memMb: number;
  bootCount: number;
  supervisorPid?: number;
  qemuPid?: number;
  stateDir: string;
  startedAt?: string;
  /** `kml lab up`: supervisor start to `adb shell echo` working. */
  bootToDeviceMs?: number;
  /** QEMU start (or guest reset) to adbd listening, as the supervisor measured it. */
  lastBootMs?: number;
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function stateRoot(ctx: LabContext): string {
  return ctx.stateRoot ?? labStateDir(ctx.env);
}

function toLabDevice(dev: DeviceDir, s: DeviceStatus): LabDevice {
  const alive = isSupervisor(s.supervisorPid);
  const live = ['starting', 'booting', 'running', 'stopping'].includes(s.state);
  return {
    serial: s.serial,
    slot: s.slot,
    state: live && !alive ? 'dead' : s.state,
    plugged: s.plugged,
    kmemleak: s.kmemleak,
    build: s.build ?? 'userdebug-root',
    accel: s.accel,
    memMb: s.memMb,
    bootCount: s.bootCount,
    supervisorPid: alive ? s.supervisorPid : undefined,
    qemuPid: alive ? s.qemuPid : undefined,
    stateDir: dev.dir,
    startedAt: s.startedAt,
    lastBootMs: s.lastBootMs,
    error: s.error,
  };
}

/** Every lab device that has state (running or not). */
export function labList(ctx: LabContext, opts: { all?: boolean } = {}): LabDevice[] {
  const root = stateRoot(ctx);
  const out: LabDevice[] = [];
  for (const slot of listSlots(root)) {
    const dev = new DeviceDir(root, slot);
    const s = dev.readStatus();
    if (!s) continue;
    const d = toLabDevice(dev, s);
    if (opts.all || ['starting', 'booting', 'running', 'stopping', 'dead'].includes(d.state)) out.push(d);
  }
  return out;
}

/** Normalise what a user may type for a lab serial (localhost:P, just P). */
export function normaliseSerial(text: string): string {
  const t = text.trim();
  if (/^\d+$/.test(t)) return `127.0.0.1:${t}`;
  return t.replace(/^localhost:/, '127.0.0.1:');
}

function findDevice(ctx: LabContext, serial: string): { dev: DeviceDir; device: LabDevice } {
  const want = normaliseSerial(serial);
  const root = stateRoot(ctx);
  const all = labList(ctx);
  const device = all.find((d) => d.serial === want && d.state !== 'dead');
  if (!device) {
    const known = all.map((d) => d.serial).join(', ') || 'none';
    throw new KmlError(ExitCode.DEVICE, `no running lab device ${want} (running: ${known})`, { hint: 'kml lab list shows the lab devices; kml lab up starts one' });
  }
  return { dev: new DeviceDir(root, device.slot), device };
}

async function control(dev: DeviceDir, req: ControlRequest, timeoutMs?: number): Promise<ControlReply> {
  let reply: ControlReply;
  try {
    reply = await sendControl(dev.controlSocket, req, timeoutMs);
  } catch (e) {
    throw new KmlError(ExitCode.LAB, `lab supervisor of slot ${dev.slot} does not answer: ${(e as Error).message}`, {
      hint: `see ${dev.supervisorLog}`,
    });
  }
  if (!reply.ok) throw new KmlError(ExitCode.LAB, `${req.op} failed: ${reply.error ?? 'unknown error'}`, { hint: `see ${dev.supervisorLog} and ${dev.consoleLog}` });
  return reply;
}

function findMkfs(): string {
  for (const p of ['mkfs.ext4', '/usr/sbin/mkfs.ext4', '/sbin/mkfs.ext4']) {
    try {
      execFileSync(p, ['-V'], { stdio: 'ignore' });
      return p;
    } catch {
      // next
    }
  }
  throw new KmlError(ExitCode.LAB, 'mkfs.ext4 not found (needed for the lab device /data disk)', { hint: 'apt-get install e2fsprogs' });
}

/** The per-device /data disk: a sparse ext4 image, created once and kept across boots. */
export function ensureDataImage(file: string, sizeMb: number, wipe: boolean, log: Logger): void {
  const bytes = sizeMb * 1024 * 1024;
  let exists = existsSync(file);
  if (exists && wipe) exists = false;
  if (exists) {
    const current = statSync(file).size;
    if (current < bytes) {
      truncateSync(file, bytes);
      for (const tool of ['resize2fs', '/usr/sbin/resize2fs', '/sbin/resize2fs']) {
        try {
          execFileSync(tool, ['-f', file], { stdio: 'ignore' });
          log.info({ file, sizeMb }, 'grew the data disk');
          return;
        } catch {
          // try the next path
        }
      }
      log.warn({ file }, 'could not grow the ext4 filesystem (resize2fs missing); the disk keeps its old size');
    } else if (current > bytes) {
      log.warn({ file, currentMb: current / 1048576, sizeMb }, 'data disk is larger than --data-size; keeping it (use --wipe-data to recreate)');
    }
    return;
  }
  const mkfs = findMkfs();
  closeSync(openSync(file, 'w'));
  truncateSync(file, bytes);
  try {
    execFileSync(mkfs, ['-F', '-q', '-L', 'data', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new KmlError(ExitCode.LAB, `mkfs.ext4 failed on ${file}: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}`);
  }
}

function writeGuestConfig(dev: DeviceDir, slot: number, debugfsMounted: boolean, build: LabBuild, su: LabSu | undefined): void {
  mkdirSync(dev.cfgDir, { recursive: true });
  const g = guestNode(process.execPath);
  const adbd = snapshotAdbd(path.dirname(ADBD_MAIN), dev.cfgDir);
  const id = { ...DEFAULT_IDENTITY, serialno: `KMLLAB${String(slot).padStart(4, '0')}` };
  writeFileSync(dev.file('cfg/guest.env'), renderGuestEnv(g, adbd, 'localhost'));
  writeFileSync(dev.file('cfg/adbd.args'), renderAdbdArgs(id));
  writeFileSync(dev.file('cfg/device.prop'), renderDeviceProps(id, debugfsMounted, build, su));
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

interface Prepared {
  kernel: KernelArtifacts;
  initramfs: string;
  qemu: string;
  accel: 'tcg' | 'kvm';
}

/** Everything shared by the devices of one `up`: kernel, initramfs, QEMU, accelerator, adbd. */
export async function prepareLab(ctx: LabContext, accel: AccelRequest): Promise<Prepared> {
  const qemu = findQemu(ctx.env);
  if (!existsSync(ADBD_MAIN)) {
    throw new KmlError(ExitCode.LAB, `the lab's adbd is not built (${ADBD_MAIN} missing)`, { hint: 'run npm run build' });
  }
  const kernel = await ensureKernel({
    env: ctx.env,
    progress: ctx.progress,
    onBuildStart: () => ctx.progress?.write('kml: building the lab kernel (first run only, about 6 minutes on 2 cores)\n'),
  });
  const initramfs = await ensureInitramfs(kernel, { env: ctx.env });
  const choice = await chooseAccel(accel, qemu);
  ctx.log.info({ accel: choice.accel, reason: choice.reason, kernel: kernel.dir, initramfs }, 'lab prepared');
  return { kernel, initramfs, qemu, accel: choice.accel };
}

async function bootOne(ctx: LabContext, prep: Prepared, opts: UpOptions, adb: AdbLink): Promise<LabDevice> {
  const root = stateRoot(ctx);
  const dev = claimSlot(root);
  const t0 = Date.now();
  let supervisorPid: number | undefined;
  try {
    const previous = dev.readStatus();
    // A supervisor that died may have left its QEMU running on this slot's data disk.
    const orphan = qemuPidOf(dev);
    if (orphan) {
      ctx.log.warn({ slot: dev.slot, pid: orphan }, 'killing the QEMU a dead supervisor left behind');
      process.kill(orphan, 'SIGKILL');
      await waitGone(orphan, 5000);
    }
    ensureDataImage(dev.dataImage, opts.dataSizeMb, opts.wipeData, ctx.log);
    writeGuestConfig(dev, dev.slot, opts.debugfsMounted, opts.build, opts.su);
    const options: DeviceOptions = {
      memMb: opts.memMb, dataSizeMb: opts.dataSizeMb, kmemleak: opts.kmemleak, debugfsMounted: opts.debugfsMounted, build: opts.build, su: opts.su, cpus: opts.cpus, accelRequest: opts.accel,
    };
    const config: DeviceConfig = {
      schemaVersion: 1, slot: dev.slot, createdAt: new Date().toISOString(), options, accel: prep.accel, qemu: prep.qemu,
      kernelDir: prep.kernel.dir, kernelRelease: prep.kernel.release, bzImage: prep.kernel.bzImage, initramfs: prep.initramfs,
      relayPort: previous?.relayPort ?? 0,
      ownerPid: ctx.ownerPid,
    };
    dev.writeConfig(config);
    // The old status would be mistaken for this boot's.
    writeFileSync(dev.statusFile, '{}\n');

    const logFd = openSync(dev.supervisorLog, 'a');
    const child = spawn(process.execPath, [SUPERVISOR_MAIN, root, String(dev.slot)], {
      detached: true, stdio: ['ignore', logFd, logFd], env: ctx.env ?? process.env, cwd: os.homedir(),
    });
    closeSync(logFd);
    child.unref();
    supervisorPid = child.pid;

    // Wait for the guest's adbd to listen (the supervisor reports it in status.json).
    let status: DeviceStatus | undefined;
    for (;;) {
      status = readJson<DeviceStatus>(dev.statusFile);
      if (status?.state === 'running') break;
      if (status?.state === 'failed' || status?.state === 'stopped') {
        throw new KmlError(ExitCode.LAB, `lab device slot ${dev.slot} failed to boot: ${status.error ?? 'unknown error'}`, { hint: `see ${dev.supervisorLog} and ${dev.consoleLog}` });
      }
      if (!pidAlive(supervisorPid)) {
        throw new KmlError(ExitCode.LAB, `lab supervisor of slot ${dev.slot} exited during boot`, { hint: `${dev.supervisorLog}:\n${tail(dev.supervisorLog, 5)}` });
      }
      if (Date.now() - t0 > opts.timeoutMs) {
        throw new KmlError(ExitCode.LAB, `lab device slot ${dev.slot} did not boot within ${opts.timeoutMs / 1000} s`, { hint: `guest console (${dev.consoleLog}):\n${tail(dev.consoleLog, 8)}` });
      }
      await sleep(100);
    }
    ctx.progress?.write(`kml: ${status.serial} booted (adbd listening after ${status.lastBootMs ?? '?'} ms); connecting adb\n`);
    await adb.connect(status.serial).catch(() => undefined);
    await adb.waitShell(status.serial, Math.max(10_000, opts.timeoutMs - (Date.now() - t0)));
    const device = toLabDevice(dev, dev.readStatus() ?? status);
    device.bootToDeviceMs = Date.now() - t0;
    ctx.log.info({ serial: device.serial, slot: dev.slot, bootToDeviceMs: device.bootToDeviceMs }, 'lab device up');
    return device;
  } catch (e) {
    ctx.log.error({ err: e, slot: dev.slot }, 'lab device did not come up');
    if (supervisorPid && pidAlive(supervisorPid)) {
      await sendControl(dev.controlSocket, { op: 'stop' }, 5000).catch(() => process.kill(supervisorPid!, 'SIGTERM'));
      await waitGone(supervisorPid, 25_000);
    }
    releaseSlot(dev);
    throw e;
  }
}

/** `kml lab up`: boot `count` devices, connect them to the adb server, wait until each one's shell works. */
export async function labUp(ctx: LabContext, opts: UpOptions): Promise<LabDevice[]> {
  const prep = await prepareLab(ctx, opts.accel);
  const adb = new AdbLink(ctx.adbPort);
  await adb.ensureServer();
  const results = await Promise.allSettled(Array.from({ length: opts.count }, () => bootOne(ctx, prep, opts, adb)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const up = results.filter((r): r is PromiseFulfilledResult<LabDevice> => r.status === 'fulfilled').map((r) => r.value);
  if (failed) {
    // All or nothing: a partly booted lab would surprise a script.
    await labDown(ctx, up.map((d) => d.serial)).catch(() => undefined);
    throw failed.reason;
  }
  return up.sort((a, b) => a.slot - b.slot);
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true;
    await sleep(100);
  }
  return !pidAlive(pid);
}

function qemuPidOf(dev: DeviceDir): number | undefined {
  try {
    const pid = Number(readFileSync(dev.qemuPidFile, 'utf8').trim());
    if (pidAlive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('qemu')) return pid;
  } catch {
    // no pid file / not ours
  }
  return undefined;
}

/** `kml lab down`: disconnect and power off the given devices (all when none given). */
export async function labDown(ctx: LabContext, serials: string[] = []): Promise<LabDevice[]> {
  const root = stateRoot(ctx);
  const all = labList(ctx);
  const wanted = serials.map(normaliseSerial);
  for (const s of wanted) {
    if (!all.some((d) => d.serial === s)) {
      throw new KmlError(ExitCode.DEVICE, `no running lab device ${s}`, { hint: 'kml lab list shows the lab devices' });
    }
  }
  const targets = wanted.length ? all.filter((d) => wanted.includes(d.serial)) : all;
  const adb = new AdbLink(ctx.adbPort);
  const serverUp = await adb.serverRunning();
  await Promise.all(targets.map(async (d) => {
    const dev = new DeviceDir(root, d.slot);
    if (serverUp && d.serial) await adb.disconnect(d.serial);
    if (d.supervisorPid) {
      await sendControl(dev.controlSocket, { op: 'stop' }, 5000).catch(() => {
        try {
          process.kill(d.supervisorPid!, 'SIGTERM');
        } catch {
          // gone
        }
      });
      if (!(await waitGone(d.supervisorPid, 30_000))) {
        try {
          process.kill(d.supervisorPid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    // A supervisor that died without cleaning up may leave its QEMU behind.
    const q = qemuPidOf(dev);
    if (q) {
      process.kill(q, 'SIGKILL');
      await waitGone(q, 5000);
    }
    const s = dev.readStatus();
    if (s && s.state !== 'stopped' && s.state !== 'failed') dev.writeStatus({ ...s, state: 'stopped', updatedAt: new Date().toISOString() });
    d.state = 'stopped';
    d.supervisorPid = undefined;
    d.qemuPid = undefined;
  }));
  return targets;
}

/** `kml lab reboot`: reboot the guest (cleanly, or a hard reset) and wait until adb works again. */
export async function labReboot(ctx: LabContext, serial: string, opts: { hard?: boolean; timeoutMs?: number } = {}): Promise<{ serial: string; rebootToDeviceMs: number; guestBootMs?: number }> {
  const { dev, device } = findDevice(ctx, serial);
  const t0 = Date.now();
  const reply = await control(dev, { op: 'reboot', hard: opts.hard }, opts.timeoutMs ?? 200_000);
  const adb = new AdbLink(ctx.adbPort);
  await adb.waitShell(device.serial, opts.timeoutMs ?? 120_000);
  return { serial: device.serial, rebootToDeviceMs: Date.now() - t0, guestBootMs: reply.bootMs };
}

/** `kml lab unplug`: the cable is pulled; adb shows the device offline, then forgets it after ~60 s. */
export async function labUnplug(ctx: LabContext, serial: string): Promise<{ serial: string; connectionsReset: number }> {
  const { dev, device } = findDevice(ctx, serial);
  const reply = await control(dev, { op: 'unplug' });
  return { serial: device.serial, connectionsReset: reply.connectionsReset ?? 0 };
}

/** `kml lab replug`: plug the cable back and `adb connect` again, as a TCP device needs. */
export async function labReplug(ctx: LabContext, serial: string, opts: { timeoutMs?: number } = {}): Promise<{ serial: string; replugToDeviceMs: number }> {
  const { dev, device } = findDevice(ctx, serial);
  const t0 = Date.now();
  await control(dev, { op: 'replug' });
  const adb = new AdbLink(ctx.adbPort);
  await adb.ensureServer();
  await adb.connect(device.serial).catch(() => undefined);
  await adb.waitShell(device.serial, opts.timeoutMs ?? 60_000);
  return { serial: device.serial, replugToDeviceMs: Date.now() - t0 };
}

/** `kml lab kill-adbd`: adbd dies (and with it every process it started); the guest restarts it ~1 s later. */
export async function labKillAdbd(ctx: LabContext, serial: string, opts: { wait?: boolean } = {}): Promise<{ serial: string }> {
  const { dev, device } = findDevice(ctx, serial);
  await control(dev, { op: 'kill-adbd', wait: opts.wait }, 90_000);
  if (opts.wait) await new AdbLink(ctx.adbPort).waitShell(device.serial, 60_000);
  return { serial: device.serial };
}

export const LEAK_PATHS: Record<string, number> = { cache: 1, request: 2, name: 4 };

/** Parse --paths: names (cache,request,name), numbers (1,2,3) or 'all' into kml_leaky's bitmask. */
export function parseLeakPaths(text: string): number {
  let mask = 0;
  for (const raw of text.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    if (raw === 'all') mask |= 7;
    else if (raw in LEAK_PATHS) mask |= LEAK_PATHS[raw];
    else if (/^[123]$/.test(raw)) mask |= 1 << (Number(raw) - 1);
    else throw new KmlError(ExitCode.USAGE, `--paths: unknown path ${JSON.stringify(raw)} (use cache, request, name, 1-3 or all)`);
  }
  if (!mask) throw new KmlError(ExitCode.USAGE, '--paths: name at least one path');
  return mask;
}

export interface LeakOptions {
  rate?: number;
  paths?: number;
  sizes?: number[];
  maxKb?: number;
  unload?: boolean;
}

export interface LeakState {
  serial: string;
  loaded: boolean;
  rate?: number;
  paths?: number;
  sizes?: number[];
  leakedObjects?: number;
  leakedBytes?: number;
}

/**
 * Run a lab control script as root whatever adbd runs as (a userdebug or user lab build, see
 * LabBuild): directly when adbd is root, else through the device's su (AOSP `su 0`, Magisk `su -c`;
 * each is asked for `id -u` first: Magisk's su ignores a command given after the user).
 */
function asDeviceRoot(script: string): string {
  const probe = (m: 'su-0' | 'su-c') => `[ "$(${asRoot(m, 'id -u')} 2>/dev/null </dev/null)" = 0 ]`;
  return `if [ "$(id -u)" = 0 ]; then sh -c ${shQuote(script)}; ` +
    `elif ${probe('su-0')}; then ${asRoot('su-0', script)}; ` +
    `elif ${probe('su-c')}; then ${asRoot('su-c', script)}; ` +
    `else echo 'not root: adbd runs as the shell user and the device has no su (a user build)'; exit 1; fi 2>&1`;
}

/** `kml lab leak`: load kml_leaky (or change its parameters at runtime), through adb like any user would. */
export async function labLeak(ctx: LabContext, serial: string, opts: LeakOptions): Promise<LeakState> {
  const { device } = findDevice(ctx, serial);
  const adb = new AdbLink(ctx.adbPort);
  const P = '/sys/module/kml_leaky/parameters';
  let script: string;
  if (opts.unload) {
    script = `if [ -d /sys/module/kml_leaky ]; then rmmod kml_leaky || exit 1; fi; echo unloaded`;
  } else {
    const params: Array<[string, string]> = [];
    if (opts.rate !== undefined) params.push(['rate', String(opts.rate)]);
    if (opts.paths !== undefined) params.push(['paths', String(opts.paths)]);
    if (opts.sizes !== undefined) params.push(['sizes', opts.sizes.join(',')]);
    if (opts.maxKb !== undefined) params.push(['max_kb', String(opts.maxKb)]);
    const set = params.map(([k, v]) => `echo ${shQuote(v)} > ${P}/${k} || exit 1`).join('; ');
    const load = `insmod "/lib/modules/$(uname -r)/extra/kml_leaky.ko" ${params.map(([k, v]) => `${k}=${shQuote(v)}`).join(' ')} || exit 1`;
    script = `if [ -d ${P} ]; then ${set || ':'}; else ${load}; fi; ` +
      `for f in rate paths sizes leaked_objects leaked_bytes; do echo "$f=$(cat ${P}/$f)"; done`;
  }
  const r = await adb.shell(device.serial, asDeviceRoot(script));
  if (r.exitCode !== 0) throw new KmlError(ExitCode.LAB, `kml_leaky on ${device.serial} failed: ${r.stdout.trim() || `exit ${r.exitCode}`}`);
  if (opts.unload) return { serial: device.serial, loaded: false };
  const kv: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return {
    serial: device.serial,
    loaded: true,
    rate: Number(kv.rate),
    paths: Number(kv.paths),
    sizes: (kv.sizes ?? '').split(',').filter(Boolean).map(Number),
    leakedObjects: Number(kv.leaked_objects),
    leakedBytes: Number(kv.leaked_bytes),
  };
}
