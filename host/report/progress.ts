// The progress line `kml report` draws on stderr when it is a terminal: long runs (a week of
// snapshots, a big dmesg capture) take seconds to minutes to read. Redrawn at most every 200 ms,
// erased when the analysis is done, so the report itself is all that stays on the screen.
import type { AnalyzeProgress } from '../analyze/index.js';

const MIB = 1048576;

/** `reading kmemleak snapshots: 37/144, 52/200 MB (26%)`. */
export function progressText(p: AnalyzeProgress): string {
  const pct = p.bytesTotal > 0 ? Math.min(100, Math.floor((100 * p.bytesDone) / p.bytesTotal)) : 0;
  const snap = p.snapshotsTotal > 1 ? `${Math.min(p.snapshotsDone + 1, p.snapshotsTotal)}/${p.snapshotsTotal}, ` : '';
  return `reading kmemleak snapshots: ${snap}${Math.round(p.bytesDone / MIB)}/${Math.round(p.bytesTotal / MIB)} MB (${pct}%)`;
}

export class ProgressLine {
  private last: number;
  private shown = false;

  /** Nothing is drawn in the first `intervalMs` (a short report does not flicker). */
  constructor(private readonly out: NodeJS.WritableStream, private readonly intervalMs = 200, private readonly now: () => number = Date.now) {
    this.last = now();
  }

  update(p: AnalyzeProgress): void {
    const t = this.now();
    if (t - this.last < this.intervalMs) return;
    this.last = t;
    this.out.write(`\r\x1b[K${progressText(p)}`);
    this.shown = true;
  }

  /** Erase the line (if one was drawn). */
  done(): void {
    if (this.shown) this.out.write('\r\x1b[K');
    this.shown = false;
  }
}
