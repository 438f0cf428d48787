// Leak identity and jiffies arithmetic.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, SHARED_FIXTURES } from '../helpers/paths.js';
import { parseKmemleakText } from '../../host/kmemleak/parser.js';
import { Fingerprinter, displayStack, frameKey, globToRegExp, normaliseSymbol } from '../../host/kmemleak/fingerprint.js';
import { HzEstimator, allocUptimeS, hzFromConfigText, initialJiffies } from '../../host/kmemleak/jiffies.js';

const fixture = (era: string): string => fs.readFileSync(path.join(FIXTURES, 'kmemleak', `${era}.txt`), 'utf8');
const titles = (era: string): string[] => {
  const fp = new Fingerprinter();
  return parseKmemleakText(fixture(era)).records.map((r) => fp.identify(r).title);
};

test('symbols are normalised: clone, LTO and CFI suffixes and _noprof go', () => {
  assert.equal(normaliseSymbol('tcp_ao_info_cmd.constprop.0'), 'tcp_ao_info_cmd');
  assert.equal(normaliseSymbol('binder_translate_binder.isra.0'), 'binder_translate_binder');
  assert.equal(normaliseSymbol('krb5_selftest.cold'), 'krb5_selftest');
  assert.equal(normaliseSymbol('foo.part.3.cold.1'), 'foo');
  assert.equal(normaliseSymbol('bar.llvm.12345678901'), 'bar');
  assert.equal(normaliseSymbol('baz.cfi_jt'), 'baz');
  assert.equal(normaliseSymbol('__kmalloc_cache_noprof'), '__kmalloc_cache');
  assert.equal(normaliseSymbol('plain_name'), 'plain_name');
});

test('titles name the first caller after the allocator frames, in every era', () => {
  assert.deepEqual(titles('raw-arm32-seed-4.19'), ['memory leak in dma_async_device_register', 'memory leak in dma_async_device_register']);
  assert.deepEqual(titles('raw-arm32-dmesg-3.x'), ['memory leak in eth_rx_fill', 'memory leak in debug_objects_mem_init']);
  assert.deepEqual(titles('hashed-terminator-4.15'), ['memory leak in htab_map_alloc', 'memory leak in alloc_inode']);
  assert.deepEqual(titles('ptrval-4.15'), ['memory leak in unpack_to_rootfs']);
  assert.deepEqual(titles('crc-6.8'), ['memory leak in acpi_processor_power_init', 'memory leak in tcp_ao_alloc_info', 'memory leak in kmem_cache_alloc']);
  assert.deepEqual(titles('bare-6.13'), ['memory leak in sgl_alloc_order', 'memory leak in ?+0xd48 (unresolved, called from add_modify_gid [ib_core])']);
  assert.deepEqual(titles('pk-zero-6.2'), ['memory leak in binder_new_node']);
  assert.deepEqual(titles('age-bare-6.6.70'), ['memory leak in dwc3_gadget_ep_alloc_request [dwc3]']);
  assert.deepEqual(titles('percpu-6.12'), ['memory leak in <unknown> (no backtrace)', 'memory leak in load_module']);
  // syzkaller's own title for this report (testdata 752): inline frames are not part of the key.
  assert.deepEqual(titles('symbolized-syzkaller-6.x'), ['memory leak in lookup_or_create_module_kobject']);
});

test('key = first 5 caller frames; module of the first key frame that has one', () => {
  const fp = new Fingerprinter();
  const [rec] = parseKmemleakText(fixture('age-bare-6.6.70')).records;
  const id = fp.identify(rec);
  assert.deepEqual(id.frames, [
    'dwc3_gadget_ep_alloc_request [dwc3]', 'usb_ep_alloc_request [udc_core]', 'ffs_epfile_io [usb_f_fs]',
    'ffs_epfile_write_iter [usb_f_fs]', 'vfs_write',
  ]);
  assert.equal(id.module, 'dwc3');
  assert.match(id.fingerprint, /^[0-9a-f]{12}$/);
  const three = new Fingerprinter({ framesInKey: 3 }).identify(rec);
  assert.equal(three.frames.length, 3);
  assert.notEqual(three.fingerprint, id.fingerprint);
});

test('the same leak has the same fingerprint whatever the era prints around it', () => {
  const lab = parseKmemleakText(fs.readFileSync(path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-insmod.txt'), 'utf8')).records;
  const base = lab.map((r) => new Fingerprinter().identify(r).fingerprint);
  const text = fs.readFileSync(path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-insmod.txt'), 'utf8');
  const variants = [
    text.replace(/\[<[0-9a-f]+>\] /g, ''), // 6.13+ bare frames
    text.replace(/\[<[0-9a-f]+>\]/g, '[<0000000000000000>]'), // %pK, kptr_restrict=2
    text.replace(/\[<[0-9a-f]+>\]/g, '[<(____ptrval____)>]'),
    text.replace(/\+0x[0-9a-f]+\/0x[0-9a-f]+/g, '+0x10/0x999'), // another build
    text.replace(/jiffies (\d+)/g, 'jiffies $1 (age 12.345s)').replace(/  backtrace:/g, '  backtrace (crc deadbeef):'),
    text.replace(/kmalloc_trace/g, 'kmalloc_trace_noprof'),
    text.replace(/0xffffffffc003/g, '0xffffffffc104'), // module loaded elsewhere (KASLR)
    text.split('\n').map((l) => `[  123.456789] kmemleak: ${l}`).join('\n'),
  ];
  for (const v of variants) {
    const recs = parseKmemleakText(v).records;
    assert.equal(recs.length, lab.length);
    assert.deepEqual(recs.map((r) => new Fingerprinter().identify(r).fingerprint), base);
  }
});

test('different call sites in an unloaded module keep different fingerprints', () => {
  const recs = parseKmemleakText(fs.readFileSync(path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-insmod.txt'), 'utf8')).records;
  const fps = new Set(recs.map((r) => new Fingerprinter().identify(r).fingerprint));
  assert.equal(fps.size, recs.length); // each kmemleak-test allocation is its own line of code
  assert.equal(frameKey(recs[0].frames[1]), '?+0x02d');
});

test('extra skip frames extend the allocator list (globs)', () => {
  const [rec] = parseKmemleakText(fixture('bare-6.13')).records;
  assert.equal(new Fingerprinter().identify(rec).culprit, 'sgl_alloc_order');
  assert.equal(new Fingerprinter({ extraSkipFrames: ['sgl_*'] }).identify(rec).culprit, 'nvmet_req_alloc_sgls [nvmet]');
  assert.ok(globToRegExp('a*c?').test('abbbcd'));
  assert.ok(!globToRegExp('a.c').test('abc'));
});

test('display stacks keep offsets and modules as printed', () => {
  const [rec] = parseKmemleakText(fixture('bare-6.13')).records;
  assert.deepEqual(displayStack(rec.frames).slice(2), ['nvmet_req_alloc_sgls+0x294/0x4f0 [nvmet]', 'nvmet_rdma_map_sgl_keyed+0x25a/0x940 [nvmet_rdma]']);
});

test('INITIAL_JIFFIES and allocation uptime, 64-bit and 32-bit with wrap', () => {
  assert.equal(initialJiffies(1000), 4294667296);
  assert.equal(initialJiffies(100), 4294937296);
  assert.equal(allocUptimeS(4294670297, 1000, 64), 3.001); // lab kmemleak-test at ~3.1 s in dmesg
  assert.equal(allocUptimeS(4294938050, 100, 32), 7.54); // the seed's swapper/0 probe allocation
  assert.equal(allocUptimeS(4294667296 - 1, 1000, 64), null); // before boot: impossible
  assert.equal(allocUptimeS(1000, 100, 32), 310); // after the 32-bit wrap at 300 s
  const period = 4294967296 / 1000;
  assert.equal(allocUptimeS(3000 + 300000, 1000, 32, period + 1000), 603 + period); // second wrap resolved by the read's uptime
  assert.equal(allocUptimeS(4303559899, 250, 64), (4303559899 - 4294892296) / 250);
});

test('HZ is inferred from jiffies, uptime and age', () => {
  const lab = new HzEstimator();
  for (const r of parseKmemleakText(fs.readFileSync(path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-insmod.txt'), 'utf8')).records) {
    lab.observe(r.jiffies!, r.pointerBits, 16.2, r.ageMs);
  }
  assert.deepEqual([lab.result().hz, lab.result().source], [1000, 'inferred']);
  // uptime − age must equal the allocation time: HZ 100 object read at 660.18 s, age 652.640 s.
  const seed = new HzEstimator();
  seed.observe(4294938050, 32, 660.18, 652640);
  assert.deepEqual([seed.result().hz, seed.result().source], [100, 'inferred']);
  // No uptime: two records of one read, 2000 jiffies and 8 s apart → HZ 250.
  const pair = new HzEstimator();
  pair.observe(4294900000, 64, null, 20000);
  pair.observe(4294902000, 64, null, 12000);
  pair.observeAgePair(4294900000, 20000, 4294902000, 12000, 64);
  assert.deepEqual([pair.result().hz, pair.result().source], [250, 'inferred']);
  assert.equal(new HzEstimator().result().source, 'assumed');
});

test('CONFIG_HZ is read from config text, not CONFIG_HZ_1000=y', () => {
  assert.equal(hzFromConfigText('CONFIG_HZ_1000=y\nCONFIG_HZ=1000\n'), 1000);
  assert.equal(hzFromConfigText('{"CONFIG_HZ":"250"}'), 250);
  assert.equal(hzFromConfigText('CONFIG_HZ_250=y'), null);
});
