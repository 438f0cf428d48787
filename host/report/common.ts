// Helpers every renderer shares: reading the optional memory/verdict parts of the model, the
// per-group numbers shown in tables (Δ, sparkline), and escaping. Renderers read only the model.
import type { AnalyzedRun, LeakGroup } from '../analyze/model.js';
import type { MemoryAnalysis, Verdict } from '../analyze/memory-model.js';
import { isMemoryAnalysis } from '../analyze/memory.js';
import { isVerdict } from '../analyze/verdict.js';
import { terminalSafe } from '../terminal.js';

export interface RenderOptions {
  /** Groups shown in human formats (JSON always has all). */
  top?: number;
}

export const DEFAULT_TOP = 25;

export function memoryOf(run: AnalyzedRun): MemoryAnalysis | null {
  return isMemoryAnalysis(run.memory) ? run.memory : null;
}

export function verdictOf(run: AnalyzedRun): Verdict | null {
  return isVerdict(run.verdict) ? run.verdict : null;
}

/** New objects of the group in the last snapshot (Valgrind's "(+N)"). */
export function deltaObjects(g: LeakGroup, lastSnapshot: number): number {
  const p = g.series.find((s) => s.snapshot === lastSnapshot);
  return p ? p.newObjects : 0;
}

export function deltaBytes(g: LeakGroup, lastSnapshot: number): number {
  const p = g.series.find((s) => s.snapshot === lastSnapshot);
  return p ? p.newBytes : 0;
}

/** Cumulative bytes of a group at every snapshot index 0..n-1 (carried forward between points). */
export function cumulativeBytes(g: LeakGroup, n: number): number[] {
  const out = new Array<number>(n).fill(0);
  let j = 0, cur = 0;
  for (let i = 0; i < n; i++) {
    while (j < g.series.length && g.series[j].snapshot <= i) { cur = g.series[j].cumBytes; j++; }
    out[i] = cur;
  }
  return out;
}

const BARS = '▁▂▃▄▅▆▇█';

/** Unicode sparkline of values, at most `width` chars (bins keep their last value: cumulative series). */
export function sparkline(values: readonly number[], width = 16): string {
  if (values.length === 0) return '';
  let v = values;
  if (values.length > width) {
    v = Array.from({ length: width }, (_, i) => values[Math.min(values.length - 1, Math.floor(((i + 1) * values.length) / width) - 1)]);
  }
  const min = Math.min(...v), max = Math.max(...v);
  if (max === min) return (max === 0 ? BARS[0] : BARS[3]).repeat(v.length);
  return v.map((x) => BARS[Math.min(BARS.length - 1, Math.floor(((x - min) / (max - min)) * (BARS.length - 1) + 0.5))]).join('');
}

/** A group is what `--fail-on` and JUnit call a failure. */
export function isNew(g: LeakGroup): boolean {
  return g.status === 'new';
}

export function isGrowing(g: LeakGroup): boolean {
  return g.status === 'growing' || g.status === 'new';
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** XML 1.0 text: escaped, and characters XML cannot carry at all removed. */
export function escapeXml(s: string): string {
  // eslint-disable-next-line no-control-regex
  return escapeHtml(s.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g, '?'));
}

/** Markdown table cell: pipes and newlines would break the row. */
export function mdCell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ').replace(/([`*_<>])/g, '\\$1');
}

/** One table cell or line of terminal text: terminalSafe(), and no tab or newline either. */
export function safeText(s: string): string {
  return terminalSafe(s).replace(/[\t\n]/g, '?');
}

export function rate(n: number | null): string {
  if (n === null || !Number.isFinite(n)) return '-';
  return n > 0 ? `+${fmtBytes(n)}` : fmtBytes(n);
}

export function fmtBytes(b: number): string {
  const a = Math.abs(b);
  if (a < 1024) return `${Math.round(b)} B`;
  if (a < 1024 * 1024) return `${(b / 1024).toFixed(1)} kB`;
  if (a < 1024 ** 3) return `${(b / 1024 ** 2).toFixed(1)} MB`;
  return `${(b / 1024 ** 3).toFixed(2)} GB`;
}

/** Duration of the run on the analysis time axis, hours, or null. */
export function runHours(run: AnalyzedRun): number | null {
  const ts = run.snapshots.map((s) => s.t).filter((t): t is number => t !== null);
  return ts.length >= 2 ? (ts[ts.length - 1] - ts[0]) / 3600 : null;
}

export function isoOf(t: number | null): string {
  if (t === null || !Number.isFinite(t)) return '?';
  return new Date(t * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** "5 cycle(s) skipped by the device agent (device storage low ×4, no_space ×1): seq 12-15, 20" */
export function agentSkippedLine(skips: Array<{ seq: number; reason: string }>): string {
  const words: Record<string, string> = { low_space: 'device storage low', no_space: 'snapshot did not fit' };
  const reasons = new Map<string, number>();
  for (const s of skips) reasons.set(words[s.reason] ?? s.reason, (reasons.get(words[s.reason] ?? s.reason) ?? 0) + 1);
  const seqs = [...new Set(skips.map((s) => s.seq))].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < seqs.length; i++) {
    let j = i;
    while (j + 1 < seqs.length && seqs[j + 1] === seqs[j] + 1) j++;
    ranges.push(j > i ? `${seqs[i]}-${seqs[j]}` : String(seqs[i]));
    i = j;
  }
  const shown = ranges.length > 12 ? [...ranges.slice(0, 12), `… (${ranges.length - 12} more)`] : ranges;
  return `${skips.length} cycle(s) skipped by the device agent, not collected (${[...reasons].map(([r, n]) => `${r} ×${n}`).join(', ')}): seq ${shown.join(', ')}`;
}

/** Plain-words list of what was skipped or not understood, for every human format. */
export function inputProblems(run: AnalyzedRun): string[] {
  const out: string[] = [];
  const ps = run.parseStats, is = run.inputStats;
  if (ps.unparsedLines) out.push(`${ps.unparsedLines} kmemleak line(s) not understood`);
  if (ps.truncatedRecords) out.push(`${ps.truncatedRecords} truncated record(s) (kept)`);
  if (ps.overlongLines) out.push(`${ps.overlongLines} overlong line(s)`);
  if (is.partialSkipped.length) out.push(`${is.partialSkipped.length} half-written snapshot(s) skipped: ${is.partialSkipped.slice(0, 5).join(', ')}`);
  if (is.unreadable) out.push(`${is.unreadable} snapshot(s) unreadable`);
  if (is.conflictsSkipped?.length) out.push(`${is.conflictsSkipped.length} conflicting snapshot(s) left out`);
  if (is.agentSkipped?.length) out.push(agentSkippedLine(is.agentSkipped));
  if (is.hashMismatches) out.push(`${is.hashMismatches} snapshot(s) differ from their manifest hash`);
  if (is.missingFiles.length) out.push(`${is.missingFiles.length} manifest file(s) missing on disk`);
  if (is.badManifestLines) out.push(`${is.badManifestLines} bad manifest line(s)`);
  if (is.runJson === 'invalid') out.push('run.json unreadable');
  const mem = memoryOf(run);
  if (mem) {
    for (const [file, st] of Object.entries(mem.fileStats)) {
      if (st.unparsedLines) out.push(`${st.unparsedLines} line(s) of ${file} not understood`);
      if (st.unreadable) out.push(`${st.unreadable} ${file} file(s) unreadable`);
    }
    if (mem.snapshotsWithoutSample && mem.samples.length) out.push(`${mem.snapshotsWithoutSample} snapshot(s) without memory samples`);
  }
  return out;
}
