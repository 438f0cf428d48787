// A lab device (real kmemleak kernel under QEMU, our adbd inside) for integration tests, connected
// to a PRIVATE adb server and torn down afterwards.
//
//   const lab = await startLabDevice({ kmemleak: true });   // boots in ~5 s (the kernel must be built:
//   lab.serial                                              //  scripts/lab/build-kernel, or it is built here)
//   await lab.server.adb(['-s', lab.serial, 'shell', 'id']) // real adb CLI through the private server
//   lab.env                                                 // ANDROID_ADB_SERVER_PORT + KML_STATE_DIR for kml subprocesses
//   await lab.stop();                                       // kml lab down + kill the private server + remove state
//
//   await withLabDevice({}, async (lab) => { ... });         // the same, stopped even when fn throws
//
// Each device gets its own state dir (KML_STATE_DIR) so tests never see each other's devices.
// The kernel cache is the user's (KML_CACHE_DIR or ~/.cache/kml): built once, shared.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../host/log.js';
import { ensureInitramfs, ensureKernel } from '../../host/lab/artifacts.js';
import { DEFAULT_UP, labDown, labUp, type LabContext, type LabDevice, type UpOptions } from '../../host/lab/lab.js';
import { startAdbServer, type AdbServer } from './adb-server.js';

export interface LabDeviceHandle {
  serial: string;
  device: LabDevice;
  server: AdbServer;
  /** The LabContext the device was started with (for labReboot, labUnplug, ... from host/lab/lab.js). */
  ctx: LabContext;
  /** process.env + ANDROID_ADB_SERVER_PORT + KML_STATE_DIR (run `kml lab ...` against this device). */
  env: NodeJS.ProcessEnv;
  stateDir: string;
  /** Shell command through the real adb CLI: stdout, stderr and exit code (shell v2). */
  sh(command: string, timeoutMs?: number): Promise<{ code: number | null; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export interface LabDeviceOptions extends Partial<Omit<UpOptions, 'count'>> {
  /** Reuse an adb server (it is not killed by stop()); default: a private one per device. */
  server?: AdbServer;
}

/** Build the kernel + initramfs if they are not cached yet (minutes, once); a before() hook calls this. */
export async function ensureLabArtifacts(): Promise<void> {
  const kernel = await ensureKernel({ progress: process.env.KML_TEST_VERBOSE ? process.stderr : undefined });
  await ensureInitramfs(kernel);
}

export async function startLabDevice(opts: LabDeviceOptions = {}): Promise<LabDeviceHandle> {
  const ownServer = !opts.server;
  const server = opts.server ?? (await startAdbServer());
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'kml-lab-test-'));
  const env: NodeJS.ProcessEnv = { ...server.env, KML_STATE_DIR: stateDir };
  const ctx: LabContext = {
    adbPort: server.port,
    stateRoot: path.join(stateDir, 'lab'),
    env,
    log: createLogger({ level: 'debug', file: path.join(stateDir, 'kml-lab.log'), pretty: false }),
    // A test run that crashes must not leave a VM behind: the supervisor stops when we die.
    ownerPid: process.pid,
  };
  const { server: _ignored, ...upOpts } = opts;
  let devices: LabDevice[];
  try {
    devices = await labUp(ctx, { ...DEFAULT_UP, dataSizeMb: 256, timeoutMs: 120_000, ...upOpts, count: 1 });
  } catch (e) {
    if (ownServer) await server.kill();
    throw e;
  }
  const device = devices[0];
  let stopped = false;
  return {
    serial: device.serial,
    device,
    server,
    ctx,
    env,
    stateDir,
    async sh(command: string, timeoutMs = 60_000) {
      const r = await server.adb(['-s', device.serial, 'shell', command], { timeoutMs });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await labDown(ctx, []);
      } finally {
        if (ownServer) await server.kill();
        if (!process.env.KML_TEST_KEEP_LAB) rmSync(stateDir, { recursive: true, force: true });
      }
    },
  };
}

export async function withLabDevice<T>(opts: LabDeviceOptions, fn: (lab: LabDeviceHandle) => Promise<T>): Promise<T> {
  const lab = await startLabDevice(opts);
  try {
    return await fn(lab);
  } finally {
    await lab.stop();
  }
}
