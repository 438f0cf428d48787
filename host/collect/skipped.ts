// Copies the cycles the agent skipped (its skipped.log, device side) into the run's skipped.jsonl,
// so a run records its holes and `kml report` can name them. skipped.log is append-only and
// outlives runs: the lines it held when the run began (run.json agentSkippedBaseline) belong to
// earlier runs. The log is read only when the heartbeat's skipped_total changes (or when forced,
// at the end of a run), so a run without skips never reads it again.
import type { Logger } from '../log.js';
import { writeRunJson, type OpenRun } from '../store/run.js';
import { appendSkippedRecords, readSkippedRecords, skippedKey, type SkippedRecord } from '../store/skipped.js';
import type { DevicePort } from './port.js';

export class SkipRecorder {
  private recorded?: Set<string>;
  private lastTotal?: number;

  constructor(private readonly port: DevicePort, private readonly run: OpenRun, private readonly log: Logger) {}

  /** Cycles recorded in this run so far. */
  get count(): number {
    return this.recorded?.size ?? 0;
  }

  /** Remember how much of skipped.log predates this run (once per run). */
  async init(): Promise<void> {
    if (!this.port.readSkipped) return;
    this.recorded ??= new Set((await readSkippedRecords(this.run.dir)).map((r) => skippedKey(r.bootId, r.seq)));
    if (this.run.json.agentSkippedBaseline !== undefined) return;
    const lines = await this.port.readSkipped();
    this.run.json.agentSkippedBaseline = lines.length;
    await writeRunJson(this.run.dir, this.run.json);
  }

  /**
   * Copy new skipped.log lines into the run. `heartbeatTotal` is the agent's skipped_total: when it
   * has not changed since the last look, nothing is read. Returns how many records were added.
   */
  async sync(heartbeatTotal: number | undefined, force = false): Promise<number> {
    if (!this.port.readSkipped) return 0;
    if (!force && (heartbeatTotal === undefined || heartbeatTotal === this.lastTotal)) return 0;
    await this.init();
    const lines = await this.port.readSkipped();
    const base = this.run.json.agentSkippedBaseline ?? 0;
    // A log shorter than the baseline was wiped (agent dir removed): every line is new then.
    const mine = lines.length >= base ? lines.slice(base) : lines;
    const now = new Date().toISOString();
    const fresh: SkippedRecord[] = [];
    for (const l of mine) {
      const bootId = l.bootId.toLowerCase().slice(0, 64);
      const key = skippedKey(bootId, l.seq);
      if (this.recorded!.has(key)) continue;
      fresh.push({ schemaVersion: 1, serial: this.run.json.serial, runId: this.run.json.runId, bootId, seq: l.seq, wallTime: l.wallTime, reason: l.reason, recordedAt: now });
    }
    await appendSkippedRecords(this.run.dir, fresh);
    for (const r of fresh) this.recorded!.add(skippedKey(r.bootId, r.seq));
    this.lastTotal = heartbeatTotal;
    if (fresh.length) this.log.warn({ seqs: fresh.map((r) => r.seq), reasons: [...new Set(fresh.map((r) => r.reason))] }, 'the agent skipped cycles (device storage low): recorded in skipped.jsonl');
    return fresh.length;
  }
}
