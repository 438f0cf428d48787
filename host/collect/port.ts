// What the puller needs from one device, as a narrow interface. The real implementation
// (adb-port.ts) sits on host/adb, host/device/doctor and host/device/agent; unit tests of the
// puller's bookkeeping use a folder on the host instead. Every method has its own deadline and
// throws AdbError for adb trouble (transient ones are retried by the caller).

export interface DoctorOutcome {
  ready: boolean;
  /** ExitCode to use when not ready: 3 (device unavailable) or 4 (not capable). */
  exitCode: number;
  /** The human-readable report (one line per check), printed when collect refuses. */
  text: string;
  /** One line naming the failed checks (when not ready). */
  summary?: string;
  /** Facts for run.json: props, kernel version, cmdline, config excerpt, root method, ... */
  facts: Record<string, unknown>;
  /** The device's boot id at the time of the check, when doctor read it. */
  bootId?: string;
}

export interface AgentSettings {
  intervalS: number;
  scanWaitS: number;
  protocol: 'double' | 'seed';
  /** Stop after this many cycles (0 = until stopped). */
  count: number;
}

export interface AgentStatus {
  alive: boolean;
  pid?: number;
  /** The heartbeat file's key=value pairs, when present. */
  heartbeat?: Record<string, string>;
  /** skipped.log lines (cycles skipped by the agent, e.g. device storage full). */
  skippedTotal?: number;
}

export interface DeviceFile {
  /** Untrusted name from the device: only names kml knows are ever used. */
  name: string;
  size: number;
  isFile: boolean;
}

export interface DevicePort {
  readonly serial: string;
  /** Check the device can run collection (root, kmemleak, debugfs); root it if needed. */
  doctor(): Promise<DoctorOutcome>;
  /**
   * Light preparation for pull/status/stop: find how to be root (no kmemleak checks).
   * `allowAdbRoot: false` never restarts adbd (which would kill a running agent).
   */
  attach(opts?: { allowAdbRoot?: boolean }): Promise<void>;
  /** The device's current /proc/sys/kernel/random/boot_id. */
  bootId(): Promise<string>;
  /** Push the agent if missing or different, and start it unless one is already running. */
  /** finished: the agent ran its --count cycles and exited before it was seen running. */
  startAgent(settings: AgentSettings): Promise<{ started: boolean; pid?: number; finished?: boolean }>;
  agentStatus(): Promise<AgentStatus>;
  /** SIGTERM the agent and wait until it exited (it finishes the current cycle first). */
  stopAgent(): Promise<void>;
  /** Sequence numbers of complete (published) snapshots, ascending. */
  listComplete(): Promise<number[]>;
  listFiles(seq: number): Promise<DeviceFile[]>;
  readMeta(seq: number): Promise<Buffer>;
  /** Pull one file of snapshot `seq` to `localPath` (fsynced), returning its size and sha256. */
  pullFile(seq: number, name: string, localPath: string): Promise<{ bytes: number; sha256: string }>;
  /** Hash a snapshot file on the device, for metas without hashes. */
  hashOnDevice(seq: number, name: string): Promise<{ sha256?: string; md5?: string }>;
  /** The agent's skipped.log (cycles it skipped, oldest first); [] when there is none. Optional: test ports may lack it. */
  readSkipped?(): Promise<Array<{ seq: number; bootId: string; wallTime: number; reason: string }>>;
  /** Remove snapshots/<seq>/ on the device; succeeds when it is already gone. */
  deleteSnapshot(seq: number): Promise<void>;
  /** Wait until the device is online again (reconnecting TCP devices), up to timeoutMs. */
  waitOnline(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}
