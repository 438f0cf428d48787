// `kml report` / `kml diff` as users run them (node bin/kml.js), on the fixture runs: a kml store,
// a seed-style folder, one file, an empty folder, binary garbage, a half-written store.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIXTURES, KML_BIN, SHARED_FIXTURES } from '../helpers/paths.js';

const RUNS = path.join(FIXTURES, 'runs');
const STORE = path.join(RUNS, 'store-slab-leak', '127.0.0.1_5555', '20251124T160000Z-ab12');
const HALF = path.join(RUNS, 'store-half-written', '127.0.0.1_5555', '20251124T160000Z-cd34');
const SEED = path.join(RUNS, 'seed-folder');
const T = { timeout: 60_000 };

function kml(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [KML_BIN, ...args], { encoding: 'utf8', timeout: 50_000, env: { ...process.env, KML_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'kml-report-cli-'));
}

test('store run dir: text report with groups, suppressions and the memory verdict', T, () => {
  const r = kml('report', STORE);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /kml report — 127\.0\.0\.1:5555 20251124T160000Z-ab12/);
  assert.match(r.out, /memory leak in kml_leak_work \[kml_leaky\]\s+[0-9a-f]{12}\s+202\s+25\.3 kB\s+\+40\s/);
  assert.match(r.out, /Suppressions used:/);
  assert.match(r.out, /builtin:boot-time/);
  assert.match(r.out, /yes\s+Kernel slab leak/);
  assert.match(r.out, /scsi_sense_cache/);
  assert.match(r.out, /lmk-kill\s+com\.example\.game \(2613\)/);
  assert.equal(r.err, '');
});

test('store: every format, --out written atomically, JSON re-rendered', T, () => {
  const dir = tmp();
  for (const f of ['json', 'html', 'junit', 'md', 'text']) {
    const out = path.join(dir, `r.${f}`);
    const r = kml('report', STORE, '--format', f, '--out', out);
    assert.equal(r.code, 0, `${f}: ${r.err}`);
    assert.equal(r.out, '', 'nothing on stdout with --out');
    assert.ok(fs.statSync(out).size > 300, f);
  }
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes('.tmp')), [], 'no temp file left behind');
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8'));
  assert.equal(json.schemaVersion, 1);
  assert.equal(json.kind, 'kml-analysis');
  assert.equal(json.memory.kind, 'kml-memory');
  assert.equal(json.memory.samples.length, 6);
  assert.equal(json.verdict.conclusion, 'kernel-slab-leak');
  assert.match(fs.readFileSync(path.join(dir, 'r.junit'), 'utf8'), /<testsuites name="kml" tests="2" failures="2"/);
  const again = kml('report', path.join(dir, 'r.json'), '--format', 'text');
  assert.equal(again.code, 0, again.err);
  assert.equal(again.out.replace(/\r/g, ''), fs.readFileSync(path.join(dir, 'r.text'), 'utf8'), 'the JSON is the source of truth');
  assert.equal(kml('report', path.join(dir, 'r.json'), '--since', '3').code, 2, 'a saved analysis cannot be re-filtered');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('--fail-on: exit 1 with the report still written; 0 when nothing matches', T, () => {
  const growing = kml('report', STORE, '--fail-on', 'growing', '--format', 'junit');
  assert.equal(growing.code, 1);
  assert.match(growing.out, /<testsuites/);
  assert.match(growing.err, /--fail-on growing: 2 leak group\(s\) matched/);
  const neu = kml('report', STORE, '--fail-on', 'new');
  assert.equal(neu.code, 1);
  assert.match(neu.err, /--fail-on new: 1 leak group/);
  // Up to snapshot 3 nothing is new in the last snapshot read (--since keeps 1..6; use the half store: 1..3).
  const half = kml('report', HALF, '--fail-on', 'new');
  assert.equal(half.code, 0, half.err);
});

test('--since and --top', T, () => {
  const since = kml('report', STORE, '--since', '4', '--format', 'json');
  assert.equal(since.code, 0, since.err);
  const j = JSON.parse(since.out);
  assert.deepEqual(j.snapshots.map((s: { seq: number }) => s.seq), [4, 5, 6]);
  assert.equal(j.options.sinceSeq, 4);
  assert.equal(j.memory.samples.length, 3);
  const top = kml('report', STORE, '--top', '1');
  assert.match(top.out, /Omitting 2 more group\(s\)/);
});

test('seed-style folder of kmemleak_log_N.txt (ARM32 4.19 format)', T, () => {
  const r = kml('report', SEED, '--format', 'json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.source.type, 'folder');
  assert.equal(j.snapshots.length, 4);
  assert.equal(j.groups[0].title, 'memory leak in binder_alloc_new_buf');
  assert.equal(j.groups[0].objects, 30);
  assert.equal(j.suppressed.length, 1, "the seed's qbam_probe boot-time records are suppressed, not dropped");
  assert.equal(j.memory.samples.length, 0);
  assert.equal(j.verdict.rows.find((x: { id: string }) => x.id === 'page-level-leak').finding, 'no-data');
});

test('a single kmemleak file', T, () => {
  const r = kml('report', path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-insmod.txt'));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /1 snapshot/);
  // The lab module was loaded 3 s after boot: all 10 objects fall in the boot window, and are
  // shown as suppressed (never dropped).
  assert.match(r.out, /Suppressions used:\n.*\n\s+10\s+25664\s+10\s+builtin:boot-time/);
});

test('empty folder: exit 5 with a clear message, no stack trace', T, () => {
  const dir = tmp();
  const r = kml('report', dir);
  assert.equal(r.code, 5);
  assert.match(r.err, /^kml: error: no kmemleak snapshots (found )?in /m);
  assert.match(r.err, /kml: hint: /);
  assert.doesNotMatch(r.err, /\bat .*\.js:\d+/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('missing path: exit 5; unreadable --suppress: exit 5; bad options: exit 2', T, () => {
  const missing = kml('report', path.join(os.tmpdir(), 'kml-no-such-run-dir'));
  assert.equal(missing.code, 5);
  assert.match(missing.err, /no such file or directory/);
  assert.equal(kml('report', STORE, '--suppress', '/nonexistent/s.json').code, 5);
  assert.equal(kml('report', STORE, '--format', 'pdf').code, 2);
  assert.equal(kml('report', STORE, '--top', '0').code, 2);
  assert.equal(kml('report', STORE, '--since', 'x').code, 2);
  assert.equal(kml('report').code, 2);
  const bad = kml('report', STORE, '--out', '/nonexistent-dir/r.txt');
  assert.equal(bad.code, 5);
  assert.match(bad.err, /cannot write/);
});

test('binary garbage: a report with the unparsed count, exit 0', T, () => {
  const r = kml('report', path.join(RUNS, 'garbage-kmemleak_log_1.txt'));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Leak groups: 0/);
  assert.match(r.out, /\d+ kmemleak line\(s\) not understood/);
});

test('half-written store: the complete snapshots are reported, the partial one is counted', T, () => {
  const r = kml('report', HALF, '--format', 'json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.deepEqual(j.snapshots.map((s: { seq: number }) => s.seq), [1, 2, 3]);
  assert.ok(j.inputStats.partialSkipped.some((p: string) => p.includes('.kml-tmp-kmemleak_log_4.txt')));
  assert.equal(j.inputStats.badManifestLines, 1);
  const text = kml('report', HALF);
  assert.match(text.out, /1 half-written snapshot\(s\) skipped/);
});

test('a saved analysis with an unknown schemaVersion is refused (exit 5)', T, () => {
  const dir = tmp();
  const file = path.join(dir, 'future.json');
  fs.writeFileSync(file, JSON.stringify({ kind: 'kml-analysis', schemaVersion: 99, groups: [], snapshots: [] }));
  const r = kml('report', file);
  assert.equal(r.code, 5);
  assert.match(r.err, /schemaVersion 99 is not supported/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('kml diff: baseline vs candidate, lkp style; --fail-on new', T, () => {
  const r = kml('diff', HALF, STORE);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /baseline\s+127\.0\.0\.1:5555 20251124T160000Z-cd34/);
  assert.match(r.out, /1 new, \d+ grown, 0 gone/);
  assert.match(r.out, /new\s+.*memory leak in sock_alloc_ctx/);
  const fail = kml('diff', HALF, STORE, '--fail-on', 'new', '--format', 'json');
  assert.equal(fail.code, 1);
  assert.equal(JSON.parse(fail.out).counts.new, 1);
  assert.equal(kml('diff', STORE).code, 2);
});

test('--help documents examples and exit codes', T, () => {
  const r = kml('report', '--help');
  assert.equal(r.code, 0);
  assert.match(r.out, /Examples:/);
  assert.match(r.out, /Exit codes: 0 report written, 1 --fail-on matched/);
  assert.match(kml('diff', '--help').out, /Exit codes:/);
});

test('--timings: one JSON line on stderr with the phases, the report unchanged on stdout', T, () => {
  const plain = kml('report', STORE, '--format', 'json');
  const timed = kml('report', STORE, '--format', 'json', '--timings');
  assert.equal(timed.code, 0, timed.err);
  const strip = (t: string): string => t.replace(/"generatedAt": "[^"]*"/, '');
  assert.equal(strip(timed.out), strip(plain.out), 'same report');
  const lines = timed.err.trim().split('\n');
  assert.equal(lines.length, 1, timed.err);
  const t = JSON.parse(lines[0]) as { timings: Record<string, number>; bytes: number; records: number };
  for (const k of ['start', 'parseAndGroup', 'memoryAndVerdict', 'renderAndWrite', 'total', 'cpu', 'peakRssMb']) {
    assert.ok(typeof t.timings[k] === 'number' && t.timings[k] >= 0, `${k}: ${t.timings[k]}`);
  }
  assert.ok(t.timings.total >= t.timings.parseAndGroup);
  assert.equal(t.records, JSON.parse(plain.out).parseStats.records);
  assert.ok(t.bytes > 1000);
  assert.equal(plain.err, '', 'nothing on stderr without --timings');
});
