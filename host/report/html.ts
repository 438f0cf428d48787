// One self-contained HTML file: inline CSS and inline SVG charts, no script, no external resource.
// Charts (ids are stable; the integration test looks for them):
//   #chart-memory  memory counters over time (MemFree, file/anon LRU, Slab) with OOM/LMK kills as
//                  dashed markers; #chart-kernel the kernel-side ones (SUnreclaim, unaccounted, vmalloc…)
//   #chart-buddy   free blocks per order per zone (first vs last sample), log scale
//   #chart-groups  cumulative bytes of the top leak groups per snapshot
//   #chart-events  OOM / LMK / allocation-failure / kmemleak events on the same time axis
//   #chart-slab    slab caches by growth per hour
import type { AnalyzedRun, LeakGroup } from '../analyze/model.js';
import type { MemoryAnalysis, MemoryEvent, MemorySample } from '../analyze/memory-model.js';
import { humanHours, humanKb } from '../analyze/memory-format.js';
import {
  type RenderOptions, DEFAULT_TOP, memoryOf, verdictOf, deltaObjects, cumulativeBytes, escapeHtml as h,
  rate, fmtBytes, runHours, isoOf, inputProblems,
} from './common.js';
import { PALETTE, lineChart, logBarChart, laneChart, hBarChart, svgSparkline, emptyChart, type Series, type Lane } from './svg.js';

const EVENT_STYLE: Record<string, { name: string; color: string }> = {
  'oom-kill': { name: 'OOM kill', color: '#d62728' },
  'oom-invoked': { name: 'OOM invoked', color: '#ff9896' },
  'lmk-kill': { name: 'LMK kill', color: '#ff7f0e' },
  'alloc-failure': { name: 'alloc failure', color: '#9467bd' },
  'unreclaimable-slab': { name: 'unreclaimable slab', color: '#8c564b' },
  'kmemleak-new': { name: 'kmemleak new', color: '#1f77b4' },
  'kmemleak-disabled': { name: 'kmemleak disabled', color: '#000000' },
  'kmemleak-error': { name: 'kmemleak error', color: '#7f7f7f' },
  'oom-reaped': { name: 'OOM reaped', color: '#e377c2' },
};

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.facts{color:#555;margin-bottom:12px} .verdict{padding:10px 14px;border-radius:6px;margin:12px 0;border:1px solid}
.f-yes{background:#fdecea;border-color:#f5c2c0} .f-possible{background:#fff4e5;border-color:#ffd8a8} .f-no{background:#edf7ed;border-color:#b7dfb9} .f-no-data{background:#f3f3f3;border-color:#ddd}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px} th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#fafafa;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.fp{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;color:#555} pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px;margin:4px 0}
.st{padding:1px 6px;border-radius:8px;font-size:12px} .st-new{background:#fde2e1} .st-growing{background:#ffe8cc} .st-steady{background:#e7f0fa} .st-one-shot{background:#eee}
.chart{display:block;margin:8px 0 16px;max-width:100%;height:auto;border:1px solid #eee} .muted{color:#777} details summary{cursor:pointer}
.charts-2{display:flex;flex-wrap:wrap;gap:12px}
`;

export function renderHtml(run: AnalyzedRun, opts: RenderOptions = {}): string {
  const top = opts.top ?? DEFAULT_TOP;
  const mem = memoryOf(run);
  const verdict = verdictOf(run);
  const n = run.snapshots.length;
  const hours = runHours(run);
  const who = [run.run.serial, run.run.runId].filter(Boolean).join(' ') || run.source.path;
  const axis = timeAxis(run);
  const parts: string[] = [];

  parts.push(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">`);
  parts.push(`<title>kml report — ${h(who)}</title><style>${CSS}</style></head><body>`);
  parts.push(`<h1>kml report — ${h(who)}</h1>`);
  parts.push(`<div class="facts">${h([
    `${n} snapshot(s)${hours !== null ? ` over ${humanHours(hours)}` : ''}`,
    run.run.kernelVersion ? `kernel ${run.run.kernelVersion}` : '',
    run.run.bootIds.length > 1 ? `${run.run.bootIds.length} boots` : '',
    `source ${run.source.type}: ${run.source.path}`,
    `generated ${run.generatedAt} by kml ${run.kmlVersion}`,
  ].filter(Boolean).join(' · '))}</div>`);

  if (verdict) {
    parts.push(`<div id="verdict" class="verdict f-${h(verdict.finding)}"><strong>Verdict:</strong> ${h(verdict.summary)}</div>`);
  }

  // Leak groups --------------------------------------------------------------------------------
  const t = run.totals;
  parts.push(`<h2>Leak groups</h2><p>${t.groups} group(s), ${t.objects} object(s), ${h(fmtBytes(t.bytes))}; ${t.suppressedGroups} suppressed group(s) (${t.suppressedObjects} objects, ${h(fmtBytes(t.suppressedBytes))}).</p>`);
  const shown = run.groups.slice(0, top);
  if (shown.length) {
    parts.push('<table id="groups"><thead><tr><th>#</th><th>Title</th><th>Fingerprint</th><th>Objects</th><th>Bytes</th><th>Δ</th><th>Slope/h</th><th>Trend</th><th>Status</th></tr></thead><tbody>');
    shown.forEach((g, i) => {
      parts.push(`<tr><td class="n">${i + 1}</td><td>${groupDetails(g, run)}</td><td class="fp">${h(g.fingerprint)}</td><td class="n">${g.objects}</td><td class="n">${h(fmtBytes(g.bytes))}</td>` +
        `<td class="n">+${deltaObjects(g, n - 1)}</td><td class="n">${h(rate(g.bytesPerHour))}</td><td>${svgSparkline(cumulativeBytes(g, n))}</td>` +
        `<td><span class="st st-${h(g.status)}">${h(g.status)}</span>${g.bootTime ? ' <span class="muted">boot</span>' : ''}</td></tr>`);
    });
    parts.push('</tbody></table>');
    if (run.groups.length > shown.length) parts.push(`<p class="muted">Omitting ${run.groups.length - shown.length} more group(s); the JSON report has all of them.</p>`);
  } else {
    parts.push('<p>No unsuppressed leak groups.</p>');
  }
  parts.push(groupChart(run, shown.slice(0, 8), axis));

  if (run.suppressionsUsed.length) {
    parts.push('<h2>Suppressions used</h2><table id="suppressions"><thead><tr><th>Count</th><th>Bytes</th><th>Groups</th><th>Rule</th><th>Reason</th></tr></thead><tbody>');
    for (const s of run.suppressionsUsed) parts.push(`<tr><td class="n">${s.objects}</td><td class="n">${s.bytes}</td><td class="n">${s.groups}</td><td class="fp">${h(s.ruleId)}</td><td>${h(s.reason)}</td></tr>`);
    parts.push('</tbody></table>');
    if (run.suppressed.length) {
      parts.push('<details><summary>Suppressed groups</summary><table><thead><tr><th>Title</th><th>Fingerprint</th><th>Objects</th><th>Bytes</th><th>Rule</th></tr></thead><tbody>');
      for (const g of run.suppressed.slice(0, 200)) parts.push(`<tr><td>${h(g.title)}</td><td class="fp">${h(g.fingerprint)}</td><td class="n">${g.objects}</td><td class="n">${h(fmtBytes(g.bytes))}</td><td class="fp">${h(g.suppression.ruleId)}</td></tr>`);
      parts.push('</tbody></table></details>');
    }
  }

  // Memory -------------------------------------------------------------------------------------
  parts.push('<h2>Memory verdict</h2>');
  if (verdict) {
    const b = verdict.basis;
    parts.push(`<p class="muted">${b.samples} sample(s)${b.hours !== null ? ` over ${h(humanHours(b.hours))}` : ''}${b.bootId ? `, boot ${h(b.bootId)}` : ''}.</p>`);
    parts.push('<table id="verdict-table"><thead><tr><th>Finding</th><th>Check</th><th>Why</th><th>Numbers</th></tr></thead><tbody>');
    for (const r of verdict.rows) {
      const nums = r.evidence.filter((e) => e.value !== null).map((e) => `${h(e.name)}: <b>${h(String(e.value))}</b>${e.unit ? ` ${h(e.unit)}` : ''}`).join('<br>');
      parts.push(`<tr class="f-${h(r.finding)}"><td>${h(r.finding)}</td><td>${h(r.label)}</td><td>${h(r.explanation)}</td><td>${nums}</td></tr>`);
    }
    parts.push('</tbody></table>');
    for (const note of verdict.notes) parts.push(`<p class="muted">Note: ${h(note)}</p>`);
  } else {
    parts.push('<p class="muted">No verdict in this analysis.</p>');
  }
  parts.push(memoryChart(mem, axis));
  parts.push(buddyChart(mem));
  parts.push(eventsChart(mem, axis));
  parts.push(slabSection(mem));
  parts.push(eventsTable(mem));

  // Input ------------------------------------------------------------------------------------------
  const problems = inputProblems(run);
  parts.push(`<h2>Input</h2><p>${run.parseStats.files} file(s), ${run.parseStats.records} record(s), ${run.parseStats.lines} line(s). ${problems.length ? h(problems.join('; ')) : 'Everything understood.'}</p>`);
  if (run.parseStats.unparsedSamples.length) {
    parts.push(`<details><summary>Lines not understood</summary><pre>${h(run.parseStats.unparsedSamples.map((u) => `${u.file}:${u.line}: ${u.text}`).join('\n'))}</pre></details>`);
  }
  for (const a of run.assumptions) parts.push(`<p class="muted">Assumed: ${h(a)}</p>`);
  parts.push('</body></html>\n');
  return parts.join('\n');
}

function groupDetails(g: LeakGroup, run: AnalyzedRun): string {
  const snap = run.snapshots[g.sample.snapshot];
  const info = [
    `key: ${g.key}`,
    `sizes ${g.sizes.min}–${g.sizes.max} B; comm ${g.comms.map((c) => `${c.comm}×${c.count}`).join(', ')}`,
    `first seen snapshot ${g.firstSeen}, last ${g.lastSeen}, new objects in ${g.snapshotsWithNew} snapshot(s)`,
    g.allocUptimeS ? `allocated at uptime ${g.allocUptimeS.min.toFixed(0)}–${g.allocUptimeS.max.toFixed(0)} s` : '',
    snap?.files.kmemleak ? `sample: ${snap.files.kmemleak}:${g.sample.line}` : '',
  ].filter(Boolean).join('\n');
  return `<details><summary>${h(g.title)}</summary><pre>${h(g.sampleStack.join('\n'))}</pre><pre class="muted">${h(info)}</pre></details>`;
}

interface Axis {
  /** x value (hours since the first snapshot, or snapshot index) of a snapshot. */
  ofSnapshot: (i: number) => number;
  /** x value of a time t (hours since t0), or null when times are unknown. */
  ofT: (t: number | null, snapshot: number) => number;
  label: string;
  range: [number, number] | null;
}

function timeAxis(run: AnalyzedRun): Axis {
  const t0 = run.snapshots.find((s) => s.t !== null)?.t ?? null;
  const tLast = run.snapshots[run.snapshots.length - 1]?.t ?? null;
  // Snapshot times less than a second apart on average (files copied together) make no useful axis.
  const timed = t0 !== null && tLast !== null && run.snapshots.every((s) => s.t !== null) &&
    (run.snapshots.length < 2 || tLast - t0 >= run.snapshots.length - 1);
  if (timed) {
    const ofSnapshot = (i: number) => ((run.snapshots[i]?.t ?? t0) - t0) / 3600;
    const last = run.snapshots.length - 1;
    return {
      ofSnapshot,
      ofT: (t, i) => (t !== null ? (t - t0) / 3600 : ofSnapshot(i)),
      label: `hours since ${isoOf(t0)}`,
      range: [0, ofSnapshot(last)],
    };
  }
  return { ofSnapshot: (i) => i, ofT: (_t, i) => i, label: 'snapshot', range: run.snapshots.length ? [0, run.snapshots.length - 1] : null };
}

function groupChart(run: AnalyzedRun, groups: LeakGroup[], axis: Axis): string {
  const n = run.snapshots.length;
  if (!groups.length || n === 0) return emptyChart('chart-groups', 'Per-group growth', 'no leak groups');
  const series: Series[] = groups.map((g, i) => ({
    name: g.culprit.length > 28 ? `${g.culprit.slice(0, 27)}…` : g.culprit,
    color: PALETTE[i % PALETTE.length],
    points: cumulativeBytes(g, n).map((v, k) => ({ x: axis.ofSnapshot(k), y: v / 1024 })),
  }));
  return `<h2>Per-group growth</h2>${lineChart({ id: 'chart-groups', title: 'Cumulative leaked kB per group', series, xLabel: axis.label, yLabel: 'kB (cumulative)' })}`;
}

function memoryChart(mem: MemoryAnalysis | null, axis: Axis): string {
  const title = 'Memory counters over time';
  if (!mem || !mem.samples.some((s) => s.meminfo)) {
    return `<h3>${title}</h3>${emptyChart('chart-memory', title, 'no meminfo samples in this run')}${emptyChart('chart-kernel', 'Kernel-side memory counters', 'no meminfo samples in this run')}`;
  }
  const pick = (name: string, color: string, get: (s: MemorySample) => number | null) => ({
    name, color,
    points: mem.samples.flatMap((s) => { const v = get(s); return v === null ? [] : [{ x: axis.ofT(s.t, s.snapshot), y: v / 1024 }]; }),
  });
  const markers = mem.events.filter((e) => e.kind === 'oom-kill' || e.kind === 'lmk-kill').map((e) => ({
    x: axis.ofT(e.t, e.snapshot), color: EVENT_STYLE[e.kind].color, label: eventLabel(e),
  }));
  // Two charts: MemFree dwarfs the kernel counters a leak moves, so those get their own scale.
  const overall: Series[] = [
    pick('MemFree', '#2ca02c', (s) => s.meminfo?.memFreeKb ?? null),
    pick('file LRU', '#17becf', (s) => s.meminfo?.fileLruKb ?? null),
    pick('anon LRU', '#ff7f0e', (s) => s.meminfo?.anonLruKb ?? null),
    pick('Slab', '#d62728', (s) => s.meminfo?.slabKb ?? null),
  ];
  const kernel: Series[] = [
    pick('SUnreclaim', '#d62728', (s) => s.meminfo?.sUnreclaimKb ?? null),
    pick('SReclaimable', '#e377c2', (s) => s.meminfo?.sReclaimableKb ?? null),
    pick('unaccounted (Lost RAM)', '#7f7f7f', (s) => s.meminfo?.unaccountedKb ?? null),
    pick('VmallocUsed', '#9467bd', (s) => s.meminfo?.vmallocUsedKb ?? null),
    pick('KernelStack', '#8c564b', (s) => s.meminfo?.kernelStackKb ?? null),
    pick('PageTables', '#bcbd22', (s) => s.meminfo?.pageTablesKb ?? null),
  ];
  return `<h3>${title}</h3>${lineChart({ id: 'chart-memory', title, series: overall, markers, xLabel: axis.label, yLabel: 'MB' })}` +
    `<h3>Kernel-side counters</h3>${lineChart({ id: 'chart-kernel', title: 'Kernel-side memory counters', series: kernel, markers, xLabel: axis.label, yLabel: 'MB' })}`;
}

function buddyChart(mem: MemoryAnalysis | null): string {
  const title = 'Free blocks per order (buddyinfo)';
  const withBlocks = mem?.samples.filter((s) => s.zones.some((z) => z.freeBlocks)) ?? [];
  if (!withBlocks.length) return `<h3>${title}</h3>${emptyChart('chart-buddy', title, 'no buddyinfo samples in this run')}`;
  const first = withBlocks[0], last = withBlocks[withBlocks.length - 1];
  const zones = last.zones.filter((z) => z.freeBlocks && z.freeBlocks.some((b) => b > 0));
  const orders = Math.max(...zones.map((z) => z.freeBlocks!.length));
  const colors = ['#aec7e8', '#1f77b4', '#ffbb78', '#ff7f0e', '#98df8a', '#2ca02c', '#ff9896', '#d62728'];
  const groups = Array.from({ length: orders }, (_, k) => ({
    label: String(k),
    values: zones.flatMap((z, zi) => {
      const fz = first.zones.find((x) => x.node === z.node && x.zone === z.zone)?.freeBlocks;
      const both = [
        { name: `${z.zone} first (snap ${first.snapshot})`, color: colors[(zi * 2) % colors.length], value: fz?.[k] ?? 0 },
        { name: `${z.zone} last (snap ${last.snapshot})`, color: colors[(zi * 2 + 1) % colors.length], value: z.freeBlocks![k] ?? 0 },
      ];
      return first === last ? [both[1]] : both;
    }),
  }));
  return `<h3>${title}</h3>${logBarChart('chart-buddy', title, groups, 'order (block = 2^order pages)', 'free blocks (log)')}`;
}

function eventLabel(e: MemoryEvent): string {
  return `${EVENT_STYLE[e.kind]?.name ?? e.kind} — ${e.comm ?? ''}${e.pid !== undefined ? ` (${e.pid})` : ''}${e.freedKb !== undefined ? ` freed ${humanKb(e.freedKb)}` : ''}${e.count !== undefined ? ` ${e.count} new` : ''}${e.order !== undefined ? ` order ${e.order}` : ''} — snapshot ${e.snapshot}`;
}

function eventsChart(mem: MemoryAnalysis | null, axis: Axis): string {
  const lanes: Lane[] = Object.entries(EVENT_STYLE).map(([kind, st]) => ({
    name: st.name, color: st.color,
    events: (mem?.events ?? []).filter((e) => e.kind === kind).map((e) => ({ x: axis.ofT(e.t, e.snapshot), label: eventLabel(e) })),
  }));
  return `<h3>Kernel events</h3>${laneChart('chart-events', 'Kernel events on the run timeline', lanes, axis.range, axis.label)}`;
}

function slabSection(mem: MemoryAnalysis | null): string {
  const grow = (mem?.slabGrowth ?? []).filter((c) => c.deltaBytes !== 0 || (c.bytesPerHour ?? 0) !== 0).slice(0, 12);
  const chart = hBarChart('chart-slab', 'Slab caches by growth per hour', grow.map((c) => ({ label: c.name, value: c.bytesPerHour ?? c.deltaBytes, text: `${rate(c.bytesPerHour)}/h` })));
  if (!grow.length) return `<h3>Slab caches</h3>${chart}`;
  const rows = grow.map((c) => `<tr><td class="fp">${h(c.name)}</td><td class="n">${c.objSize}</td><td class="n">${h(fmtBytes(c.firstBytes))}</td><td class="n">${h(fmtBytes(c.lastBytes))}</td><td class="n">${h(rate(c.deltaBytes))}</td><td class="n">${h(rate(c.bytesPerHour))}</td></tr>`);
  return `<h3>Slab caches growing fastest</h3>${chart}<table id="slab"><thead><tr><th>Cache</th><th>Obj size</th><th>First</th><th>Last</th><th>Δ</th><th>Slope/h</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function eventsTable(mem: MemoryAnalysis | null): string {
  if (!mem?.events.length) return '';
  const rows = mem.events.slice(0, 200).map((e) => `<tr><td>${h(isoOf(e.t))}</td><td class="n">${e.uptimeS !== null ? e.uptimeS.toFixed(1) : '-'}</td><td class="n">${e.snapshot}</td><td>${h(EVENT_STYLE[e.kind]?.name ?? e.kind)}</td><td class="fp">${h(e.text)}</td></tr>`);
  return `<details><summary>${mem.events.length} kernel event(s)</summary><table id="events"><thead><tr><th>Time</th><th>Uptime</th><th>Snapshot</th><th>Event</th><th>Message</th></tr></thead><tbody>${rows.join('')}</tbody></table></details>`;
}
