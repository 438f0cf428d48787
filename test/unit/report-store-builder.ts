// Writes small kml stores and seed-style folders for the report tests, following the brief's
// host-store contract (run.json, manifest.jsonl, boot-<id>/kmemleak_log_<N>.txt, meta_<N>.json,
// mem_<N>/*.txt, kmsg_<N>.txt). Record text and /proc files are the real lab captures with
// controlled changes (addresses, jiffies, culprit frame, a few counters). Used once to write
// test/fixtures/runs/ and by tests that need a variant in a temp dir.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { snapshotDigest } from '../../host/store/dedup.js';
import { LAB, setMeminfo, setVmstat, setSlab } from './report-helpers.js';

export interface LeakSpec {
  culprit: string;
  module?: string;
  size: number;
  comm?: string;
  /** New objects in each snapshot (cumulative mode: each read holds only what is new since the last clear). */
  perSnapshot: number[];
}

export interface StoreSpec {
  serial: string;
  runId: string;
  bootId: string;
  snapshots: number;
  intervalS: number;
  /** Device wall time of the first snapshot, epoch seconds. */
  t0: number;
  /** Uptime of the first snapshot, seconds. */
  uptime0: number;
  leaks: LeakSpec[];
  /** The seed's swapper/0 probe-time false positives in the first snapshot. */
  bootRecords?: boolean;
  /** Edit sample k's /proc texts (starting from the real lab captures); omit to write none. */
  mem?: (k: number, texts: Record<string, string>) => void;
  kmsg?: (k: number) => string | undefined;
  firstSeq?: number;
}

const HZ = 250;
const INITIAL_JIFFIES = 4294967296 - 300 * HZ;

/** One record in the lab kernel's 6.1 format (hashed [<...>] frames, no crc), as its captures print it. */
export function labRecord(addr: bigint, size: number, comm: string, pid: number, jiffies: number, culprit: string, module: string | undefined, salt: number): string {
  const hash = (n: number) => ((n * 2654435761) >>> 0).toString(16).padStart(16, '0');
  const mod = module ? ` [${module}]` : '';
  return [
    `unreferenced object 0x${addr.toString(16)} (size ${size}):`,
    `  comm "${comm}", pid ${pid}, jiffies ${jiffies}`,
    `  hex dump (first ${Math.min(32, size)} bytes):`,
    '    00 8d 0c c0 ca 2d c3 ff 00 90 0c c0 ca 2d c3 ff  .....-.......-..',
    ...(size > 16 ? ['    40 a3 18 43 7b e8 11 ff 00 00 00 00 00 00 00 00  @..C{...........'] : []),
    '  backtrace:',
    `    [<${hash(salt)}>] kmalloc_trace+0x21/0x90`,
    `    [<${hash(salt + 1)}>] ${culprit}+0x2d/0x80${mod}`,
    `    [<${hash(salt + 2)}>] process_one_work+0x1e2/0x3f0`,
    `    [<${hash(salt + 3)}>] worker_thread+0x50/0x3b0`,
    `    [<${hash(salt + 4)}>] kthread+0xe5/0x110`,
    `    [<${hash(salt + 5)}>] ret_from_fork+0x2c/0x50`,
  ].join('\n') + '\n';
}

/** The seed note's swapper/0 qbam_probe record (a boot-time false positive), 64-bit lab formatting. */
function bootRecord(i: number): string {
  return [
    `unreferenced object 0xff11e87b4413bd${(i * 64).toString(16).padStart(2, '0')} (size 64):`,
    `  comm "swapper/0", pid 1, jiffies ${INITIAL_JIFFIES + 2754}`,
    '  hex dump (first 32 bytes):',
    '    00 00 00 00 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b  ....kkkkkkkkkkkk',
    '    6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b  kkkkkkkkkkkkkkkk',
    '  backtrace:',
    '    [<00000000c0472728>] dma_async_device_register+0x198/0x494',
    '    [<00000000c0473818>] qbam_probe+0x170/0x230',
    '    [<00000000c057ddf0>] platform_drv_probe+0x30/0x78',
    '    [<00000000c057c1e4>] driver_probe_device+0x33c/0x6b0',
    '    [<00000000c01009dc>] do_one_initcall+0x19c/0x1dc',
    '    [<00000000c1900dd0>] kernel_init_freeable+0x108/0x1cc',
    '    [<00000000c0f53e28>] kernel_init+0x8/0xe8',
  ].join('\n') + '\n';
}

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

/** The kmemleak text of snapshot k (0-based) of a spec. */
export function snapshotText(spec: StoreSpec, k: number): string {
  const parts: string[] = [];
  if (spec.bootRecords && k === 0) parts.push(bootRecord(0), bootRecord(1));
  const uptime = spec.uptime0 + k * spec.intervalS;
  spec.leaks.forEach((leak, li) => {
    const n = leak.perSnapshot[k] ?? 0;
    for (let j = 0; j < n; j++) {
      const addr = 0xff11e87b43000000n + BigInt((li * 1_000_000 + k * 1000 + j) * 0x100);
      const allocUptime = uptime - spec.intervalS + ((j + 1) * spec.intervalS) / (n + 1);
      const jiffies = INITIAL_JIFFIES + Math.round(allocUptime * HZ);
      parts.push(labRecord(addr, leak.size, leak.comm ?? 'kworker/0:1', 40 + li, jiffies, leak.culprit, leak.module, li * 97 + j));
    }
  });
  return parts.join('');
}

/** Write a kml store run dir for `spec` under `out`; returns the run dir. */
export function buildStore(out: string, spec: StoreSpec): string {
  const serialSafe = spec.serial.replace(/[^A-Za-z0-9._-]/g, '_');
  const runDir = path.join(out, serialSafe, spec.runId);
  const bootDir = path.join(runDir, `boot-${spec.bootId}`);
  fs.mkdirSync(bootDir, { recursive: true });
  const firstSeq = spec.firstSeq ?? 1;
  const manifest: string[] = [];
  for (let k = 0; k < spec.snapshots; k++) {
    const seq = firstSeq + k;
    const wallTime = spec.t0 + k * spec.intervalS;
    const uptimeS = spec.uptime0 + k * spec.intervalS;
    const files: Array<{ name: string; path: string; bytes: number; sha256: string }> = [];
    const put = (name: string, rel: string, text: string) => {
      const abs = path.join(runDir, rel);
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.writeFileSync(abs, text);
      files.push({ name, path: rel, bytes: Buffer.byteLength(text), sha256: sha(text) });
    };
    const report = snapshotText(spec, k);
    const leakCount = (report.match(/^unreferenced object/gm) ?? []).length;
    put('kmemleak.txt', `boot-${spec.bootId}/kmemleak_log_${seq}.txt`, report);
    const metaFields = {
      seq: String(seq), boot_id: spec.bootId, uptime_s: String(uptimeS), wall_time: String(wallTime), protocol: 'scan,sleep5,scan,cat,clear',
      scan1_ms: '812', scan2_ms: '790', kmemleak_bytes: String(Buffer.byteLength(report)), leak_count: String(leakCount), errors: '',
    };
    const metaRaw = Object.entries(metaFields).map(([key, v]) => `${key}=${v}`).join('\n') + '\n';
    put('meta.txt', `boot-${spec.bootId}/meta_${seq}.json`, JSON.stringify({
      schemaVersion: 1, seq, bootId: spec.bootId, uptimeS, wallTime, protocol: metaFields.protocol, scan1Ms: 812, scan2Ms: 790,
      kmemleakBytes: Buffer.byteLength(report), leakCount, errors: null, fields: metaFields, raw: metaRaw,
    }, null, 2) + '\n');
    if (spec.mem) {
      const texts: Record<string, string> = { ...LAB };
      spec.mem(k, texts);
      for (const [name, text] of Object.entries(texts)) put(`${name}.txt`, `boot-${spec.bootId}/mem_${seq}/${name}.txt`, text);
    }
    const kmsg = spec.kmsg?.(k);
    if (kmsg !== undefined) put('kmsg.txt', `boot-${spec.bootId}/kmsg_${seq}.txt`, kmsg);
    manifest.push(JSON.stringify({
      schemaVersion: 1, serial: spec.serial, bootId: spec.bootId, seq, wallTime, uptimeS, files,
      pulledAt: new Date((wallTime + 30) * 1000).toISOString(), digest: snapshotDigest(files), runId: spec.runId, leakCount,
    }));
  }
  fs.writeFileSync(path.join(runDir, 'manifest.jsonl'), manifest.join('\n') + '\n');
  fs.writeFileSync(path.join(runDir, 'run.json'), JSON.stringify({
    schemaVersion: 1, runId: spec.runId, serial: spec.serial, serialSafe, kmlVersion: '0.1.0',
    started: new Date((spec.t0 - 60) * 1000).toISOString(), host: { hostname: 'fixture', pid: 1, platform: 'linux' },
    intervalS: spec.intervalS, scanProtocol: 'scan,sleep5,scan,cat,clear', scanWaitS: 5, count: spec.snapshots, durationS: null,
    device: {
      props: { 'ro.product.model': 'kml-lab' },
      kernel: { release: '6.1.0-kml-lab', cmdline: 'console=ttyS0,115200 panic=-1 page_owner=on lab.mode=kmemleak kmemleak=on', hz: HZ, config: `CONFIG_DEBUG_KMEMLEAK=y\nCONFIG_HZ=${HZ}\n` },
    },
    boots: [{ bootId: spec.bootId, firstSeen: new Date(spec.t0 * 1000).toISOString() }],
    sessions: [{ at: new Date((spec.t0 - 60) * 1000).toISOString(), pid: 1, command: 'collect', resumed: false }],
    ended: { at: new Date((spec.t0 + spec.snapshots * spec.intervalS) * 1000).toISOString(), reason: 'count', clean: true },
  }, null, 2) + '\n');
  return runDir;
}

/** The canonical slab-leak store of test/fixtures/runs/store-slab-leak. */
export const SLAB_LEAK_SPEC: StoreSpec = {
  serial: '127.0.0.1:5555',
  runId: '20251124T160000Z-ab12',
  bootId: '3f2b8c1e-9d4a-4c71-8e0b-5a6f7c8d9e01',
  snapshots: 6,
  intervalS: 3600,
  t0: 1_764_000_000,
  uptime0: 600,
  bootRecords: true,
  leaks: [
    { culprit: 'kml_leak_work', module: 'kml_leaky', size: 128, perSnapshot: [0, 40, 42, 39, 41, 40] },
    { culprit: 'sock_alloc_ctx', size: 1024, comm: 'netd', perSnapshot: [0, 0, 0, 0, 0, 3] },
    { culprit: 'fw_load_once', size: 4096, comm: 'init', perSnapshot: [0, 2, 0, 0, 0, 0] },
  ],
  mem: (k, t) => {
    t.meminfo = setMeminfo(LAB.meminfo, { SUnreclaim: 13720 + 1536 * k, Slab: 19276 + 1536 * k, MemFree: 446780 - 1536 * k, MemAvailable: 443608 - 1536 * k });
    t.vmstat = setVmstat(LAB.vmstat, { nr_slab_unreclaimable: 3430 + 384 * k, nr_free_pages: 111695 - 384 * k });
    t.slabinfo = setSlab(LAB.slabinfo, 'scsi_sense_cache', 288 + 12288 * k);
  },
  kmsg: (k) => (k === 0 ? '[  600.100000] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n'
    : k === 4 ? `[${(600 + 4 * 3600 - 120).toFixed(6).padStart(12)}] lowmemorykiller: Killing 'com.example.game' (2613), adj 900,\n[${(600 + 4 * 3600 - 120).toFixed(6).padStart(12)}]    to free 20784kB on behalf of 'kswapd0' (42) because\n`
    : undefined),
};

/** An ARM32 4.19 record in the seed note's format: raw 32-bit pointers, (age …), 0xffffffff terminator. */
export function seedRecord(addr: number, size: number, comm: string, pid: number, jiffies: number, ageS: number, culprit: string): string {
  return [
    `unreferenced object 0x${addr.toString(16)} (size ${size}):`,
    `  comm "${comm}", pid ${pid}, jiffies ${jiffies} (age ${ageS.toFixed(3)}s)`,
    '  hex dump (first 32 bytes):',
    '    00 00 00 00 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b  ....kkkkkkkkkkkk',
    '    6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b  kkkkkkkkkkkkkkkk',
    '  backtrace:',
    '    [<c02f1a30>] kmem_cache_alloc_trace+0x140/0x2a8',
    `    [<c06a7b24>] ${culprit}+0x5c/0x1a0`,
    '    [<c06a8c10>] binder_ioctl_write_read+0x1f4/0x3d8',
    '    [<c06a9e48>] binder_ioctl+0x2cc/0x7a0',
    '    [<c0325f8c>] do_vfs_ioctl+0x9c/0x8e4',
    '    [<c0326814>] SyS_ioctl+0x40/0x68',
    '    [<c0108ae0>] ret_fast_syscall+0x0/0x28',
    '    [<ffffffff>] 0xffffffff',
  ].join('\n') + '\n';
}

/** The seed's /sdcard layout: kmemleak_log_0.txt … (log 0 = the boot-time false positives). */
export function buildSeedFolder(dir: string, seedBootText: string, logs = 4): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'kmemleak_log_0.txt'), seedBootText);
  const HZ100 = 100, J0 = 4294967296 - 300 * HZ100;
  for (let n = 1; n < logs; n++) {
    const parts: string[] = [];
    for (let j = 0; j < 5 * n; j++) {
      const uptime = n * 600 - 300 + j;
      parts.push(seedRecord(0xd5a00000 + n * 0x10000 + j * 0x100, 192, 'Binder:812_3', 812, J0 + uptime * HZ100, n * 600 - uptime + 652.64, 'binder_alloc_new_buf'));
    }
    fs.writeFileSync(path.join(dir, `kmemleak_log_${n}.txt`), parts.join(' \n'));
  }
}
