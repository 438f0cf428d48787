// Renderers from hand-built models (independent of the kmemleak parser) with a memory analysis
// and verdict computed from the real lab captures.
import test from 'node:test';
import assert from 'node:assert/strict';
import { analyzeMemory } from '../../host/analyze/memory.js';
import { computeVerdict, kmemleakGrowthOf } from '../../host/analyze/verdict.js';
import { render, renderText, renderJson, renderHtml, renderJunit, renderMarkdown } from '../../host/report/index.js';
import { sparkline, cumulativeBytes, deltaObjects } from '../../host/report/common.js';
import { parseAnalysisJson, writeJson } from '../../host/report/json.js';
import { diffRuns, renderDiffText, renderDiffJunit } from '../../host/report/diff.js';
import { ExitCode, KmlError } from '../../host/errors.js';
import type { AnalyzedRun } from '../../host/analyze/model.js';
import { LAB, labSeries, setMeminfo, setSlab, analyzedRun, group } from './report-helpers.js';

function model(): AnalyzedRun {
  const run = analyzedRun([
    group('memory leak in foo_probe', 'a1b2c3d4e5f6', 128, [0, 4, 4, 5, 4, 4]),
    group('memory leak in bar|ioctl <script>alert(1)</script>', '0123456789ab', 2048, [0, 0, 0, 0, 0, 3], { status: 'new' }),
    group('memory leak in once_init', 'ffeeddccbbaa', 64, [2, 0, 0, 0, 0, 0], { status: 'one-shot', bytesPerHour: 0 }),
  ], 6);
  run.suppressed = [{ ...group('memory leak in qbam_probe', '999999999999', 64, [2, 0, 0, 0, 0, 0], { status: 'one-shot', bootTime: true }), suppression: { ruleId: 'builtin:boot-time', reason: 'boot-time probe allocation', origin: 'builtin' } }];
  run.suppressionsUsed = [{ ruleId: 'builtin:boot-time', reason: 'boot-time probe allocation', origin: 'builtin', groups: 1, objects: 2, bytes: 128 }];
  run.totals.suppressedGroups = 1; run.totals.suppressedObjects = 2; run.totals.suppressedBytes = 128;
  const mem = analyzeMemory(labSeries(6, (k, t) => {
    t.meminfo = setMeminfo(LAB.meminfo, { SUnreclaim: 13720 + 2048 * k, Slab: 19276 + 2048 * k, MemFree: 446780 - 2048 * k });
    t.slabinfo = setSlab(LAB.slabinfo, 'scsi_sense_cache', 288 + 16384 * k);
    if (k === 3) t.kmsg = "[ 10900.0] lowmemorykiller: Killing 'com.x\u001b[31m' (77), adj 900,\n[ 10900.0]    to free 5000kB on behalf of 'kswapd0' (42) because\n";
    if (k === 4) t.kmsg = '[ 11000.0] kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n';
  }), 6);
  run.memory = mem;
  run.verdict = computeVerdict(mem, kmemleakGrowthOf(run));
  return run;
}

test('sparkline and per-group helpers', () => {
  assert.equal(sparkline([0, 1, 2, 3, 4, 5, 6, 7]), '▁▂▃▄▅▆▇█');
  assert.equal(sparkline([5, 5, 5]), '▄▄▄');
  assert.equal(sparkline([0, 0]), '▁▁');
  assert.equal(sparkline(Array.from({ length: 100 }, (_, i) => i), 10).length, 10);
  const g = group('memory leak in x', 'aaaaaaaaaaaa', 10, [1, 0, 2, 0]);
  assert.deepEqual(cumulativeBytes(g, 4), [10, 10, 30, 30]);
  assert.equal(deltaObjects(g, 2), 2);
  assert.equal(deltaObjects(g, 3), 0);
});

test('text: groups table, LSan-style suppressions, memory verdict, events, no raw control characters', () => {
  const out = renderText(model());
  assert.match(out, /Verdict: Kernel slab leak: SUnreclaim \+10 MB over 5 h/);
  assert.match(out, /#\s+Title\s+Fingerprint\s+Objects\s+Bytes\s+Δ\s+Slope\/h\s+Trend\s+Status/);
  assert.match(out, /1\s+memory leak in foo_probe\s+a1b2c3d4e5f6\s+21\s+2\.6 kB\s+\+4\s+\+672 B\s+▁▂▄▅▇█\s+growing/);
  assert.match(out, /Suppressions used:\n\s+count\s+bytes\s+groups\s+rule\s+reason\n\s+2\s+128\s+1\s+builtin:boot-time\s+boot-time probe allocation/);
  assert.match(out, /yes\s+Kernel slab leak/);
  assert.match(out, /scsi_sense_cache\s+128\s+36\.0 kB/);
  assert.match(out, /lmk-kill\s+com\.x\?\[31m \(77\)/);
  // kmemleak's routine reports are counted in the heading, not listed among the kills
  assert.match(out, /Kernel events \(2\): 1 lmk-kill, 1 kmemleak-new \(3 suspected leaks reported\)/);
  assert.doesNotMatch(out, /^\s+\S+\s+[\d.]+\s+\d+\s+kmemleak-new/m);
  assert.doesNotMatch(out, /\u001b/);
  const top1 = renderText(model(), { top: 1 });
  assert.match(top1, /Omitting 2 more group\(s\)/);
});

test('json: schemaVersion, round trip, and refusal of unknown versions', () => {
  const run = model();
  const text = renderJson(run);
  const back = parseAnalysisJson(text, 'x.json');
  assert.equal(back.schemaVersion, 1);
  assert.equal(back.kind, 'kml-analysis');
  assert.deepEqual(back, JSON.parse(JSON.stringify(run)));
  assert.equal(renderText(back), renderText(run), 'other formats render the same from the JSON');
  assert.throws(() => parseAnalysisJson(text.replace('"schemaVersion": 1', '"schemaVersion": 2'), 'x.json'),
    (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.IO && /schemaVersion 2/.test(e.message));
  assert.throws(() => parseAnalysisJson('{"kind":"other"}', 'x.json'), KmlError);
  assert.throws(() => parseAnalysisJson('{', 'x.json'), KmlError);
});

test('html: one self-contained file with every chart, kernel strings escaped', () => {
  const html = renderHtml(model());
  for (const id of ['chart-memory', 'chart-kernel', 'chart-buddy', 'chart-groups', 'chart-events', 'chart-slab']) {
    assert.match(html, new RegExp(`<svg id="${id}"`), id);
  }
  assert.doesNotMatch(html, /<script/i);
  assert.doesNotMatch(html, /\b(?:src|href)\s*=/i);
  assert.doesNotMatch(html, /url\(|@import|https?:\/\//i);
  assert.match(html, /bar\|ioctl &lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(html, /<path class="series" data-name="SUnreclaim"/);
  assert.match(html, /<line class="marker"/, 'the LMK kill is marked on the memory chart');
  assert.match(html, /<circle class="event"/);
  assert.equal((html.match(/<svg class="spark"/g) ?? []).length, 3);
});

test('html without memory samples still has every chart id, as labelled placeholders', () => {
  const run = analyzedRun([group('memory leak in foo', 'a1b2c3d4e5f6', 64, [1, 1])], 2);
  run.verdict = computeVerdict(null, kmemleakGrowthOf(run));
  const html = renderHtml(run);
  for (const id of ['chart-memory', 'chart-kernel', 'chart-buddy', 'chart-events', 'chart-slab']) {
    assert.match(html, new RegExp(`<svg id="${id}"[^>]*data-empty="true"`), id);
  }
  assert.match(html, /<svg id="chart-groups"(?![^>]*data-empty)/);
});

test('junit: one failing testcase per new or growing group; suppressions in system-out', () => {
  const xml = renderJunit(model());
  assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>/);
  assert.match(xml, /<testsuites name="kml" tests="2" failures="2" errors="0">/);
  assert.equal((xml.match(/<testcase /g) ?? []).length, 2);
  assert.match(xml, /<failure type="growing" message="growing: 21 objects, 2\.6 kB, \+672 B\/h">/);
  assert.match(xml, /<failure type="new"/);
  assert.match(xml, /name="memory leak in bar\|ioctl &lt;script&gt;alert\(1\)&lt;\/script&gt; \[0123456789ab\]"/);
  assert.match(xml, /<system-out>Suppressions used:/);
  assert.doesNotMatch(xml, /once_init/, 'one-shot groups are not test cases');
  // Balanced tags.
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z-]+)[^>]*?(\/?)>/g)) {
    if (m[3] === '/') continue;
    if (m[1]) assert.equal(stack.pop(), m[2]); else stack.push(m[2]);
  }
  assert.deepEqual(stack, []);
  const clean = renderJunit(analyzedRun([], 2));
  assert.match(clean, /tests="1" failures="0"/);
  assert.match(clean, /<testcase classname="kmemleak" name="no new or growing leak groups"/);
});

test('markdown: GFM tables, pipes escaped, verdict rows', () => {
  const md = renderMarkdown(model());
  assert.match(md, /^# kml report: emulator-5554 run1/);
  assert.match(md, /\| # \| Title \| Fingerprint \| Objects \| Bytes \| Δ \| Slope\/h \| Trend \| Status \|/);
  assert.match(md, /bar\\\|ioctl \\<script\\>/);
  assert.match(md, /\| yes \| Kernel slab leak \|/);
  const row = md.split('\n').find((l) => l.includes('0123456789ab') && l.startsWith('| 2 |'))!;
  assert.equal(row.split(/(?<!\\)\|/).length, 11, row);
});

test('render() dispatches every format', () => {
  const run = model();
  for (const f of ['text', 'json', 'html', 'junit', 'md'] as const) assert.ok(render(run, f).length > 200, f);
});

test('diff: new, gone, grown and shrunk by fingerprint, lkp-style table', () => {
  const base = analyzedRun([
    group('memory leak in a', 'aaaaaaaaaaaa', 100, [1, 1, 1, 1]),
    group('memory leak in b', 'bbbbbbbbbbbb', 100, [5, 5, 5, 5]),
    group('memory leak in c', 'cccccccccccc', 100, [1, 1, 1, 1]),
  ], 4);
  const cand = analyzedRun([
    group('memory leak in a', 'aaaaaaaaaaaa', 100, [3, 3, 3, 3]),
    group('memory leak in b', 'bbbbbbbbbbbb', 100, [1, 1, 1, 1]),
    group('memory leak in d', 'dddddddddddd', 100, [0, 0, 1, 1]),
  ], 4);
  const d = diffRuns(base, cand);
  assert.deepEqual(d.counts, { new: 1, grown: 1, gone: 1, shrunk: 1, same: 0 });
  assert.deepEqual(d.entries.map((e) => [e.fingerprint, e.change]), [
    ['dddddddddddd', 'new'], ['aaaaaaaaaaaa', 'grown'], ['cccccccccccc', 'gone'], ['bbbbbbbbbbbb', 'shrunk'],
  ]);
  assert.equal(d.entries[1].pctChange, 200);
  assert.equal(d.entries[1].measure, 'bytesPerHour');
  const text = renderDiffText(d);
  assert.match(text, /1 new, 1 grown, 1 gone, 1 shrunk, 0 same/);
  assert.match(text, /baseline\s+objs\s+%change\s+candidate\s+objs\s+fingerprint\s+group/);
  assert.match(text, /\+200\.0%.*aaaaaaaaaaaa/);
  assert.match(renderDiffJunit(d), /failures="2"/);
});

test('the JSON report written in pieces is JSON.stringify(run, null, 2) byte for byte, and no piece is the whole', () => {
  const check = (run: unknown, what: string): string[] => {
    const pieces: string[] = [];
    writeJson(run as AnalyzedRun, (p) => pieces.push(p));
    assert.equal(pieces.join(''), JSON.stringify(run, null, 2) + '\n', what);
    assert.equal(renderJson(run as AnalyzedRun), JSON.stringify(run, null, 2) + '\n', `${what}: renderJson`);
    return pieces;
  };
  const run = model();
  run.groups = Array.from({ length: 40 }, (_, i) => group(`memory leak in f${i}`, i.toString(16).padStart(12, '0'), 64, [0, i, i, i + 1, i, i]));
  const pieces = check(run, 'rendered model');
  // Each group is a piece of its own: no piece holds two groups' fingerprints.
  const fingerprintsIn = (p: string): number => run.groups.filter((g) => p.includes(`"fingerprint": "${g.fingerprint}"`)).length;
  assert.equal(pieces.filter((p) => fingerprintsIn(p) === 1).length, run.groups.length, 'the groups went one by one');
  assert.ok(pieces.every((p) => fingerprintsIn(p) <= 1));
  // What JSON.stringify leaves out or changes: undefined/function members, undefined array
  // elements, toJSON, empty containers, strings with newlines and non-Latin-1 text, nesting.
  check({
    a: undefined, b: () => 1, c: [], d: {}, e: [undefined, () => 2, null, 'x\ny', 'é → ü', [1, [2, {}]], { z: [] }],
    f: new Date(0), g: { toJSON: (k: string) => `key ${k}` }, h: [{ toJSON: (k: string) => ({ index: k }) }], i: 'line\nbreak', 'j"k': 1,
  }, 'edge members');
  check({}, 'empty object');
  check({ only: undefined }, 'object whose members are all left out');
  check({ toJSON: () => [1, 2] }, 'top-level toJSON to an array');
});
