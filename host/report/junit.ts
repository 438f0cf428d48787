// JUnit XML for CI: one testcase per new or growing leak group, each a failure; a passing case
// when there is none, so CI always shows the check ran. Suppressions used go to <system-out>.
import type { AnalyzedRun } from '../analyze/model.js';
import { verdictOf, escapeXml, isGrowing, fmtBytes, rate, runHours } from './common.js';

export function renderJunit(run: AnalyzedRun): string {
  const failing = run.groups.filter(isGrowing);
  const suite = `kml.kmemleak${run.run.serial ? `.${run.run.serial}` : ''}`;
  const hours = runHours(run);
  const cases: string[] = [];
  for (const g of failing) {
    const msg = `${g.status}: ${g.objects} objects, ${fmtBytes(g.bytes)}${g.bytesPerHour !== null ? `, ${rate(g.bytesPerHour)}/h` : ''}`;
    const body = [
      `${g.title} [${g.fingerprint}] ${msg}`,
      `key: ${g.key}`,
      `first seen snapshot ${g.firstSeen}, last ${g.lastSeen}; comm ${g.comms.map((c) => `${c.comm}×${c.count}`).join(', ')}`,
      'backtrace:',
      ...g.sampleStack.map((f) => `  ${f}`),
    ].join('\n');
    cases.push(
      `    <testcase classname="kmemleak.${escapeXml(g.module ?? 'kernel')}" name="${escapeXml(`${g.title} [${g.fingerprint}]`)}" time="0">\n` +
      `      <failure type="${g.status}" message="${escapeXml(msg)}">${escapeXml(body)}</failure>\n` +
      '    </testcase>',
    );
  }
  if (!failing.length) {
    cases.push('    <testcase classname="kmemleak" name="no new or growing leak groups" time="0"/>');
  }
  const out: string[] = [];
  if (run.suppressionsUsed.length) {
    out.push('Suppressions used:', '  count      bytes  rule');
    for (const s of run.suppressionsUsed) out.push(`  ${String(s.objects).padStart(5)} ${String(s.bytes).padStart(10)}  ${s.ruleId} — ${s.reason}`);
  }
  const verdict = verdictOf(run);
  if (verdict) out.push(`Memory verdict: ${verdict.summary}`);
  const props: Array<[string, string | null]> = [
    ['serial', run.run.serial], ['runId', run.run.runId], ['kernel', run.run.kernelVersion],
    ['snapshots', String(run.snapshots.length)], ['hours', hours === null ? null : hours.toFixed(2)],
    ['verdict', verdict?.conclusion ?? null], ['schemaVersion', String(run.schemaVersion)],
  ];
  const properties = props.filter(([, v]) => v !== null).map(([k, v]) => `      <property name="${k}" value="${escapeXml(v!)}"/>`);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="kml" tests="${cases.length}" failures="${failing.length}" errors="0">`,
    `  <testsuite name="${escapeXml(suite)}" tests="${cases.length}" failures="${failing.length}" errors="0" skipped="0" timestamp="${escapeXml(run.generatedAt.replace(/\.\d+Z$/, ''))}">`,
    '    <properties>', ...properties.map((p) => `  ${p}`), '    </properties>',
    ...cases,
    out.length ? `    <system-out>${escapeXml(out.join('\n'))}</system-out>` : '',
    '  </testsuite>',
    '</testsuites>',
    '',
  ].filter((l) => l !== '').join('\n') + '\n';
}
