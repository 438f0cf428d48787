// The puller's view of a real device: host/adb for transport, host/device/doctor for readiness
// (and root), host/device/agent for the agent's life and its snapshot folders.
import { AdbError, asRoot, ensureRoot, retryTransient, shq, type Adb, type RootMethod } from '../adb/index.js';
import { AgentControl, DEFAULT_AGENT_DIR } from '../device/agent.js';
import { doctorFailure, runDoctor } from '../device/doctor.js';
import { formatCheckLines } from '../device/doctor-checks.js';
import { ExitCode, KmlError } from '../errors.js';
import type { Logger } from '../log.js';
import { BOOT_ID_RE } from '../store/layout.js';
import type { AgentSettings, AgentStatus, DeviceFile, DevicePort, DoctorOutcome } from './port.js';

export interface AdbPortOptions {
  adb: Adb;
  serial: string;
  log: Logger;
  /** Host output folder (doctor checks its free space). */
  outDir: string;
  /** Agent folder on the device (default /data/local/tmp/kml). */
  agentDir?: string;
  /** kmemleak file the agent reads (tests point it elsewhere; default the real one). */
  kmemleakPath?: string;
  /** Skip cycles when the device has less free space (KiB). */
  minFreeKb?: number;
  /** Root may be got with `adb root` (default true; false: su or an already-root adbd only). */
  allowAdbRoot?: boolean;
  /**
   * Tests on a host-side adbd (no kmemleak there): skip doctor and use this root method.
   * Never set by a user-facing option.
   */
  skipDoctorWithRoot?: RootMethod;
  /** Deadline for each small device command (ms). */
  commandTimeoutMs?: number;
}

export class AdbDevicePort implements DevicePort {
  /**
   * Idempotent reads (and the idempotent delete) get two quick retries on transient adb errors
   * (p-retry), so a single dropped connection does not send the worker into "device lost".
   */
  private retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retryTransient(fn, {
      retries: 2,
      minTimeoutMs: 300,
      maxTimeoutMs: 1_000,
      onRetry: (e, attempt) => this.log.debug({ op: what, attempt, err: { message: e.message } }, 'transient adb error; retrying'),
    });
  }

  readonly serial: string;
  private readonly adb: Adb;
  private log: Logger;
  private root: RootMethod | undefined;
  private agentCtl: AgentControl | undefined;
  private readonly timeoutMs: number;

  constructor(private readonly o: AdbPortOptions) {
    this.serial = o.serial;
    this.adb = o.adb;
    this.log = o.log;
    this.timeoutMs = o.commandTimeoutMs ?? 20_000;
  }

  /** Switch logging to the run's log once the run folder exists (after doctor). */
  useLogger(log: Logger): this {
    this.log = log;
    this.agentCtl = undefined;
    return this;
  }

  private get dir(): string {
    return this.o.agentDir ?? DEFAULT_AGENT_DIR;
  }

  /** The agent controller for the current root method (recreated after every doctor run). */
  private agent(): AgentControl {
    if (!this.agentCtl) {
      if (!this.root || this.root === 'none') {
        throw new KmlError(ExitCode.INTERNAL, 'device used before doctor established root');
      }
      this.agentCtl = new AgentControl(this.adb, this.serial, { root: this.root, dir: this.dir, log: this.log, commandTimeoutMs: this.timeoutMs });
    }
    return this.agentCtl;
  }

  async doctor(): Promise<DoctorOutcome> {
    if (this.o.skipDoctorWithRoot) {
      this.root = this.o.skipDoctorWithRoot;
      this.agentCtl = undefined;
      return { ready: true, exitCode: 0, text: 'doctor skipped (test mode)', facts: { doctor: 'skipped', rootMethod: this.root } };
    }
    const r = await runDoctor(this.serial, { adb: this.adb, outDir: this.o.outDir, mountDebugfs: true, log: this.log, allowAdbRoot: this.o.allowAdbRoot ?? true });
    this.root = r.rootMethod;
    this.agentCtl = undefined;
    const exitCode = r.ready ? 0 : r.exitCode === ExitCode.DEVICE ? ExitCode.DEVICE : ExitCode.NOT_CAPABLE;
    return {
      ready: r.ready,
      exitCode,
      text: formatCheckLines(r.checks).join('\n'),
      summary: doctorFailure(r)?.message,
      facts: {
        rootMethod: r.rootMethod,
        sdk: r.sdk,
        props: r.props,
        kernel: {
          release: r.kernel.release,
          version: r.kernel.version,
          cmdline: r.kernel.cmdline,
          bootconfig: r.kernel.bootconfig,
          configSource: r.kernel.configSource,
          config: r.kernel.config,
          hz: r.kernel.hz,
          debugfsMountedByDoctor: r.kernel.debugfsMountedByDoctor,
        },
        checks: r.checks.map((c) => ({ id: c.id, status: c.status, detail: c.detail })),
      },
      bootId: r.kernel.bootId,
    };
  }

  async attach(opts: { allowAdbRoot?: boolean } = {}): Promise<void> {
    if (this.o.skipDoctorWithRoot) {
      this.root = this.o.skipDoctorWithRoot;
    } else if (!this.root || this.root === 'none') {
      this.root = await ensureRoot(this.adb, this.serial, { allowAdbRoot: (opts.allowAdbRoot ?? true) && (this.o.allowAdbRoot ?? true) });
    }
    this.agentCtl = undefined;
  }

  async bootId(): Promise<string> {
    const buf = await this.retry('boot_id', () => this.adb.pullBuffer(this.serial, '/proc/sys/kernel/random/boot_id', { timeoutMs: this.timeoutMs, maxBytes: 4096 }));
    const id = buf.toString('utf8').trim().toLowerCase();
    if (!BOOT_ID_RE.test(id)) throw new AdbError('protocol', `unexpected boot_id ${JSON.stringify(id.slice(0, 60))}`, { serial: this.serial });
    return id;
  }

  async startAgent(s: AgentSettings): Promise<{ started: boolean; pid?: number; finished?: boolean }> {
    const agent = this.agent();
    await agent.install();
    const r = await agent.start({
      interval: s.intervalS,
      scanWait: s.scanWaitS,
      protocol: s.protocol,
      count: s.count > 0 ? s.count : undefined,
      kmemleakPath: this.o.kmemleakPath,
      minFreeKb: this.o.minFreeKb,
    });
    return { started: r.launched, pid: r.pid, finished: r.finished };
  }

  async agentStatus(): Promise<AgentStatus> {
    const st = await this.retry('agent status', () => this.agent().status());
    return {
      alive: st.running,
      pid: st.pid,
      heartbeat: st.heartbeat?.raw,
      skippedTotal: st.heartbeat?.skippedTotal,
    };
  }

  async stopAgent(): Promise<void> {
    await this.agent().stop();
  }

  async listComplete(): Promise<number[]> {
    try {
      return await this.retry('list snapshots', () => this.agent().listComplete());
    } catch (e) {
      // No snapshots folder yet (agent never installed): nothing to pull.
      if (e instanceof AdbError && (e.kind === 'no-such-file' || e.kind === 'remote-fail')) return [];
      throw e;
    }
  }

  async listFiles(seq: number): Promise<DeviceFile[]> {
    const entries = await this.retry('list snapshot', () => this.adb.readdir(this.serial, this.agent().snapshotPath(seq), { timeoutMs: this.timeoutMs }));
    return entries.map((e) => ({ name: e.name, size: e.size, isFile: e.isFile }));
  }

  async readMeta(seq: number): Promise<Buffer> {
    try {
      return await this.retry('read meta', () => this.adb.pullBuffer(this.serial, `${this.agent().snapshotPath(seq)}/meta.txt`, { timeoutMs: this.timeoutMs, maxBytes: 1024 * 1024 }));
    } catch (e) {
      if (e instanceof AdbError && e.kind === 'remote-fail' && /No such file/i.test(e.message)) {
        throw new AdbError('no-such-file', e.message, { serial: this.serial });
      }
      throw e;
    }
  }

  async pullFile(seq: number, name: string, localPath: string): Promise<{ bytes: number; sha256: string }> {
    // `name` was matched against kml's fixed list of snapshot file names before it got here.
    // pullToFile truncates localPath on each attempt, so a retry starts clean.
    const r = await this.retry('pull', () => this.adb.pullToFile(this.serial, `${this.agent().snapshotPath(seq)}/${name}`, localPath, { verifySize: true }));
    return { bytes: r.bytes, sha256: r.sha256 };
  }

  async hashOnDevice(seq: number, name: string): Promise<{ sha256?: string; md5?: string }> {
    const f = shq(`${this.agent().snapshotPath(seq)}/${name}`);
    const cmd = `if command -v sha256sum >/dev/null 2>&1; then echo "sha256 $(sha256sum ${f})"; elif command -v md5sum >/dev/null 2>&1; then echo "md5 $(md5sum ${f})"; fi`;
    const out = await this.adb.shellOk(this.serial, asRoot(this.root ?? 'adbd-root', cmd), { timeoutMs: this.timeoutMs });
    const m = /^(sha256|md5) ([0-9a-f]+)/m.exec(out);
    if (m?.[1] === 'sha256' && m[2].length === 64) return { sha256: m[2] };
    if (m?.[1] === 'md5' && m[2].length === 32) return { md5: m[2] };
    return {};
  }

  async readSkipped(): Promise<Array<{ seq: number; bootId: string; wallTime: number; reason: string }>> {
    return this.retry('read skipped.log', () => this.agent().readSkipped());
  }

  async deleteSnapshot(seq: number): Promise<void> {
    await this.retry('delete snapshot', () => this.agent().deleteSnapshot(seq));
  }

  async waitOnline(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    await this.adb.waitForDevice(this.serial, { timeoutMs, signal });
  }

  async close(): Promise<void> {}
}
