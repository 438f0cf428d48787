// analyzeRun() over the three input shapes: kml store, plain folder (seed style), single file.
// Snapshots are written from the real lab record layout with chosen addresses, tasks and times.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, SHARED_FIXTURES } from '../helpers/paths.js';
import { analyzeRun } from '../../host/analyze/index.js';
import { ANALYSIS_SCHEMA_VERSION, type AnalyzedRun, type LeakGroup } from '../../host/analyze/model.js';
import { KmlError, ExitCode } from '../../host/errors.js';
import { tempDirSync } from '../helpers/tmp.js';

const HZ = 1000;
const INIT = 4294967296 - 300 * HZ;
const BOOT = '3f0c9b8e-1d2a-4c3b-9e8f-0a1b2c3d4e5f';
const NOW = (): Date => new Date('2026-01-01T00:00:00Z');

interface Rec { addr: number; comm?: string; pid?: number; atS: number; size?: number; stack: string[] }

/** One record in the lab kernel's (6.1) format. */
function record(r: Rec): string {
  return [
    `unreferenced object 0x${(0xff11e87b40000000n + BigInt(r.addr)).toString(16)} (size ${r.size ?? 64}):`,
    `  comm "${r.comm ?? 'kworker/1:2'}", pid ${r.pid ?? 321}, jiffies ${INIT + Math.round(r.atS * HZ)}`,
    '  hex dump (first 32 bytes):',
    '    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................',
    '    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................',
    '  backtrace:',
    ...r.stack.map((f, i) => `    [<00000000${(0x1000 + i).toString(16).padStart(8, '0')}>] ${f}`),
  ].join('\n') + '\n';
}

const GROWING = ['kmalloc_trace+0x21/0x90', 'ion_buffer_create+0x44/0x120 [ion]', 'ion_alloc+0x88/0x1f0 [ion]', 'ion_ioctl+0x1c/0x30 [ion]', '__arm64_sys_ioctl+0xa8/0xe4'];
const ONESHOT = ['__kmalloc+0x11/0x90', 'wlan_cfg_parse+0x10/0x200 [wlan]', 'wlan_probe+0x50/0x300 [wlan]'];
const BOOTTIME = ['kmalloc_trace+0x21/0x90', 'dma_async_device_register+0x198/0x494', 'qbam_probe+0x170/0x230', 'platform_drv_probe+0x30/0x78'];
const LATE = ['kmem_cache_alloc+0x1/0x2', 'binder_new_node+0x40/0x1f0', 'binder_transaction+0x1b44/0x2f8c'];

function tmpdir(): string {
  return tempDirSync('kml-analyze-');
}
const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

/** Four snapshots 600 s apart: a growing group, a one-shot, a boot-time probe leak, a new one at the end. */
function snapshotTexts(): string[] {
  let a = 0;
  const s: string[] = ['', '', '', ''];
  s[0] += record({ addr: (a += 0x100), comm: 'swapper/0', pid: 1, atS: 7.5, stack: BOOTTIME });
  s[0] += record({ addr: (a += 0x100), comm: 'swapper/0', pid: 1, atS: 7.5, stack: BOOTTIME });
  for (let i = 0; i < 4; i++) {
    for (let k = 0; k <= i; k++) s[i] += record({ addr: (a += 0x100), atS: 100 + i * 600 + k, size: 128, stack: GROWING });
  }
  s[1] += record({ addr: (a += 0x100), comm: 'wlan_cfg', pid: 900, atS: 700, size: 512, stack: ONESHOT });
  s[1] += record({ addr: a, comm: 'wlan_cfg', pid: 900, atS: 700, size: 512, stack: ONESHOT }); // same object twice (seq_file re-read)
  s[3] += record({ addr: (a += 0x100), comm: 'Binder:500_2', pid: 777, atS: 2000, size: 96, stack: LATE });
  return s;
}

function writeStore(opts: { tamper?: boolean } = {}): string {
  const dir = path.join(tmpdir(), 'emulator-5554', '20260101T000000Z-abcd');
  const bootDir = path.join(dir, `boot-${BOOT}`);
  fs.mkdirSync(bootDir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'run.json'), JSON.stringify({
    schemaVersion: 1, runId: '20260101T000000Z-abcd', serial: 'emulator-5554', serialSafe: 'emulator-5554', kmlVersion: '0.1.0',
    started: '2026-01-01T00:00:00.000Z', intervalS: 600, scanProtocol: 'scan,sleep5,scan,cat,clear',
    device: { props: { 'ro.product.model': 'Lab' }, kernel: { release: '6.1.0-lab', cmdline: 'kmemleak=on', hz: HZ } },
    boots: [{ bootId: BOOT, firstSeen: '2026-01-01T00:00:00.000Z' }], sessions: [],
  }));
  const texts = snapshotTexts();
  const manifest: string[] = [];
  texts.forEach((text, i) => {
    const seq = i + 1;
    const rel = `boot-${BOOT}/kmemleak_log_${seq}.txt`;
    fs.writeFileSync(path.join(dir, rel), opts.tamper && seq === 2 ? text.replace('wlan_cfg"', 'wlan_cfX"') : text);
    fs.writeFileSync(path.join(bootDir, `meta_${seq}.json`), JSON.stringify({ schemaVersion: 1, seq, bootId: BOOT, uptimeS: 120 + i * 600, wallTime: 1767225600 + i * 600 }));
    fs.mkdirSync(path.join(bootDir, `mem_${seq}`));
    fs.writeFileSync(path.join(bootDir, `mem_${seq}`, 'meminfo.txt'), 'MemTotal: 1 kB\n');
    if (seq === 3) return; // stored, but the collector died before its manifest line
    manifest.push(JSON.stringify({
      schemaVersion: 1, serial: 'emulator-5554', bootId: BOOT, seq, wallTime: 1767225600 + i * 600, uptimeS: 120 + i * 600,
      files: [
        { name: 'kmemleak.txt', path: rel, bytes: Buffer.byteLength(text), sha256: sha(text) },
        { name: 'meta.txt', path: `boot-${BOOT}/meta_${seq}.json`, bytes: 1, sha256: '0'.repeat(64) },
        { name: 'meminfo.txt', path: `boot-${BOOT}/mem_${seq}/meminfo.txt`, bytes: 1, sha256: '0'.repeat(64) },
      ],
      pulledAt: '2026-01-01T00:00:00.000Z', digest: `d${seq}`, runId: '20260101T000000Z-abcd',
    }));
  });
  // A manifest line whose file is gone, and a torn last line (crash mid-append).
  manifest.push(JSON.stringify({
    schemaVersion: 1, serial: 'emulator-5554', bootId: BOOT, seq: 9, wallTime: 1767228000, uptimeS: 2520,
    files: [{ name: 'kmemleak.txt', path: `boot-${BOOT}/kmemleak_log_9.txt`, bytes: 10, sha256: '1'.repeat(64) }],
    pulledAt: '2026-01-01T00:00:00.000Z', digest: 'd9', runId: '20260101T000000Z-abcd',
  }));
  fs.writeFileSync(path.join(dir, 'manifest.jsonl'), manifest.join('\n') + '\n{"schemaVersion":1,"ser');
  // Half-written leftovers of a crashed pull / agent.
  fs.writeFileSync(path.join(bootDir, 'kmemleak_log_10.txt.part'), record({ addr: 1, atS: 1, stack: LATE }).slice(0, 50));
  fs.writeFileSync(path.join(dir, '.kml-tmp-123'), 'x');
  return dir;
}

const byTitle = (run: AnalyzedRun, title: string): LeakGroup | undefined =>
  [...run.groups, ...run.suppressed].find((g) => g.title === title);

test('store run: groups, statuses, slopes, suppressions and input accounting', async () => {
  const dir = writeStore();
  const run = await analyzeRun(dir, { now: NOW });
  assert.equal(run.schemaVersion, ANALYSIS_SCHEMA_VERSION);
  assert.equal(run.source.type, 'store');
  assert.equal(run.run.serial, 'emulator-5554');
  assert.equal(run.run.kernelVersion, '6.1.0-lab');
  assert.deepEqual(run.run.hz, { value: 1000, source: 'config' });
  assert.deepEqual(run.run.bootIds, [BOOT]);
  assert.equal(run.run.snapshotMode, 'cumulative');

  // Snapshots: 1..4 in order (3 found on disk only), 9 listed but missing.
  assert.deepEqual(run.snapshots.map((s) => [s.seq, s.status, s.inManifest]), [[1, 'ok', true], [2, 'ok', true], [3, 'ok', false], [4, 'ok', true], [9, 'missing', true]]);
  assert.deepEqual(run.snapshots.map((s) => s.t), [1767225600, 1767226200, 1767226800, 1767227400, 1767228000]);
  assert.equal(run.snapshots[2].wallTimeSource, 'meta');
  assert.equal(run.snapshots[0].files.mem.meminfo, `boot-${BOOT}/mem_1/meminfo.txt`);
  assert.equal(run.snapshots[1].duplicates, 1);
  assert.equal(run.inputStats.missingFiles.length, 1);
  assert.equal(run.inputStats.badManifestLines, 1);
  assert.deepEqual(run.inputStats.partialSkipped.sort(), ['.kml-tmp-123', `boot-${BOOT}/kmemleak_log_10.txt.part`]);
  assert.equal(run.parseStats.duplicateRecords, 1);
  assert.equal(run.parseStats.unparsedLines, 0);

  const growing = byTitle(run, 'memory leak in ion_buffer_create [ion]')!;
  assert.equal(growing.status, 'growing');
  assert.equal(growing.objects, 1 + 2 + 3 + 4);
  assert.equal(growing.bytes, 10 * 128);
  assert.deepEqual(growing.series.map((p) => [p.snapshot, p.newObjects, p.cumBytes]), [[0, 1, 128], [1, 2, 384], [2, 3, 768], [3, 4, 1280]]);
  assert.equal(growing.bytesPerHour, 2304); // least squares over (0,128) (1/6 h,384) (2/6 h,768) (3/6 h,1280)
  assert.equal(growing.module, 'ion');
  assert.equal(run.groups[0].fingerprint, growing.fingerprint); // ranked first by bytes/hour

  const oneShot = byTitle(run, 'memory leak in wlan_cfg_parse [wlan]')!;
  assert.equal(oneShot.status, 'one-shot');
  assert.equal(oneShot.objects, 1);
  assert.equal(oneShot.bootTime, false);
  assert.ok(run.groups.includes(oneShot));

  const late = byTitle(run, 'memory leak in binder_new_node')!;
  assert.equal(late.status, 'new');
  assert.deepEqual(late.allocUptimeS, { min: 2000, max: 2000 });

  // The seed's false positive: boot-time, one-shot → suppressed with its reason, still counted.
  const boot = run.suppressed.find((g) => g.title === 'memory leak in dma_async_device_register')!;
  assert.ok(boot);
  assert.equal(boot.suppression.ruleId, 'builtin:boot-time');
  assert.equal(boot.objects, 2);
  assert.equal(boot.bootTime, true);
  assert.deepEqual(run.suppressionsUsed.map((u) => [u.ruleId, u.groups, u.objects, u.bytes]), [['builtin:boot-time', 1, 2, 128]]);
  assert.equal(run.totals.objects, 10 + 1 + 1);
  assert.equal(run.totals.suppressedBytes, 128);
});

test('a snapshot whose content differs from the manifest hash is parsed and flagged', async () => {
  const run = await analyzeRun(writeStore({ tamper: true }), { now: NOW });
  assert.equal(run.snapshots[1].status, 'hash-mismatch');
  assert.equal(run.inputStats.hashMismatches, 1);
  assert.equal(run.snapshots[1].records, 3);
});

test('the analysis is deterministic (same input, same JSON)', async () => {
  const dir = writeStore();
  const a = await analyzeRun(dir, { now: NOW });
  const b = await analyzeRun(dir, { now: NOW });
  assert.equal(JSON.stringify(a), JSON.stringify(b));
});

test('--since leaves earlier snapshots out', async () => {
  const run = await analyzeRun(writeStore(), { now: NOW, sinceSeq: 3 });
  assert.deepEqual(run.snapshots.map((s) => s.seq), [3, 4, 9]);
  assert.equal(byTitle(run, 'memory leak in ion_buffer_create [ion]')!.objects, 7);
  assert.ok(run.assumptions.some((a) => a.includes('--since')));
});

test('plain folder of kmemleak_log_N.txt (seed style): numeric order, file times, empty files', async () => {
  const dir = tmpdir();
  const texts = snapshotTexts();
  const order = [0, 2, 10, 11];
  order.forEach((n, i) => {
    const f = path.join(dir, `kmemleak_log_${n}.txt`);
    fs.writeFileSync(f, texts[i]);
    fs.utimesSync(f, 1767225600 + i * 600, 1767225600 + i * 600);
  });
  fs.writeFileSync(path.join(dir, 'kmemleak_log_12.txt'), ''); // a cycle with no leaks
  fs.utimesSync(path.join(dir, 'kmemleak_log_12.txt'), 1767228000, 1767228000);
  fs.writeFileSync(path.join(dir, 'kmemleak_log_13.txt.tmp'), 'unreferenced');
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a snapshot');
  const run = await analyzeRun(dir, { now: NOW });
  assert.equal(run.source.type, 'folder');
  assert.deepEqual(run.snapshots.map((s) => s.seq), [0, 2, 10, 11, 12]);
  assert.deepEqual(run.snapshots.map((s) => s.wallTimeSource), ['mtime', 'mtime', 'mtime', 'mtime', 'mtime']);
  assert.equal(run.snapshots[4].status, 'empty');
  assert.deepEqual(run.inputStats.partialSkipped, ['kmemleak_log_13.txt.tmp']);
  assert.equal(run.inputStats.missingMeta, 5);
  assert.equal(run.run.hz.source, 'inferred'); // no config: only HZ=1000 fits the jiffies
  assert.equal(run.run.hz.value, 1000);
  assert.ok(run.assumptions.some((a) => a.includes('HZ')));
  const growing = byTitle(run, 'memory leak in ion_buffer_create [ion]')!;
  assert.equal(growing.objects, 10);
  assert.equal(growing.status, 'growing');
});

test('a copied folder (all file times within seconds) falls back to the interval, and says so', async () => {
  const dir = tmpdir();
  snapshotTexts().forEach((t, i) => {
    fs.writeFileSync(path.join(dir, `kmemleak_log_${i}.txt`), t);
    fs.utimesSync(path.join(dir, `kmemleak_log_${i}.txt`), 1767225600 + i * 0.01, 1767225600 + i * 0.01);
  });
  const run = await analyzeRun(dir, { now: NOW });
  assert.deepEqual(run.snapshots.map((s) => s.t), [0, 600, 1200, 1800]);
  assert.deepEqual(run.snapshots.map((s) => s.wallTimeSource), ['none', 'none', 'none', 'none']);
  assert.ok(run.assumptions.some((a) => a.includes('copied folder')));
  assert.ok(run.assumptions.some((a) => a.includes('600 s apart')));
  assert.equal(byTitle(run, 'memory leak in ion_buffer_create [ion]')!.bytesPerHour, 2304);
});

test('single file: the seed sample is one boot-time group, suppressed with a reason', async () => {
  const run = await analyzeRun(path.join(SHARED_FIXTURES, 'kmemleak', 'seed-arm32-vendor-4.19.txt'), { now: NOW });
  assert.equal(run.source.type, 'file');
  assert.equal(run.snapshots.length, 1);
  assert.equal(run.groups.length, 0);
  assert.equal(run.suppressed.length, 1);
  assert.equal(run.suppressed[0].title, 'memory leak in dma_async_device_register');
  assert.equal(run.suppressed[0].objects, 2);
  assert.equal(run.run.pointerBits, 32);
  assert.equal(run.snapshots[0].files.kmemleak, 'seed-arm32-vendor-4.19.txt');
  // Without built-ins it is shown as a new leak.
  const raw = await analyzeRun(path.join(SHARED_FIXTURES, 'kmemleak', 'seed-arm32-vendor-4.19.txt'), { now: NOW, builtinSuppressions: false });
  assert.equal(raw.groups.length, 1);
  assert.equal(raw.groups[0].status, 'new');
});

test('every golden era analyses without errors', async () => {
  const dir = path.join(FIXTURES, 'kmemleak');
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.txt'))) {
    const run = await analyzeRun(path.join(dir, f), { now: NOW });
    assert.ok(run.groups.length + run.suppressed.length > 0, f);
    assert.equal(run.parseStats.records, run.totals.objects + run.totals.suppressedObjects + run.parseStats.duplicateRecords, f);
  }
});

test('no clear between reads: re-printed objects are not counted twice; vanished ones are transient', async () => {
  const dir = tmpdir();
  const keep = record({ addr: 0x100, atS: 500, stack: GROWING });
  const transient = record({ addr: 0x900, atS: 1000, stack: LATE });
  const texts = [keep, keep + transient, keep + record({ addr: 0x200, atS: 1500, stack: GROWING }), keep + record({ addr: 0x200, atS: 1500, stack: GROWING })];
  texts.forEach((t, i) => {
    fs.writeFileSync(path.join(dir, `kmemleak_log_${i}.txt`), t);
    fs.utimesSync(path.join(dir, `kmemleak_log_${i}.txt`), 1767225600 + i * 600, 1767225600 + i * 600);
  });
  const run = await analyzeRun(dir, { now: NOW });
  assert.equal(run.run.snapshotMode, 'persistent');
  const g = byTitle(run, 'memory leak in ion_buffer_create [ion]')!;
  assert.equal(g.objects, 2);
  assert.deepEqual(g.series.map((p) => [p.objects, p.newObjects]), [[1, 1], [1, 0], [2, 1], [2, 0]]);
  const t = run.suppressed.find((x) => x.title === 'memory leak in binder_new_node')!;
  assert.equal(t.suppression.ruleId, 'builtin:transient');
  assert.equal(t.tags.vanished, 1);
});

test('user suppression file: frames globs, comm, size; reason required; bad files are usage errors', async () => {
  const dir = writeStore();
  const sup = path.join(tmpdir(), 'sup.json');
  fs.writeFileSync(sup, JSON.stringify({
    schemaVersion: 1,
    suppressions: [{ id: 'wlan-cfg', reason: 'config blob kept for the life of the driver', frames: ['wlan_*'], comm: 'wlan*', size: { min: 256 } }],
  }));
  const run = await analyzeRun(dir, { now: NOW, suppressFile: sup });
  const s = run.suppressed.find((g) => g.title === 'memory leak in wlan_cfg_parse [wlan]')!;
  assert.equal(s.suppression.ruleId, 'user:wlan-cfg');
  assert.equal(s.suppression.origin, 'user');
  assert.equal(s.suppression.reason, 'config blob kept for the life of the driver');
  assert.ok(run.suppressionsUsed.some((u) => u.ruleId === 'user:wlan-cfg' && u.objects === 1 && u.bytes === 512));
  assert.ok(!run.groups.some((g) => g.title === s.title));

  const bad = async (doc: string, re: RegExp): Promise<void> => {
    fs.writeFileSync(sup, doc);
    await assert.rejects(analyzeRun(dir, { suppressFile: sup }), (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.USAGE && re.test(e.message));
  };
  await bad('{ not json', /not valid JSON/);
  await bad(JSON.stringify({ suppressions: [{ frames: ['x'] }] }), /"reason" is required/);
  await bad(JSON.stringify({ suppressions: [{ reason: 'r' }] }), /at least one matcher/);
  await bad(JSON.stringify({ suppressions: [{ reason: 'r', frame: ['x'] }] }), /unknown key "frame"/);
  await bad(JSON.stringify({ schemaVersion: 7, suppressions: [] }), /schemaVersion/);
  await assert.rejects(analyzeRun(dir, { suppressFile: path.join(dir, 'nope.json') }), (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.IO);
});

test('a group rule never hides a growing group', async () => {
  const dir = writeStore();
  const sup = path.join(tmpdir(), 'sup.json');
  fs.writeFileSync(sup, JSON.stringify({ suppressions: [{ reason: 'ion is fine', module: 'ion', unlessGrowing: true }, { reason: 'binder too', frames: ['binder_*'], unlessGrowing: true }] }));
  const run = await analyzeRun(dir, { now: NOW, suppressFile: sup });
  assert.ok(run.groups.some((g) => g.module === 'ion' && g.status === 'growing'));
  assert.ok(run.suppressed.some((g) => g.title === 'memory leak in binder_new_node' && g.suppression.ruleId === 'user:2'));
});

test('nothing to analyse is an input error (5) with a hint; a serial folder asks for one run', async () => {
  const empty = tmpdir();
  await assert.rejects(analyzeRun(empty), (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.IO && !!e.hint);
  const store = writeStore();
  await assert.rejects(analyzeRun(path.dirname(store)), (e: unknown) => e instanceof KmlError && /holds 1 runs/.test(e.message));
  await assert.rejects(analyzeRun(path.join(empty, 'missing')), (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.IO);
  await assert.rejects(analyzeRun(empty, { framesInKey: 0 }), (e: unknown) => e instanceof KmlError && e.exitCode === ExitCode.USAGE);
});

test('an empty store (nothing pulled yet) gives an empty analysis, not an error', async () => {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, 'run.json'), '{"schemaVersion":1,"serial":"x"}');
  const run = await analyzeRun(dir, { now: NOW });
  assert.equal(run.snapshots.length, 0);
  assert.equal(run.groups.length, 0);
  assert.equal(run.inputStats.runJson, 'ok');
});

test('bad input inside a store: garbage, a 10 MB line, an empty file: the report still comes out with counts', async () => {
  const dir = writeStore();
  const boot = path.join(dir, `boot-${BOOT}`);
  fs.appendFileSync(path.join(boot, 'kmemleak_log_4.txt'), Buffer.concat([Buffer.from([0, 1, 2, 255, 254, 10]), Buffer.alloc(10 * 1024 * 1024, 0x41), Buffer.from('\n')]));
  fs.writeFileSync(path.join(boot, 'kmemleak_log_5.txt'), '');
  const lab = fs.readFileSync(path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-insmod.txt'));
  fs.writeFileSync(path.join(boot, 'kmemleak_log_6.txt'), lab.subarray(0, 1000)); // half-written, not in the manifest
  const run = await analyzeRun(dir, { now: NOW });
  assert.equal(run.parseStats.overlongLines, 1);
  assert.ok(run.parseStats.unparsedLines >= 2);
  assert.ok(run.parseStats.truncatedRecords >= 1);
  assert.equal(run.snapshots.find((s) => s.seq === 5)!.status, 'empty');
  assert.equal(run.snapshots.find((s) => s.seq === 4)!.status, 'hash-mismatch');
  assert.ok(byTitle(run, 'memory leak in ion_buffer_create [ion]'));
});

test('a snapshot of several read chunks is hashed across them: intact is ok, a changed last chunk is a mismatch', async () => {
  for (const tamperBig of [false, true]) {
    const dir = writeStore();
    const rel = `boot-${BOOT}/kmemleak_log_1.txt`;
    const small = fs.readFileSync(path.join(dir, rel), 'utf8');
    let big = '';
    while (Buffer.byteLength(big) <= 5 << 20) big += small;
    const lines = fs.readFileSync(path.join(dir, 'manifest.jsonl'), 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes(`"seq":1,`));
    const entry = JSON.parse(lines[i]);
    entry.files[0].bytes = Buffer.byteLength(big);
    entry.files[0].sha256 = sha(big);
    lines[i] = JSON.stringify(entry);
    fs.writeFileSync(path.join(dir, 'manifest.jsonl'), lines.join('\n'));
    fs.writeFileSync(path.join(dir, rel), tamperBig ? big.slice(0, -10) + 'X'.repeat(10) : big);
    const run = await analyzeRun(dir, { now: NOW });
    const s1 = run.snapshots.find((s) => s.seq === 1)!;
    assert.equal(s1.bytes, Buffer.byteLength(big));
    assert.equal(s1.status, tamperBig ? 'hash-mismatch' : 'ok', `big snapshot, tampered: ${tamperBig}`);
    assert.equal(run.snapshots.find((s) => s.seq === 2)!.status, 'ok', 'the small snapshot beside it');
  }
});

test('a group rule with conditions on the object (comm, size) hides a group only when its records meet them', async () => {
  const dir = writeStore();
  const sup = path.join(tmpdir(), 'sup.json');
  // The binder group's one record: comm "Binder:500_2", 96 bytes. Rules 1 and 2 match its stack but not the object.
  fs.writeFileSync(sup, JSON.stringify({ suppressions: [
    { reason: 'not this task', frames: ['binder_*'], comm: 'system_server', unlessGrowing: true },
    { reason: 'not this size', frames: ['binder_*'], size: { min: 100 }, unlessGrowing: true },
    { reason: 'binder threads', frames: ['binder_*'], comm: 'Binder:*', size: { max: 96 }, unlessGrowing: true },
  ] }));
  const run = await analyzeRun(dir, { now: NOW, suppressFile: sup });
  const g = run.suppressed.find((x) => x.title === 'memory leak in binder_new_node');
  assert.equal(g?.suppression.ruleId, 'user:3');
  assert.ok(!run.suppressionsUsed.some((u) => u.ruleId === 'user:1' || u.ruleId === 'user:2'));
});
