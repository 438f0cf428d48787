// Memory series and the verdict table, from real lab captures with controlled changes:
// each scenario rewrites a few fields per sample and checks the row the numbers should trigger.
import test from 'node:test';
import assert from 'node:assert/strict';
import { analyzeMemory, fitLine, chooseBasis } from '../../host/analyze/memory.js';
import { computeVerdict, kmemleakGrowthOf, type KmemleakGrowth } from '../../host/analyze/verdict.js';
import { LAB, labSeries, setMeminfo, setVmstat, setBuddy, setSlab, T0, analyzedRun, group } from './report-helpers.js';

const NO_LEAKS: KmemleakGrowth = { snapshots: 8, groups: 0, growingGroups: 0, bytesPerHour: 0, ratesKnown: false, bytes: 0, topTitle: null };
const row = (v: ReturnType<typeof computeVerdict>, id: string) => v.rows.find((r) => r.id === id)!;
const ev = (r: { evidence: Array<{ name: string; value: number | null }> }, name: string) => r.evidence.find((e) => e.name === name)?.value;

test('fitLine: slope per hour and R²', () => {
  const f = fitLine([{ t: 0, v: 10 }, { t: 3600, v: 12 }, { t: 7200, v: 14 }])!;
  assert.equal(f.slopePerHour, 2);
  assert.equal(f.r2, 1);
  assert.equal(f.hours, 2);
  assert.equal(fitLine([{ t: 5, v: 1 }]), null);
  assert.equal(fitLine([{ t: 5, v: 1 }, { t: 5, v: 2 }]), null);
});

test('memory series from real lab captures: page size inferred, per-zone data joined', () => {
  const mem = analyzeMemory(labSeries(3, () => {}), 4);
  assert.equal(mem.samples.length, 3);
  assert.equal(mem.snapshotsWithoutSample, 1);
  assert.equal(mem.pageSizeKb, 4);
  assert.equal(mem.pageSizeSource, 'inferred');
  const s = mem.samples[0];
  assert.equal(s.meminfo!.sUnreclaimKb, 13720);
  assert.equal(s.meminfo!.anonLruKb, 2620 + 424);
  assert.equal(s.vmstat!.nrSlabUnreclaimable, 3430);
  const dma = s.zones.find((z) => z.zone === 'DMA')!;
  assert.deepEqual([dma.freePages, dma.minPages, dma.lowPages, dma.highPages], [3840, 22, 27, 32]);
  assert.deepEqual(dma.freeBlocks, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3]);
  const dma32 = s.zones.find((z) => z.zone === 'DMA32')!;
  assert.equal(dma32.freePages, 5 + 10 + 16 + 32 + 48 + 160 + 320 + 512 + 256 + 1024 + 103 * 1024, 'from buddyinfo when zoneinfo lacks the zone');
  // Each capture ends with the capture tool's "[section rc=0]" line: counted, not fatal.
  assert.equal(mem.fileStats['meminfo'].unparsedLines, 3);
  assert.ok(mem.unparsedSamples.some((u) => u.text === '[section rc=0]'));
  assert.equal(mem.slabGrowth.length > 0, true);
});

test('kernel slab leak: SUnreclaim +2 MB/h and kmemleak growth agree → yes, with the numbers', () => {
  const inputs = labSeries(8, (k, t) => {
    t.meminfo = setMeminfo(LAB.meminfo, { SUnreclaim: 13720 + 2048 * k, Slab: 19276 + 2048 * k, MemFree: 446780 - 2048 * k });
    t.vmstat = setVmstat(LAB.vmstat, { nr_slab_unreclaimable: 3430 + 512 * k, nr_free_pages: 111695 - 512 * k });
    t.slabinfo = setSlab(LAB.slabinfo, 'scsi_sense_cache', 288 + 16384 * k);
  });
  const mem = analyzeMemory(inputs, 8);
  assert.equal(mem.slabGrowth[0].name, 'scsi_sense_cache');
  assert.equal(mem.slabGrowth[0].bytesPerHour, 16384 * 128);
  assert.equal(mem.slabGrowth[0].deltaBytes, 7 * 16384 * 128);
  const leaks: KmemleakGrowth = { snapshots: 8, groups: 3, growingGroups: 2, bytesPerHour: 400_000, ratesKnown: true, bytes: 2_800_000, topTitle: 'memory leak in foo_probe' };
  const v = computeVerdict(mem, leaks);
  assert.equal(v.conclusion, 'kernel-slab-leak');
  assert.equal(v.finding, 'yes');
  const r = row(v, 'kernel-slab-leak');
  assert.equal(ev(r, 'SUnreclaim slope'), 2048);
  assert.equal(ev(r, 'SUnreclaim first'), 13720);
  assert.equal(ev(r, 'SUnreclaim last'), 13720 + 7 * 2048);
  assert.equal(ev(r, 'kmemleak growing groups'), 2);
  assert.equal(ev(r, 'top slab cache scsi_sense_cache'), 16384 * 128);
  assert.equal(ev(r, 'slab growth kmemleak explains'), 19.1); // 390.6 kB/h of 2048 kB/h
  assert.match(v.summary, /SUnreclaim \+14 MB over 7 h \(\+2 MB\/h, R² 1\)/);
  assert.match(v.summary, /foo_probe/);
  assert.equal(row(v, 'page-level-leak').finding, 'no', 'the fall in free memory is explained by slab');
  assert.equal(row(v, 'no-leak-evident').finding, 'no');
  assert.equal(v.basis.samples, 8);
  assert.equal(v.basis.hours, 7);
});

test('slab rises but kmemleak sees nothing → possible (referenced growth), not yes', () => {
  const inputs = labSeries(6, (k, t) => {
    t.meminfo = setMeminfo(LAB.meminfo, { SUnreclaim: 13720 + 4096 * k, Slab: 19276 + 4096 * k, MemFree: 446780 - 4096 * k });
  });
  const v = computeVerdict(analyzeMemory(inputs, 6), NO_LEAKS);
  assert.equal(v.conclusion, 'kernel-slab-leak');
  assert.equal(v.finding, 'possible');
  assert.match(row(v, 'kernel-slab-leak').explanation, /still referenced/);
});

test('a noisy, small slab wobble is not a leak (R² and size thresholds)', () => {
  const wobble = [0, 900, -300, 700, 100, 500, -200, 800];
  const inputs = labSeries(8, (k, t) => { t.meminfo = setMeminfo(LAB.meminfo, { SUnreclaim: 13720 + wobble[k] }); });
  const v = computeVerdict(analyzeMemory(inputs, 8), NO_LEAKS);
  assert.equal(row(v, 'kernel-slab-leak').finding, 'no');
  assert.equal(v.conclusion, 'no-leak-evident');
});

test('page-level leak: MemFree falls 8 MB/h, slab and anon flat, unaccounted memory rises → yes', () => {
  const inputs = labSeries(8, (k, t) => { t.meminfo = setMeminfo(LAB.meminfo, { MemFree: 446780 - 8192 * k, MemAvailable: 443608 - 8192 * k }); });
  const v = computeVerdict(analyzeMemory(inputs, 8), NO_LEAKS);
  assert.equal(v.conclusion, 'page-level-leak');
  assert.equal(v.finding, 'yes');
  const r = row(v, 'page-level-leak');
  assert.equal(ev(r, 'MemFree + file LRU slope'), -8192);
  assert.equal(ev(r, 'unaccounted slope'), 8192);
  assert.match(r.explanation, /page_owner/);
  assert.equal(row(v, 'kernel-slab-leak').finding, 'no');
});

test('user-space overuse: anon dominates and drops after LMK kills → yes', () => {
  const kills = new Set([4, 7]);
  let killed = 0;
  const inputs = labSeries(8, (k, t) => {
    if (kills.has(k)) killed++;
    const extra = 20480 * k - 61440 * killed;
    t.meminfo = setMeminfo(LAB.meminfo, { 'Active(anon)': 2620 + extra, AnonPages: 196 + extra, MemFree: 446780 - extra });
    if (kills.has(k)) {
      t.kmsg = `11-26 23:02:01.123   512   512 I lowmemorykiller: Kill 'com.example.app${k}' (43${k}2), uid 10123, oom_adj 900 to free 61440kB rss, 0kB swap; reason: min watermark is breached even after kill\n`;
    }
  });
  const mem = analyzeMemory(inputs, 8);
  assert.equal(mem.events.length, 2);
  assert.deepEqual(mem.events.map((e) => [e.kind, e.snapshot, e.freedKb]), [['lmk-kill', 4, 61440], ['lmk-kill', 7, 61440]]);
  assert.equal(mem.events[0].t, T0 + 4 * 3600, 'logcat lines have no uptime: the sample time is used');
  const v = computeVerdict(mem, NO_LEAKS);
  assert.equal(v.conclusion, 'userspace-overuse');
  const r = row(v, 'userspace-overuse');
  assert.equal(r.finding, 'yes');
  assert.equal(ev(r, 'LMK / OOM kills'), 2);
  assert.equal(ev(r, 'samples after a kill where anon dropped'), 2);
  assert.ok((ev(r, 'anon share of used memory (at lowest free)') as number) > 50);
});

test('a memory-cgroup OOM kill is not a system kill (real 6.18 capture)', async () => {
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { FIXTURES } = await import('../helpers/paths.js');
  const oom = readFileSync(join(FIXTURES, 'memstate', 'dmesg-memcg-oom-6.18.txt'), 'utf8');
  const inputs = labSeries(4, (k, t) => { if (k === 2) t.kmsg = oom; });
  inputs[2].uptimeS = 300;
  const mem = analyzeMemory(inputs, 4);
  const kill = mem.events.find((e) => e.kind === 'oom-kill')!;
  assert.equal(kill.memcg, true);
  assert.equal(kill.t, T0 + 2 * 3600 - (300 - kill.uptimeS!), 'placed on the timeline by its uptime');
  const v = computeVerdict(mem, NO_LEAKS);
  assert.equal(ev(row(v, 'userspace-overuse'), 'LMK / OOM kills'), 0);
  assert.equal(ev(row(v, 'userspace-overuse'), 'memory-cgroup OOM kills (not counted)'), 1);
});

test('fragmentation: plenty free but no blocks of order ≥4 → yes, failures counted', () => {
  const inputs = labSeries(4, (k, t) => {
    t.buddyinfo = setBuddy(LAB.buddyinfo, 'DMA32', [20000, 15000, 8000, 10, 0, 0, 0, 0, 0, 0, 0]);
    if (k === 3) t.kmsg = '[ 5000.1] kworker/u16:1: page allocation failure: order:4, mode:0x40cc0(GFP_KERNEL|__GFP_COMP), nodemask=(null)\n';
  });
  const v = computeVerdict(analyzeMemory(inputs, 4), NO_LEAKS);
  assert.equal(v.conclusion, 'fragmentation');
  const r = row(v, 'fragmentation');
  assert.equal(r.finding, 'yes');
  assert.equal(ev(r, 'zone DMA32: free pages in order ≥4'), 0);
  assert.equal(ev(r, 'zone DMA32: highest order with a free block'), 3);
  assert.equal(ev(r, 'allocation failures order>0'), 1);
});

test('real captures unchanged over 6 h → no leak evident', () => {
  const v = computeVerdict(analyzeMemory(labSeries(6, () => {}), 6), NO_LEAKS);
  assert.equal(v.conclusion, 'no-leak-evident');
  assert.equal(v.finding, 'yes');
  assert.deepEqual(v.rows.map((r) => r.finding), ['no', 'no', 'no', 'no', 'yes']);
  assert.equal(v.rows.length, 5);
});

test('no memory samples: kmemleak growth alone is "possible"; nothing at all is insufficient-data', () => {
  const run = analyzedRun([group('memory leak in foo_probe', 'aaaaaaaaaaaa', 64, [1, 2, 3, 4])], 4);
  const v = computeVerdict(null, kmemleakGrowthOf(run));
  assert.equal(v.conclusion, 'kernel-slab-leak');
  assert.equal(v.finding, 'possible');
  assert.match(v.summary, /no SUnreclaim samples/);
  const none = computeVerdict(null, { ...NO_LEAKS, snapshots: 1 });
  assert.equal(none.conclusion, 'insufficient-data');
  assert.equal(none.finding, 'no-data');
});

test('a reboot: slopes use the boot with most samples, and say so', () => {
  const a = labSeries(2, (k, t) => { t.meminfo = setMeminfo(LAB.meminfo, { SUnreclaim: 90000 }); }, { bootId: 'aaaa' });
  const b = labSeries(5, (k, t) => { t.meminfo = setMeminfo(LAB.meminfo, { SUnreclaim: 13720 + 2048 * k, Slab: 19276 + 2048 * k }); }, { bootId: 'bbbb' })
    .map((s, i) => ({ ...s, snapshot: i + 2, t: T0 + (i + 2) * 3600 }));
  const mem = analyzeMemory([...a, ...b], 7);
  const basis = chooseBasis(mem.samples);
  assert.equal(basis.bootId, 'bbbb');
  assert.equal(basis.otherBoots, 1);
  const v = computeVerdict(mem, NO_LEAKS);
  assert.equal(v.basis.bootId, 'bbbb');
  assert.equal(v.basis.firstSnapshot, 2);
  assert.equal(ev(row(v, 'kernel-slab-leak'), 'SUnreclaim slope'), 2048);
  assert.ok(v.notes.some((n) => /2 boots/.test(n)));
});

test('half-missing samples: files absent in some snapshots are tolerated', () => {
  const inputs = labSeries(5, (k, t) => {
    if (k % 2) { delete t.buddyinfo; delete t.slabinfo; }
    if (k === 4) t.meminfo = '\u0000\u0001garbage\ufffd\n';
  });
  const mem = analyzeMemory(inputs, 5);
  assert.equal(mem.samples.length, 5);
  assert.equal(mem.samples[4].meminfo, null);
  assert.equal(mem.fileStats['meminfo'].unparsedLines, 4 + 1);
  assert.equal(mem.fileStats['buddyinfo'].samples, 3);
  const v = computeVerdict(mem, NO_LEAKS);
  assert.equal(v.basis.samples, 5);
  assert.notEqual(v.conclusion, 'insufficient-data');
});

test('snapshot times from mtimes of files copied together: kmemleak rates are treated as unknown', () => {
  const run = analyzedRun([group('memory leak in binder_alloc_new_buf', 'faa1ba287da9', 192, [0, 5, 10, 15])], 4);
  run.snapshots.forEach((s, i) => { s.wallTimeSource = 'mtime'; s.t = T0 + i * 0.002; s.wallTime = s.t; });
  run.groups[0].bytesPerHour = 3.6e9; // what a slope over milliseconds gives
  const g = kmemleakGrowthOf(run);
  assert.equal(g.ratesKnown, false);
  assert.equal(g.bytesPerHour, 0);
  const v = computeVerdict(null, g);
  assert.equal(v.conclusion, 'kernel-slab-leak');
  assert.equal(v.finding, 'possible');
  assert.match(v.summary, /rate unknown/);
  // Real mtimes an interval apart are kept.
  run.snapshots.forEach((s, i) => { s.t = T0 + i * 600; });
  assert.equal(kmemleakGrowthOf(run).ratesKnown, true);
});
