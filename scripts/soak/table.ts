// The soak's summary as text tables (what goes into RESULTS.md and the README). Pure.
import type { SoakSummary } from './soak.js';

function pad(cells: string[][]): string {
  const widths = cells[0].map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  return cells.map((r) => r.map((x, c) => (c === 0 ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join('  ').trimEnd()).join('\n');
}

const s = (x: number | null | undefined, unit = ''): string => (x === null || x === undefined ? '-' : `${x}${unit}`);

export function renderSummary(r: SoakSummary): string {
  const o = r.options;
  const out: string[] = [];
  out.push(`kml soak: ${r.ok ? 'PASS' : 'FAIL'} (${r.totals.lost} lost, ${r.totals.duplicated} duplicated)`);
  out.push(`seed ${r.seed}; ${r.serials.length} lab device(s), heavy = ${r.heavy}; ${o.cycles} cycles/device target; interval ${o.intervalS} s, scan-wait ${o.scanWaitS} s; kml_leaky ${o.leakRate} objects/s; ${Math.round(r.durationS / 60)} min`);
  out.push(`replay: ${o.replay}`);
  out.push(`kml:    ${r.kmlCommand}`);
  out.push('');
  out.push(pad([
    ['device', 'role', 'cycles', 'written', 'pulled', 'lost', 'dup', 'hash-bad', 'unledgered', 'skipped', 'interrupted', 'gaps', 'left', 'starts', 'lag max/p95', 'cadence max/med'],
    ...r.devices.map((d) => [
      d.serial, d.role, String(d.cycles), String(d.written), String(d.pulled), String(d.lost.length), String(d.duplicated.length), String(d.mismatched.length),
      String(d.unledgered.length), `${d.skipped}${d.statusSkipped !== undefined ? `/${d.statusSkipped}` : ''}${d.reportSkipped !== undefined ? `/${d.reportSkipped}` : ''}`,
      String(d.interrupted.length), String(d.unexplained.length), String(d.leftOnDevice.length), String(d.agentStarts),
      `${d.pullLagS.max}/${d.pullLagS.p95} s`, `${d.cadence.maxGapS}/${d.cadence.medianGapS} s`,
    ]),
    ['total', '', String(r.totals.cycles), String(r.totals.written), String(r.totals.pulled), String(r.totals.lost), String(r.totals.duplicated), String(r.totals.mismatched),
      String(r.totals.unledgered), String(r.totals.skipped), String(r.totals.interrupted), String(r.totals.unexplained), String(r.totals.leftOnDevice), '', '', ''],
  ]));
  out.push('(skipped = skipped.log / kml status / kml report; interrupted = the cycle an agent died in, nothing published or cleared;');
  out.push(' gaps = sequence numbers nobody accounts for; lag = device wall time to host pulledAt; cadence = gap between snapshot wall times)');
  const withLeaks = r.devices.filter((d) => d.leakCheck);
  if (withLeaks.length) {
    out.push('kmemleak level (last boot of each device): kml_leaky objects leaked (module counter) vs distinct kml_leaky objects in the stored reports');
    for (const d of withLeaks) {
      const l = d.leakCheck!;
      out.push(`  ${d.serial}: leaked ${l.leaked}, reported ${l.reported}, expected ≈ ${l.expected} (the last ${l.leaked - l.expected} too young for the last snapshot), difference ${l.difference >= 0 ? '+' : ''}${l.difference}`);
    }
  }
  out.push('');
  out.push(pad([
    ['fault', 'fired', 'failed', 'resume max', 'fresh max', 'fresh median'],
    ...Object.entries(r.faultsByKind).map(([k, f]) => [k, `${f.fired}/${f.planned}`, String(f.failed), s(f.resumeMaxS, ' s'), s(f.freshMaxS, ' s'), s(f.freshMedianS, ' s')]),
  ]));
  out.push('(resume = fault cleared → next snapshot stored; fresh = fault cleared → first snapshot taken after it is stored)');
  out.push('');
  const k = r.kml;
  out.push(`kml collect: ${k.incarnations} incarnation(s) (${k.unexpectedExits.length} unexpected exit(s)); final exit ${s(k.finalExitCode)}, kml stop exit ${s(k.stopExitCode)}; RSS start ${s(k.rssStartMb, ' MB')}, end ${s(k.rssEndMb, ' MB')}, peak ${s(k.rssPeakMb, ' MB')}; ${k.errorLines} error log line(s)`);
  const longest = [...k.rssByIncarnation].sort((a, b) => b.minutes - a.minutes)[0];
  if (longest) out.push(`kml RSS over its longest life (incarnation ${longest.n}, ${longest.minutes} min): ${s(longest.firstMb, ' MB')} → ${s(longest.lastMb, ' MB')} (peak ${s(longest.peakMb, ' MB')})`);
  out.push(`recoveries (kml's log): ${Object.entries(k.recoveries).filter(([, n]) => n).map(([m, n]) => `${m} ${n}`).join(', ') || 'none'}`);
  if (r.steadyCadence) {
    out.push(`steady devices: snapshot gap max ${r.steadyCadence.maxGapS} s (median ${r.steadyCadence.medianGapS} s, interval ${o.intervalS} s + scan-wait ${o.scanWaitS} s), pull lag max ${r.steadyCadence.maxPullLagS} s`);
  }
  if (r.problems.length) {
    out.push('');
    out.push('problems:');
    for (const p of r.problems) out.push(`  - ${p}`);
  }
  if (r.storeKept) out.push(`store kept in ${r.storeKept}`);
  return out.join('\n') + '\n';
}

export function renderSchedule(r: SoakSummary): string {
  const rows = [['#', 'cycle', 'kind', 'target', 'hold', 'took', 'resume', 'fresh', 'note']];
  for (const e of r.schedule) {
    rows.push([
      String(e.n), String(e.atCycle), e.kind, e.device === undefined ? 'host' : `dev ${e.device}`, `${e.holdS} s`,
      e.startedAt && e.endedAt ? `${Math.round((e.endedAt - e.startedAt) / 100) / 10} s` : '-',
      s(e.resumeS, ' s'), s(e.freshS, ' s'), e.error ? `ERROR ${e.error}` : (e.detail ?? ''),
    ]);
  }
  return pad(rows) + '\n';
}
