// /proc parsers against real captures: the lab kernel's heads (test/fixtures/shared/proc) and
// complete files from a 6.18 host (test/fixtures/memstate/host-6.18).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, SHARED_FIXTURES } from '../helpers/paths.js';
import {
  parseMeminfo, reclaimableKb, fileLruKb, unaccountedKb,
  parseVmstat, slabUnreclaimablePages,
  parseBuddyinfo, freePagesOf, freePagesAtOrAbove, highestFreeOrder,
  parseZoneinfo, zoneReclaimablePages, populatedZones,
  parseSlabinfo, activeBytes, slabBytes,
  parsePagetypeinfo, splitLines,
} from '../../host/memstate/index.js';

const lab = (f: string) => fs.readFileSync(path.join(SHARED_FIXTURES, 'proc', f), 'utf8');
const host = (f: string) => fs.readFileSync(path.join(FIXTURES, 'memstate', 'host-6.18', `${f}.txt`), 'utf8');

test('splitLines handles LF, CRLF and lone CR', () => {
  assert.deepEqual([...splitLines('a\r\nb\rc\nd')], ['a', 'b', 'c', 'd']);
  assert.deepEqual([...splitLines('')], []);
});

test('meminfo: lab capture, kB fields, capture trailer counted as unparsed', () => {
  const mi = parseMeminfo(lab('proc-meminfo.txt'));
  assert.equal(mi.fields['MemTotal'], 484668);
  assert.equal(mi.fields['SUnreclaim'], 13720);
  assert.equal(mi.fields['Active(anon)'], 2620);
  assert.equal(mi.fields['HugePages_Total'], 0);
  assert.equal(mi.fields['VmallocTotal'], 13743895347199);
  assert.equal(Object.keys(mi.fields).length, 46);
  assert.equal(mi.unparsed.count, 1);
  assert.deepEqual(mi.unparsed.samples, ['[section rc=0]']);
  // No swap: reclaimable is the file LRU only (0 on this initramfs-only lab kernel).
  assert.equal(fileLruKb(mi), 0);
  assert.equal(reclaimableKb(mi), 0);
});

test('meminfo: reclaimable adds anon only when swap is free (zone_reclaimable_pages)', () => {
  const text = host('meminfo');
  const noSwap = parseMeminfo(text);
  const file = noSwap.fields['Active(file)'] + noSwap.fields['Inactive(file)'];
  assert.ok(file > 0);
  assert.equal(reclaimableKb(noSwap), file);
  const withSwap = parseMeminfo(text.replace(/^SwapTotal:.*$/m, 'SwapTotal: 1048576 kB').replace(/^SwapFree:.*$/m, 'SwapFree: 524288 kB'));
  assert.equal(reclaimableKb(withSwap), file + noSwap.fields['Active(anon)'] + noSwap.fields['Inactive(anon)']);
  const un = unaccountedKb(noSwap);
  assert.ok(un !== undefined && un > 0 && un < noSwap.fields['MemTotal']);
});

test('vmstat: lab head and full host file', () => {
  const vs = parseVmstat(lab('proc-vmstat-head.txt'));
  assert.equal(vs.counters['nr_free_pages'], 111695);
  assert.equal(slabUnreclaimablePages(vs), 3430);
  assert.equal(vs.unparsed.count, 1);
  const full = parseVmstat(host('vmstat'));
  assert.equal(full.unparsed.count, 0);
  assert.ok(Object.keys(full.counters).length > 150);
  assert.ok(full.counters['oom_kill'] >= 1, 'the host capture was taken after a memcg OOM kill');
});

test('buddyinfo: free blocks per order = free_area[k].nr_free', () => {
  const bi = parseBuddyinfo(lab('proc-buddyinfo.txt'));
  assert.equal(bi.zones.length, 2);
  assert.deepEqual(bi.zones[0], { node: 0, zone: 'DMA', freeBlocks: [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3] });
  assert.deepEqual(bi.zones[1].freeBlocks, [5, 5, 4, 4, 3, 5, 5, 4, 1, 2, 103]);
  assert.equal(freePagesOf(bi.zones[0].freeBlocks), 256 + 512 + 3 * 1024);
  assert.equal(highestFreeOrder(bi.zones[1].freeBlocks), 10);
  assert.equal(highestFreeOrder([0, 0, 0]), -1);
  assert.equal(freePagesAtOrAbove([1, 1, 1], 1), 2 + 4);
  assert.equal(bi.unparsed.count, 1);
});

test('buddyinfo and zoneinfo agree on free pages per zone (host capture)', () => {
  const bi = parseBuddyinfo(host('buddyinfo'));
  const zi = parseZoneinfo(host('zoneinfo'));
  assert.deepEqual(bi.zones.map((z) => z.zone), ['DMA', 'DMA32', 'Normal']);
  for (const bz of bi.zones) {
    const z = zi.zones.find((x) => x.zone === bz.zone)!;
    // Both read at nearly the same moment; the per-cpu lists make them differ a little.
    const diff = Math.abs(freePagesOf(bz.freeBlocks) - z.free!);
    assert.ok(diff <= Math.max(64, z.free! * 0.05), `${bz.zone}: buddy ${freePagesOf(bz.freeBlocks)} vs zoneinfo ${z.free}`);
  }
});

test('zoneinfo: lab head — per-node stats, watermarks, zone counters', () => {
  const zi = parseZoneinfo(lab('proc-zoneinfo-head.txt'));
  assert.equal(zi.zones.length, 1);
  const z = zi.zones[0];
  assert.deepEqual([z.node, z.zone, z.free, z.min, z.low, z.high, z.spanned, z.present, z.managed], [0, 'DMA', 3840, 22, 27, 32, 4095, 3998, 3840]);
  assert.deepEqual(z.protection, [0, 453, 453, 453]);
  assert.equal(z.counters['nr_free_pages'], 3840);
  assert.equal(z.counters['nr_zone_active_anon'], 0);
  assert.equal(zi.nodeStats[0]['nr_slab_unreclaimable'], 3430);
  assert.equal(zi.nodeStats[0]['nr_kernel_stack'], 928);
  assert.equal(z.counters['nr_slab_unreclaimable'], undefined, 'node stats do not leak into the zone');
  assert.equal(zi.unparsed.count, 1);
});

test('zoneinfo: host capture — pagesets skipped, promo watermark, empty zones', () => {
  const zi = parseZoneinfo(host('zoneinfo'));
  assert.equal(zi.unparsed.count, 0, JSON.stringify(zi.unparsed.samples));
  assert.deepEqual(zi.zones.map((z) => z.zone), ['DMA', 'DMA32', 'Normal', 'Movable', 'Device']);
  assert.deepEqual(populatedZones(zi).map((z) => z.zone), ['DMA', 'DMA32', 'Normal']);
  const normal = zi.zones[2];
  assert.ok(normal.min! < normal.low! && normal.low! < normal.high! && normal.high! < normal.promo!);
  assert.equal(normal.startPfn, 1048576);
  assert.equal(normal.counters['count'], undefined, 'pageset lines are not counters');
  const af = normal.counters['nr_zone_active_file'];
  const inf = normal.counters['nr_zone_inactive_file'];
  assert.equal(zoneReclaimablePages(normal, false), af + inf);
  assert.equal(zoneReclaimablePages(normal, true), af + inf + normal.counters['nr_zone_active_anon'] + normal.counters['nr_zone_inactive_anon']);
  assert.equal(zoneReclaimablePages(zi.zones[3], false), undefined, 'an empty zone prints no counters');
});

test('zoneinfo: pre-4.8 per-zone LRU names are used when nr_zone_* are absent', () => {
  const old = [
    'Node 0, zone   Normal',
    '  pages free     1000',
    '        min      100',
    '        low      125',
    '        high     150',
    '        scanned  0',
    '        spanned  200000',
    '        present  200000',
    '        managed  190000',
    '    nr_free_pages 1000',
    '    nr_inactive_anon 10',
    '    nr_active_anon 20',
    '    nr_inactive_file 300',
    '    nr_active_file 400',
    '        protection: (0, 0, 0)',
    '  pagesets',
    '    cpu: 0',
    '              count: 5',
    '              high:  186',
    '              batch: 31',
    '  vm stats threshold: 24',
    '  all_unreclaimable: 0',
    '  start_pfn:         262144',
    '  inactive_ratio:    1',
  ].join('\n');
  const zi = parseZoneinfo(old);
  assert.equal(zi.unparsed.count, 0, JSON.stringify(zi.unparsed.samples));
  assert.equal(zoneReclaimablePages(zi.zones[0], false), 700);
  assert.equal(zoneReclaimablePages(zi.zones[0], true), 730);
});

test('slabinfo 2.1: per-cache active bytes (lab head and host)', () => {
  const si = parseSlabinfo(lab('proc-slabinfo-head.txt'));
  assert.equal(si.version, '2.1');
  assert.equal(si.caches.length, 28);
  const sense = si.caches.find((c) => c.name === 'scsi_sense_cache')!;
  assert.deepEqual([sense.activeObjs, sense.numObjs, sense.objSize, sense.objPerSlab, sense.pagesPerSlab, sense.activeSlabs, sense.numSlabs], [288, 288, 128, 32, 1, 9, 9]);
  assert.equal(activeBytes(sense), 288 * 128);
  assert.equal(slabBytes(sense, 4096), 9 * 4096);
  assert.ok(si.caches.some((c) => c.name === 'ext4_pending_reservation'), 'long names that touch the count column');
  assert.equal(si.unparsed.count, 1);
  const full = parseSlabinfo(host('slabinfo'));
  assert.equal(full.unparsed.count, 0);
  assert.ok(full.caches.length > 200);
  assert.ok(full.caches.some((c) => c.name.startsWith('kmalloc-')));
});

test('pagetypeinfo: header orders, migrate types, block counts (host capture)', () => {
  const pt = parsePagetypeinfo(host('pagetypeinfo'));
  assert.equal(pt.unparsed.count, 0, JSON.stringify(pt.unparsed.samples));
  assert.equal(pt.pageBlockOrder, 9);
  assert.equal(pt.pagesPerBlock, 512);
  assert.deepEqual(pt.orders, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(pt.free.length, 15);
  assert.deepEqual(pt.blockTypes, ['Unmovable', 'Movable', 'Reclaimable', 'HighAtomic', 'Isolate']);
  assert.equal(pt.blocks.length, 3);
  const normalBlocks = pt.blocks.find((b) => b.zone === 'Normal')!;
  assert.equal(normalBlocks.blocks['Movable'] > 0, true);
  assert.equal(pt.anyCapped, false);
  // Per-type free counts add up to buddyinfo's per-zone counts (same moment, give or take pcp).
  const bi = parseBuddyinfo(host('buddyinfo'));
  const dma32 = pt.free.filter((f) => f.zone === 'DMA32');
  const sum = dma32[0].counts.map((_, k) => dma32.reduce((s, f) => s + f.counts[k], 0));
  assert.deepEqual(sum, bi.zones.find((z) => z.zone === 'DMA32')!.freeBlocks);
});

test('pagetypeinfo: ">100000" capped counts are lower bounds, flagged', () => {
  const text = host('pagetypeinfo').replace(
    /^(Node\s+0, zone\s+Normal, type\s+Movable)\s+(\d+)/m,
    (_all, head: string) => `${head} >100000`,
  );
  const pt = parsePagetypeinfo(text);
  assert.equal(pt.unparsed.count, 0);
  assert.equal(pt.anyCapped, true);
  const row = pt.free.find((f) => f.zone === 'Normal' && f.type === 'Movable')!;
  assert.equal(row.counts[0], 100000);
  assert.equal(row.capped[0], true);
  assert.equal(row.capped[1], false);
});

test('pagetypeinfo: mixed-blocks table (CONFIG_PAGE_OWNER) is kept apart', () => {
  const text = host('pagetypeinfo') + '\nNumber of mixed blocks    Unmovable      Movable  Reclaimable   HighAtomic      Isolate \nNode 0, zone   Normal            3            9            1            0            0 \n';
  const pt = parsePagetypeinfo(text);
  assert.equal(pt.unparsed.count, 0);
  assert.equal(pt.blocks.length, 3);
  assert.deepEqual(pt.mixedBlocks, [{ node: 0, zone: 'Normal', blocks: Object.assign(Object.create(null), { Unmovable: 3, Movable: 9, Reclaimable: 1, HighAtomic: 0, Isolate: 0 }) }]);
});
