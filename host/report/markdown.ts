// Markdown report (GitHub-flavoured tables): for pull requests, wikis and bug trackers.
import type { AnalyzedRun } from '../analyze/model.js';
import { humanHours, humanKb } from '../analyze/memory-format.js';
import {
  type RenderOptions, DEFAULT_TOP, memoryOf, verdictOf, deltaObjects, cumulativeBytes, sparkline,
  mdCell, rate, fmtBytes, runHours, isoOf, inputProblems,
} from './common.js';

function mdTable(headers: string[], rows: string[][], right: boolean[] = []): string[] {
  return [
    `| ${headers.map(mdCell).join(' | ')} |`,
    `|${headers.map((_, i) => (right[i] ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`),
  ];
}

export function renderMarkdown(run: AnalyzedRun, opts: RenderOptions = {}): string {
  const top = opts.top ?? DEFAULT_TOP;
  const n = run.snapshots.length;
  const hours = runHours(run);
  const out: string[] = [];
  const who = [run.run.serial, run.run.runId].filter(Boolean).join(' ') || run.source.path;
  out.push(`# kml report: ${mdCell(who)}`, '');
  out.push(`${n} snapshot(s)${hours !== null ? ` over ${humanHours(hours)}` : ''}${run.run.kernelVersion ? `, kernel \`${run.run.kernelVersion.replace(/`/g, "'")}\`` : ''}, source ${run.source.type}.`, '');
  const verdict = verdictOf(run);
  if (verdict) out.push(`**Verdict:** ${mdCell(verdict.summary)}`, '');

  out.push('## Leak groups', '');
  const shown = run.groups.slice(0, top);
  if (shown.length) {
    out.push(...mdTable(['#', 'Title', 'Fingerprint', 'Objects', 'Bytes', 'Δ', 'Slope/h', 'Trend', 'Status'],
      shown.map((g, i) => [String(i + 1), g.title, g.fingerprint, String(g.objects), fmtBytes(g.bytes), `+${deltaObjects(g, n - 1)}`,
        rate(g.bytesPerHour), sparkline(cumulativeBytes(g, n)), g.status]),
      [true, false, false, true, true, true, true, false, false]));
    if (run.groups.length > shown.length) out.push('', `Omitting ${run.groups.length - shown.length} more group(s).`);
    out.push('');
    for (const g of shown.slice(0, 10)) {
      out.push(`<details><summary>${mdCell(g.title)} (${g.fingerprint})</summary>`, '', '```', ...g.sampleStack.map((f) => f.replace(/```/g, "'''")), '```', '</details>', '');
    }
  } else {
    out.push('No unsuppressed leak groups.', '');
  }
  if (run.suppressionsUsed.length) {
    out.push('## Suppressions used', '');
    out.push(...mdTable(['Count', 'Bytes', 'Groups', 'Rule', 'Reason'],
      run.suppressionsUsed.map((s) => [String(s.objects), String(s.bytes), String(s.groups), s.ruleId, s.reason]), [true, true, true]), '');
  }
  if (verdict) {
    out.push('## Memory verdict', '');
    out.push(...mdTable(['Finding', 'Check', 'Why'], verdict.rows.map((r) => [r.finding, r.label, r.explanation])), '');
    for (const note of verdict.notes) out.push(`- ${mdCell(note)}`);
    if (verdict.notes.length) out.push('');
  }
  const mem = memoryOf(run);
  if (mem && mem.slabGrowth.some((c) => c.deltaBytes !== 0)) {
    out.push('## Slab caches growing fastest', '');
    out.push(...mdTable(['Cache', 'Obj size', 'First', 'Last', 'Δ', 'Slope/h'],
      mem.slabGrowth.filter((c) => c.deltaBytes !== 0).slice(0, 10).map((c) => [c.name, String(c.objSize), fmtBytes(c.firstBytes), fmtBytes(c.lastBytes), rate(c.deltaBytes), rate(c.bytesPerHour)]),
      [false, true, true, true, true, true]), '');
  }
  if (mem && mem.events.length) {
    out.push('## Kernel events', '');
    out.push(...mdTable(['Time', 'Snapshot', 'Event', 'Task', 'Size'],
      mem.events.slice(0, 50).map((e) => [isoOf(e.t), String(e.snapshot), e.kind, e.comm ? `${e.comm}${e.pid !== undefined ? ` (${e.pid})` : ''}` : '', e.freedKb !== undefined ? humanKb(e.freedKb) : e.order !== undefined ? `order ${e.order}` : '']),
      [false, true]), '');
  }
  const problems = inputProblems(run);
  out.push('## Input', '', `${run.parseStats.files} file(s), ${run.parseStats.records} record(s); ${problems.length ? problems.map(mdCell).join('; ') : 'everything understood'}.`);
  for (const a of run.assumptions) out.push(`- Assumed: ${mdCell(a)}`);
  return out.join('\n') + '\n';
}
