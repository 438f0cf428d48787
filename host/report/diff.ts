// `kml diff BASELINE CANDIDATE`: leak groups new / gone / grown / shrunk / same between two runs,
// matched by fingerprint, in the lkp A/B style (baseline | %change | candidate). Runs usually differ
// in length, so groups are compared on bytes per hour when both rates are known, else on bytes.
import type { AnalyzedRun, LeakGroup } from '../analyze/model.js';
import { humanHours } from '../analyze/memory-format.js';
import { verdictOf, escapeXml, mdCell, fmtBytes, rate, runHours, safeText } from './common.js';
import { table } from './text.js';

export type DiffChange = 'new' | 'gone' | 'grown' | 'shrunk' | 'same';

export interface DiffSide {
  objects: number;
  bytes: number;
  bytesPerHour: number | null;
  status: string;
}

export interface DiffEntry {
  fingerprint: string;
  title: string;
  change: DiffChange;
  baseline: DiffSide | null;
  candidate: DiffSide | null;
  /** Change of the compared measure (bytes/h, else bytes), percent; null for new/gone. */
  pctChange: number | null;
  /** Which measure pctChange compares. */
  measure: 'bytesPerHour' | 'bytes' | null;
}

export interface RunSummary {
  path: string;
  serial: string | null;
  runId: string | null;
  kernelVersion: string | null;
  snapshots: number;
  hours: number | null;
  groups: number;
  bytes: number;
  verdict: string | null;
}

export interface RunDiff {
  kind: 'kml-diff';
  schemaVersion: 1;
  baseline: RunSummary;
  candidate: RunSummary;
  /** Grown beyond this many percent counts as grown (shrunk likewise). */
  thresholdPct: number;
  counts: Record<DiffChange, number>;
  /** new, grown, gone, shrunk, same; within each, largest candidate (else baseline) bytes first. */
  entries: DiffEntry[];
}

export const DEFAULT_DIFF_THRESHOLD_PCT = 10;

function side(g: LeakGroup): DiffSide {
  return { objects: g.objects, bytes: g.bytes, bytesPerHour: g.bytesPerHour, status: g.status };
}

function summary(run: AnalyzedRun): RunSummary {
  return {
    path: run.source.path, serial: run.run.serial, runId: run.run.runId, kernelVersion: run.run.kernelVersion,
    snapshots: run.snapshots.length, hours: runHours(run), groups: run.groups.length, bytes: run.totals.bytes,
    verdict: verdictOf(run)?.conclusion ?? null,
  };
}

export function diffRuns(baseline: AnalyzedRun, candidate: AnalyzedRun, thresholdPct = DEFAULT_DIFF_THRESHOLD_PCT): RunDiff {
  const base = new Map(baseline.groups.map((g) => [g.fingerprint, g]));
  const cand = new Map(candidate.groups.map((g) => [g.fingerprint, g]));
  const entries: DiffEntry[] = [];
  for (const [fp, c] of cand) {
    const b = base.get(fp);
    if (!b) {
      entries.push({ fingerprint: fp, title: c.title, change: 'new', baseline: null, candidate: side(c), pctChange: null, measure: null });
      continue;
    }
    const useRate = b.bytesPerHour !== null && c.bytesPerHour !== null;
    const bv = useRate ? b.bytesPerHour! : b.bytes;
    const cv = useRate ? c.bytesPerHour! : c.bytes;
    const pctChange = bv === 0 ? (cv === 0 ? 0 : null) : (100 * (cv - bv)) / Math.abs(bv);
    const change: DiffChange = pctChange === null ? (cv > bv ? 'grown' : 'same')
      : pctChange > thresholdPct ? 'grown' : pctChange < -thresholdPct ? 'shrunk' : 'same';
    entries.push({ fingerprint: fp, title: c.title, change, baseline: side(b), candidate: side(c), pctChange: pctChange === null ? null : Math.round(pctChange * 10) / 10, measure: useRate ? 'bytesPerHour' : 'bytes' });
  }
  for (const [fp, b] of base) {
    if (!cand.has(fp)) entries.push({ fingerprint: fp, title: b.title, change: 'gone', baseline: side(b), candidate: null, pctChange: null, measure: null });
  }
  const rank: Record<DiffChange, number> = { new: 0, grown: 1, gone: 2, shrunk: 3, same: 4 };
  entries.sort((x, y) => rank[x.change] - rank[y.change] || ((y.candidate ?? y.baseline)!.bytes - (x.candidate ?? x.baseline)!.bytes) || x.fingerprint.localeCompare(y.fingerprint));
  const counts: Record<DiffChange, number> = { new: 0, grown: 0, gone: 0, shrunk: 0, same: 0 };
  for (const e of entries) counts[e.change]++;
  return { kind: 'kml-diff', schemaVersion: 1, baseline: summary(baseline), candidate: summary(candidate), thresholdPct, counts, entries };
}

function label(s: RunSummary): string {
  return [s.serial, s.runId].filter(Boolean).join(' ') || s.path;
}

function cellOf(s: DiffSide | null, measure: DiffEntry['measure']): string {
  if (!s) return '-';
  return measure === 'bytes' ? fmtBytes(s.bytes) : s.bytesPerHour !== null ? `${rate(s.bytesPerHour)}/h` : fmtBytes(s.bytes);
}

function pctOf(e: DiffEntry): string {
  if (e.change === 'new') return 'new';
  if (e.change === 'gone') return 'gone';
  if (e.pctChange === null) return e.change;
  return `${e.pctChange > 0 ? '+' : ''}${e.pctChange.toFixed(1)}%`;
}

export function renderDiffText(d: RunDiff): string {
  const out: string[] = [];
  const line = (s: RunSummary) => `${label(s)}: ${s.snapshots} snapshot(s)${s.hours !== null ? ` over ${humanHours(s.hours)}` : ''}, ${s.groups} group(s), ${fmtBytes(s.bytes)}${s.kernelVersion ? `, kernel ${s.kernelVersion}` : ''}${s.verdict ? `, verdict ${s.verdict}` : ''}`;
  out.push(`baseline  ${safeText(line(d.baseline))}`);
  out.push(`candidate ${safeText(line(d.candidate))}`);
  out.push(`${d.counts.new} new, ${d.counts.grown} grown, ${d.counts.gone} gone, ${d.counts.shrunk} shrunk, ${d.counts.same} same (threshold ±${d.thresholdPct}%)`);
  out.push('');
  const rows = d.entries.filter((e) => e.change !== 'same').map((e) => [
    cellOf(e.baseline, e.measure), String(e.baseline?.objects ?? '-'), pctOf(e), cellOf(e.candidate, e.measure), String(e.candidate?.objects ?? '-'), e.fingerprint, e.title,
  ]);
  if (rows.length) {
    out.push(...table(['baseline', 'objs', '%change', 'candidate', 'objs', 'fingerprint', 'group'], rows, ['r', 'r', 'r', 'r', 'r', 'l', 'l'], [0, 0, 0, 0, 0, 0, 80]));
  } else {
    out.push('No group changed beyond the threshold.');
  }
  return out.join('\n') + '\n';
}

export function renderDiffJson(d: RunDiff): string {
  return JSON.stringify(d, null, 2) + '\n';
}

export function renderDiffMarkdown(d: RunDiff): string {
  const out = [
    `# kml diff: ${mdCell(label(d.baseline))} → ${mdCell(label(d.candidate))}`, '',
    `${d.counts.new} new, ${d.counts.grown} grown, ${d.counts.gone} gone, ${d.counts.shrunk} shrunk, ${d.counts.same} same (threshold ±${d.thresholdPct}%).`, '',
    '| baseline | objs | %change | candidate | objs | fingerprint | group |', '|---:|---:|---:|---:|---:|---|---|',
    ...d.entries.filter((e) => e.change !== 'same').map((e) => `| ${[cellOf(e.baseline, e.measure), String(e.baseline?.objects ?? '-'), pctOf(e), cellOf(e.candidate, e.measure), String(e.candidate?.objects ?? '-'), e.fingerprint, e.title].map(mdCell).join(' | ')} |`),
  ];
  return out.join('\n') + '\n';
}

/** JUnit: one failing testcase per new or grown group. */
export function renderDiffJunit(d: RunDiff): string {
  const bad = d.entries.filter((e) => e.change === 'new' || e.change === 'grown');
  const cases = bad.map((e) => `    <testcase classname="kml.diff" name="${escapeXml(`${e.title} [${e.fingerprint}]`)}"><failure type="${e.change}" message="${escapeXml(`${e.change}: ${cellOf(e.baseline, e.measure)} → ${cellOf(e.candidate, e.measure)} (${pctOf(e)})`)}"/></testcase>`);
  if (!cases.length) cases.push('    <testcase classname="kml.diff" name="no new or grown leak groups"/>');
  return ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites name="kml-diff" tests="${cases.length}" failures="${bad.length}">`,
    `  <testsuite name="kml.diff" tests="${cases.length}" failures="${bad.length}" errors="0">`, ...cases, '  </testsuite>', '</testsuites>', ''].join('\n');
}
