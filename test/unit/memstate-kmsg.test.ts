// Kernel-log events from real captures: a memcg OOM on 6.18 (dmesg and /dev/kmsg forms), the lab
// kernel's kmemleak dmesg, and the research notes' verbatim lowmemorykiller records.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, SHARED_FIXTURES } from '../helpers/paths.js';
import { parseKernelLog, isSystemKill } from '../../host/memstate/index.js';

const mem = (f: string) => fs.readFileSync(path.join(FIXTURES, 'memstate', f), 'utf8');
const kml = (f: string) => fs.readFileSync(path.join(SHARED_FIXTURES, 'kmemleak', f), 'utf8');

test('dmesg OOM report: invoked, one kill (constraint + Killed process merged)', () => {
  const log = parseKernelLog(mem('dmesg-memcg-oom-6.18.txt'));
  assert.deepEqual(log.events.map((e) => e.kind), ['oom-invoked', 'oom-kill']);
  const [inv, kill] = log.events;
  assert.equal(inv.comm, 'dd');
  assert.equal(inv.order, 0);
  assert.equal(inv.gfpMask, '0xcc0');
  assert.equal(inv.uptimeS, 289.064547);
  assert.equal(kill.pid, 10640);
  assert.equal(kill.comm, 'dd');
  assert.equal(kill.constraint, 'CONSTRAINT_MEMCG');
  assert.equal(kill.memcg, true);
  assert.equal(kill.anonRssKb, 65280);
  assert.equal(kill.freedKb, 65280 + 1672 + 0);
  assert.equal(kill.adj, 0);
  assert.equal(isSystemKill(kill), false, 'a memcg kill frees no system memory');
  assert.ok(log.ignored > 100, 'the rest of the report is recognised as other lines');
  assert.equal(log.unparsed.count, 0);
});

test('/dev/kmsg records: microsecond timestamps', () => {
  const log = parseKernelLog(mem('devkmsg-memcg-oom-6.18.txt'));
  assert.deepEqual(log.events.map((e) => e.kind), ['oom-invoked', 'oom-kill']);
  assert.equal(log.events[1].uptimeS, 289.074359);
  assert.equal(log.events[1].freedKb, 66952);
});

test('global OOM and reaper lines (mainline format strings)', () => {
  const log = parseKernelLog([
    '[ 100.000001] Out of memory: Killed process 812 (system_server) total-vm:4000000kB, anon-rss:300000kB, file-rss:1000kB, shmem-rss:24kB, UID:1000 pgtables:2000kB oom_score_adj:-900',
    '[ 100.100000] oom_reaper: reaped process 812 (system_server), now anon-rss:0kB, file-rss:0kB, shmem-rss:24kB',
    '[ 101.000000] kworker/u16:1: page allocation failure: order:4, mode:0x40cc0(GFP_KERNEL|__GFP_COMP), nodemask=(null)',
    '[ 102.000000] Unreclaimable slab info:',
    '[ 102.000001] Name                      Used          Total',
    '[ 102.000002] kmalloc-2048           59164KB      59164KB',
    '[ 102.000003] kmalloc-128             1024KB       1100KB',
    '[ 102.000004] Tasks state (memory values in pages):',
  ]);
  assert.deepEqual(log.events.map((e) => e.kind), ['oom-kill', 'oom-reaped', 'alloc-failure', 'unreclaimable-slab']);
  assert.equal(log.events[0].memcg, undefined);
  assert.equal(isSystemKill(log.events[0]), true);
  assert.equal(log.events[0].adj, -900);
  assert.equal(log.events[2].order, 4);
  assert.equal(log.events[2].comm, 'kworker/u16:1');
  assert.deepEqual(log.events[3].caches, [{ name: 'kmalloc-2048', usedKb: 59164 }, { name: 'kmalloc-128', usedKb: 1024 }]);
  assert.equal(log.ignored, 1);
});

test('in-kernel lowmemorykiller: multi-line dmesg record is one kill', () => {
  const log = parseKernelLog(mem('lmk/lowmemorykiller-kernel-dmesg.txt'));
  assert.equal(log.events.length, 1);
  const e = log.events[0];
  assert.equal(e.kind, 'lmk-kill');
  assert.equal(e.source, 'kernel');
  assert.equal(e.comm, 'd.play.games.ui');
  assert.equal(e.pid, 2613);
  assert.equal(e.adj, 1000);
  assert.equal(e.freedKb, 20784);
  assert.match(e.reason!, /32112kB below limit 32384kB/);
  assert.equal(log.ignored, 0);
});

test('in-kernel lowmemorykiller in /dev/kmsg with \\x0a separators (negative free memory)', () => {
  const log = parseKernelLog(mem('lmk/lowmemorykiller-devkmsg.txt'));
  assert.equal(log.events.length, 1);
  assert.equal(log.events[0].comm, 'externalstorage');
  assert.equal(log.events[0].freedKb, 11212);
  assert.equal(log.events[0].uptimeS, 533.604004);
});

test('lmkd logcat kills, with and without swap and reason', () => {
  const log = parseKernelLog(mem('lmk/lmkd-logcat.txt'));
  assert.equal(log.events.length, 2);
  assert.deepEqual(log.events.map((e) => [e.source, e.comm, e.pid, e.adj, e.freedKb]), [
    ['lmkd', 'com.example.app', 4312, 900, 81234],
    ['lmkd', 'com.example.other', 4401, 905, 41000],
  ]);
  assert.match(log.events[0].reason!, /low on swap/);
  assert.ok(log.events.every(isSystemKill));
});

test('kmemleak dmesg: new-leak counts and the disabled line (lab kernel)', () => {
  const log = parseKernelLog(kml('dmesg-grep-kmemleak-enabled-run.txt'));
  const kinds = log.events.map((e) => e.kind);
  assert.deepEqual(kinds, ['kmemleak-new', 'kmemleak-new', 'kmemleak-new', 'kmemleak-disabled']);
  assert.deepEqual(log.events.filter((e) => e.count !== undefined).map((e) => e.count), [1, 9, 12]);
  assert.equal(log.events[0].uptimeS, 9.423251);
  assert.equal(log.unparsed.count, 0);
  const off = parseKernelLog(kml('dmesg-grep-kmemleak-default-off.txt'));
  assert.deepEqual(off.events.map((e) => e.kind), ['kmemleak-disabled']);
});

test('kmemleak error lines and CRLF input', () => {
  const log = parseKernelLog('[    5.1] kmemleak: Memory pool empty, consider increasing CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE\r\n[    5.2] kmemleak: Cannot allocate a kmemleak_object structure\r\n');
  assert.deepEqual(log.events.map((e) => e.kind), ['kmemleak-error', 'kmemleak-error']);
  assert.equal(log.events[1].line, 2);
});

test('binary garbage and a 10 MB line are unparsed, never thrown on', () => {
  const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)).toString('utf8');
  const log = parseKernelLog(`${garbage}\n${'x'.repeat(10 * 1024 * 1024)}\n[ 1.0] kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n`);
  assert.equal(log.events.length, 1);
  assert.equal(log.events[0].count, 3);
  assert.ok(log.unparsed.count >= 2);
  assert.ok(log.unparsed.samples.every((s) => s.length < 200));
});
