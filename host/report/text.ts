// Terminal report: leak groups table (title, fingerprint, objects, bytes, Δ, slope/h, sparkline,
// status), LSan-style "Suppressions used", the memory verdict, slab ranking and OOM/LMK events.
import type { AnalyzedRun } from '../analyze/model.js';
import { humanHours, humanKb } from '../analyze/memory-format.js';
import {
  type RenderOptions, DEFAULT_TOP, memoryOf, verdictOf, deltaObjects, cumulativeBytes, sparkline,
  safeText, rate, fmtBytes, runHours, isoOf, inputProblems,
} from './common.js';

type Align = 'l' | 'r';

/**
 * Fixed-width table. Cells are cut to `max[i]` chars, except the last column, which wraps onto
 * continuation lines (explanations are sentences worth reading whole).
 */
export function table(headers: string[], rows: string[][], align: Align[], max: number[] = []): string[] {
  const lastCol = headers.length - 1;
  const cut = (s: string, i: number) => (i !== lastCol && max[i] && s.length > max[i] ? `${s.slice(0, max[i] - 1)}…` : s);
  const cells = rows.map((r) => r.map((c, i) => cut(safeText(c), i)));
  const widthOf = (s: string) => [...s].length;
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (i === lastCol && max[i] ? Math.min(max[i], widthOf(r[i] ?? '')) : widthOf(r[i] ?? '')))));
  const pad = (s: string, i: number) => {
    const n = widths[i] - widthOf(s);
    return align[i] === 'r' ? ' '.repeat(Math.max(0, n)) + s : s + ' '.repeat(Math.max(0, n));
  };
  const line = (r: string[]) => r.map((c, i) => pad(c, i)).join('  ').trimEnd();
  const out = [line(headers)];
  for (const r of cells) {
    const wrapped = max[lastCol] ? wrap(r[lastCol] ?? '', max[lastCol]) : [r[lastCol] ?? ''];
    out.push(line([...r.slice(0, lastCol), wrapped[0]]));
    for (const more of wrapped.slice(1)) out.push(line([...r.slice(0, lastCol).map(() => ''), more]));
  }
  return out;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const word of text.split(/\s+/)) {
    if (cur && cur.length + 1 + word.length > width) { lines.push(cur); cur = word; }
    else cur = cur ? `${cur} ${word}` : word;
    while (cur.length > width) { lines.push(cur.slice(0, width)); cur = cur.slice(width); }
  }
  lines.push(cur);
  return lines;
}

export function renderText(run: AnalyzedRun, opts: RenderOptions = {}): string {
  const top = opts.top ?? DEFAULT_TOP;
  const out: string[] = [];
  const n = run.snapshots.length;
  const last = n - 1;
  const hours = runHours(run);
  const who = [run.run.serial, run.run.runId].filter(Boolean).join(' ') || run.source.path;
  out.push(`kml report — ${safeText(who)}`);
  const facts = [
    `${n} snapshot${n === 1 ? '' : 's'}${hours !== null ? ` over ${humanHours(hours)}` : ''}`,
    run.run.kernelVersion ? `kernel ${run.run.kernelVersion}` : null,
    run.run.bootIds.length > 1 ? `${run.run.bootIds.length} boots` : null,
    `source ${run.source.type}: ${run.source.path}`,
  ].filter(Boolean);
  out.push(safeText(facts.join(' · ')));
  out.push('');

  const verdict = verdictOf(run);
  if (verdict) {
    out.push(`Verdict: ${safeText(verdict.summary)}`);
    out.push('');
  }

  // Leak groups -------------------------------------------------------------------------------
  const t = run.totals;
  const shown = run.groups.slice(0, top);
  out.push(`Leak groups: ${t.groups} (${t.objects} objects, ${fmtBytes(t.bytes)})${run.groups.length > shown.length ? ` — top ${shown.length} by bytes/h` : ''}`);
  if (shown.length) {
    const rows = shown.map((g, i) => [
      String(i + 1), g.title, g.fingerprint, String(g.objects), fmtBytes(g.bytes),
      `+${deltaObjects(g, last)}`, g.bytesPerHour === null ? '-' : `${rate(g.bytesPerHour)}`,
      sparkline(cumulativeBytes(g, n)), g.status + (g.bootTime ? ' (boot)' : ''),
    ]);
    out.push(...table(['#', 'Title', 'Fingerprint', 'Objects', 'Bytes', 'Δ', 'Slope/h', 'Trend', 'Status'], rows,
      ['r', 'l', 'l', 'r', 'r', 'r', 'r', 'l', 'l'], [0, 48]).map((l) => `  ${l}`));
    if (run.groups.length > shown.length) out.push(`  Omitting ${run.groups.length - shown.length} more group(s) (use --top or --format json).`);
  } else {
    out.push('  No unsuppressed leak groups.');
  }
  out.push('');

  // Suppressions used (LSan) -------------------------------------------------------------------
  if (run.suppressionsUsed.length) {
    out.push('-----------------------------------------------------');
    out.push('Suppressions used:');
    out.push(...table(['count', 'bytes', 'groups', 'rule', 'reason'],
      run.suppressionsUsed.map((s) => [String(s.objects), String(s.bytes), String(s.groups), s.ruleId, s.reason]),
      ['r', 'r', 'r', 'l', 'l'], [0, 0, 0, 32, 70]).map((l) => `  ${l}`));
    out.push('-----------------------------------------------------');
    out.push('');
  }

  // Memory verdict -----------------------------------------------------------------------------
  if (verdict) {
    const b = verdict.basis;
    out.push(`Memory verdict (${b.samples} sample${b.samples === 1 ? '' : 's'}${b.hours !== null ? ` over ${humanHours(b.hours)}` : ''}${b.bootId ? `, boot ${b.bootId}` : ''}):`);
    out.push(...table(['Finding', 'Check', 'Why'], verdict.rows.map((r) => [r.finding, r.label, r.explanation]), ['l', 'l', 'l'], [0, 0, 90]).map((l) => `  ${l}`));
    for (const note of verdict.notes) out.push(`  note: ${safeText(note)}`);
    out.push('');
  }

  const mem = memoryOf(run);
  if (mem && mem.slabGrowth.some((c) => c.deltaBytes !== 0)) {
    out.push('Slab caches growing fastest (active_objs × objsize):');
    const rows = mem.slabGrowth.filter((c) => c.deltaBytes !== 0).slice(0, 10).map((c) => [
      c.name, String(c.objSize), fmtBytes(c.firstBytes), fmtBytes(c.lastBytes), rate(c.deltaBytes), rate(c.bytesPerHour),
    ]);
    out.push(...table(['Cache', 'Obj size', 'First', 'Last', 'Δ', 'Slope/h'], rows, ['l', 'r', 'r', 'r', 'r', 'r']).map((l) => `  ${l}`));
    out.push('');
  }
  if (mem && mem.events.length) {
    // kmemleak's own "N new suspected memory leaks" lines come every scan: count them in one line
    // so that an OOM kill, an LMK kill or an allocation failure is not buried among them.
    const routine = mem.events.filter((e) => e.kind === 'kmemleak-new');
    const pressure = mem.events.filter((e) => e.kind !== 'kmemleak-new');
    const byKind = new Map<string, number>();
    for (const e of pressure) byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);
    const summary = [...byKind].map(([k, n]) => `${n} ${k}`);
    if (routine.length) summary.push(`${routine.length} kmemleak-new (${routine.reduce((a, e) => a + (e.count ?? 0), 0)} suspected leaks reported)`);
    out.push(`Kernel events (${mem.events.length}): ${summary.join(', ')}`);
    if (pressure.length) {
      const rows = pressure.slice(0, 30).map((e) => [
        isoOf(e.t), e.uptimeS !== null ? e.uptimeS.toFixed(1) : '-', String(e.snapshot), e.kind,
        e.comm ? `${e.comm}${e.pid !== undefined ? ` (${e.pid})` : ''}` : e.count !== undefined ? `${e.count} new` : '',
        e.freedKb !== undefined ? humanKb(e.freedKb) : e.order !== undefined ? `order ${e.order}` : '',
        e.memcg ? 'memcg' : e.source ?? '',
      ]);
      out.push(...table(['Time', 'Uptime', 'Snap', 'Event', 'Task', 'Size', 'Note'], rows, ['l', 'r', 'r', 'l', 'l', 'r', 'l'], [0, 0, 0, 0, 40]).map((l) => `  ${l}`));
      if (pressure.length > 30) out.push(`  … ${pressure.length - 30} more (see --format json or html)`);
    } else {
      out.push('  no OOM kill, low-memory kill or allocation failure in the kernel log');
    }
    out.push('');
  }

  // Input accounting ---------------------------------------------------------------------------
  const problems = inputProblems(run);
  out.push(`Input: ${run.parseStats.files} file(s), ${run.parseStats.records} record(s), ${problems.length ? problems.join('; ') : 'everything understood'}.`);
  for (const a of run.assumptions) out.push(`Assumed: ${safeText(a)}`);
  return out.join('\n') + '\n';
}
