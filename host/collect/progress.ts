// Progress for humans: one line per device, redrawn in place, only when stdout is a TTY.
// (When it is not, kml prints nothing but logs; see host/commands/collect.ts.)
import type { WorkerStatus } from './worker.js';

function ago(iso: string | undefined, now: number): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 90 ? `${s}s ago` : s < 5400 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

/** One status line for a device (pure; the renderer adds colour-free layout only). */
export function statusLine(st: WorkerStatus, now = Date.now()): string {
  const parts = [st.serial, st.state.padEnd(14), `pulled ${st.stored}`];
  if (st.conflicts) parts.push(`conflicts ${st.conflicts}`);
  if (st.lastSeq !== undefined) parts.push(`last #${st.lastSeq}${st.lastLeaks != null ? ` (${st.lastLeaks} leak${st.lastLeaks === 1 ? '' : 's'})` : ''} ${ago(st.lastPulledAt, now)}`);
  if (st.agentAlive !== undefined) parts.push(`agent ${st.agentAlive ? 'up' : 'down'}`);
  if (st.agentAlive && st.nextCycleWall) {
    const s = Math.round(st.nextCycleWall - now / 1000);
    parts.push(s > 0 ? `next cycle in ${s}s` : 'cycle running');
  }
  if (st.waitingOnDevice) parts.push(`${st.waitingOnDevice} waiting on device`);
  if (st.skippedTotal) parts.push(`${st.skippedTotal} skipped (device full)`);
  const unv = Object.keys(st.unverifiable).length;
  if (unv) parts.push(`${unv} unverifiable`);
  if (st.message) parts.push(`— ${st.message}`);
  return parts.join('  ');
}

export class ProgressRenderer {
  private readonly rows = new Map<string, WorkerStatus>();
  private drawn = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly out: NodeJS.WriteStream) {}

  start(): void {
    this.timer = setInterval(() => this.draw(), 1000);
    this.timer.unref();
  }

  update(st: WorkerStatus): void {
    this.rows.set(st.serial, { ...st });
    if (!this.stopped) this.draw();
  }

  private draw(): void {
    const width = Math.max(40, (this.out.columns || 120) - 1);
    const lines = [...this.rows.values()].map((st) => statusLine(st).slice(0, width));
    let s = this.drawn > 0 ? `\x1b[${this.drawn}F` : '';
    for (const l of lines) s += `\x1b[2K${l}\n`;
    this.out.write(s);
    this.drawn = lines.length;
  }

  /** Draw the final state once; later calls and updates do nothing (the summary follows). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.draw();
  }
}
