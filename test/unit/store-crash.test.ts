// Crash at every step of the store's write sequence (a real SIGKILL of a child process, so no
// cleanup code runs), then rerun: every snapshot ends up stored exactly once, byte-identical to
// the device's, no temp files or half-written manifest lines remain, and the device copy is
// deleted only after the manifest line is durable.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHARED_FIXTURES } from '../helpers/paths.js';
import { SnapshotIndex } from '../../host/store/dedup.js';
import { TEMP_PREFIX } from '../../host/store/layout.js';
import { readManifest } from '../../host/store/manifest.js';
import { metaJson, parseDeviceMeta } from '../../host/store/meta.js';
import { createRun, openRun } from '../../host/store/run.js';
import { SnapshotWriter } from '../../host/store/snapshot.js';

const BOOT = 'b7e3a1c4-2f5d-4e6a-9b8c-0d1e2f3a4b5c';
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Build a device-side snapshots/ folder from real captured kmemleak and /proc text. */
async function makeDevice(dir: string): Promise<Map<string, Buffer>> {
  const originals = new Map<string, Buffer>();
  const k = (f: string) => fs.readFile(path.join(SHARED_FIXTURES, 'kmemleak', f));
  const p = (f: string) => fs.readFile(path.join(SHARED_FIXTURES, 'proc', f));
  const reports = [await k('kmemleak-report-after-insmod.txt'), await k('kmemleak-report-after-rmmod.txt'), Buffer.alloc(0)];
  for (let seq = 1; seq <= 3; seq++) {
    const d = path.join(dir, String(seq));
    await fs.mkdir(d, { recursive: true });
    const files: Record<string, Buffer> = {
      'kmemleak.txt': reports[seq - 1],
      'meminfo.txt': await p('proc-meminfo.txt'),
      'vmstat.txt': await p('proc-vmstat-head.txt'),
      'buddyinfo.txt': await p('proc-buddyinfo.txt'),
      'zoneinfo.txt': await p('proc-zoneinfo-head.txt'),
      'slabinfo.txt': await p('proc-slabinfo-head.txt'),
      'kmsg.txt': Buffer.from(seq === 2 ? '<6>[  812.5] kmemleak: 22 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n' : ''),
    };
    const leaks = (reports[seq - 1].toString().match(/^unreferenced object/gm) ?? []).length;
    let meta = `seq=${seq}\nboot_id=${BOOT}\nuptime_s=${100 * seq}\nwall_time=${1764200000 + 10 * seq}\nprotocol=kml\nscan1_ms=250\nscan2_ms=270\nkmemleak_bytes=${reports[seq - 1].length}\nleak_count=${leaks}\nerrors=\n`;
    for (const [name, data] of Object.entries(files)) {
      await fs.writeFile(path.join(d, name), data);
      originals.set(`${seq}/${name}`, data);
      meta += `size.${name}=${data.length}\nsha256.${name}=${sha(data)}\n`;
    }
    await fs.writeFile(path.join(d, 'meta.txt'), meta);
    originals.set(`${seq}/meta.txt`, Buffer.from(meta));
  }
  return originals;
}

/** The collector's per-snapshot sequence, store side, with a crash point. Runs in a child process. */
async function child(runDir: string, deviceDir: string, crashAt: string): Promise<void> {
  const die = () => process.kill(process.pid, 'SIGKILL');
  const run = await openRun(runDir);
  const index = new SnapshotIndex(run.entries);
  const seqs = (await fs.readdir(deviceDir)).filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b);
  for (const seq of seqs) {
    const d = path.join(deviceDir, String(seq));
    const at = (step: string) => { if (crashAt === `${seq}:${step}`) die(); };
    const metaBytes = await fs.readFile(path.join(d, 'meta.txt'));
    const meta = parseDeviceMeta(metaBytes.toString());
    if (index.storedByMeta(BOOT, seq, sha(metaBytes))) {
      await fs.rm(d, { recursive: true });
      continue;
    }
    let staged = 0;
    const writer = new SnapshotWriter({
      runDir: run.dir, manifestPath: run.manifestPath, runId: run.json.runId, serial: 'S', bootId: BOOT, seq, index,
      onStep: async (step, detail) => {
        at(step);
        if (step === 'renamed') at(`renamed:${detail}`);
        if (step === 'dirs-synced' && crashAt === `${seq}:manifest-torn`) {
          await fs.appendFile(run.manifestPath, '{"schemaVersion":1,"serial":"S","bootId":"' + BOOT.slice(0, 10));
          die();
        }
      },
    });
    const names = (await fs.readdir(d)).filter((n) => n !== 'meta.txt').sort();
    for (const name of names) {
      async function* source() {
        const data = await fs.readFile(path.join(d, name));
        yield data.subarray(0, data.length >> 1);
        if (crashAt === `${seq}:mid-pull:${name}`) die();
        yield data.subarray(data.length >> 1);
      }
      await writer.stageStream(name, name === 'kmemleak.txt' ? createReadStream(path.join(d, name)) : source(), { bytes: meta.size[name], sha256: meta.sha256[name] });
      at(`staged:${++staged}`);
    }
    await writer.stageConverted('meta.txt', metaJson(meta, metaBytes.toString()), metaBytes);
    await writer.commit({ wallTime: meta.wallTime, uptimeS: meta.uptimeS, leakCount: meta.leakCount });
    at('before-device-delete');
    await fs.rm(d, { recursive: true });
  }
}

async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const ent of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (ent.isFile()) out.push(path.relative(dir, path.join(ent.parentPath ?? (ent as unknown as { path: string }).path, ent.name)));
  }
  return out.sort();
}

const CRASH_POINTS = [
  '1:staged:1', '2:mid-pull:meminfo.txt', '2:staged:3', '2:staged', '2:renamed:buddyinfo.txt', '2:renamed:kmsg.txt',
  '2:renamed:zoneinfo.txt', '2:dirs-synced', '2:manifest-torn', '2:manifest-appended', '2:before-device-delete', '3:staged',
];

const self = fileURLToPath(import.meta.url);

if (process.env.KML_STORE_CRASH_CHILD) {
  const [runDir, deviceDir, crashAt] = JSON.parse(process.env.KML_STORE_CRASH_CHILD) as string[];
  await child(runDir, deviceDir, crashAt);
} else {
  for (const crashAt of CRASH_POINTS) {
    test(`crash at ${crashAt}, then rerun: exactly once, nothing lost`, { timeout: 30_000 }, async () => {
      const root = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-crash-'));
      const deviceDir = path.join(root, 'device', 'snapshots');
      const originals = await makeDevice(deviceDir);
      const run = await createRun(path.join(root, 'out'), 'emulator-5554', { intervalS: 5 });
      const spawn = (point: string) =>
        spawnSync(process.execPath, [self], { env: { ...process.env, KML_STORE_CRASH_CHILD: JSON.stringify([run.dir, deviceDir, point]) }, encoding: 'utf8', timeout: 20_000 });
      const crashed = spawn(crashAt);
      assert.equal(crashed.signal, 'SIGKILL', `child should have died at ${crashAt}: ${crashed.stderr}`);
      // the device copy of the crashed snapshot is still there unless its manifest line was durable
      const crashedSeq = crashAt.split(':')[0];
      assert.ok(await fs.stat(path.join(deviceDir, crashedSeq)).then(() => true, () => false), 'device copy deleted before the crash point?');
      const rerun = spawn('none');
      assert.equal(rerun.status, 0, rerun.stderr);

      assert.deepEqual(await fs.readdir(deviceDir), [], 'every device snapshot was deleted after storing');
      const m = await readManifest(run.manifestPath);
      assert.equal(m.torn, undefined);
      assert.equal(m.bad.length, 0);
      assert.deepEqual(m.entries.map((e) => e.seq), [1, 2, 3], 'each snapshot exactly once, in order');
      assert.ok(m.entries.every((e) => !e.conflict));
      for (const e of m.entries) {
        for (const f of e.files) {
          const stored = await fs.readFile(path.join(run.dir, f.path));
          assert.equal(sha(stored), f.sha256, f.path);
          const orig = originals.get(`${e.seq}/${f.name}`)!;
          assert.equal(f.source?.sha256 ?? f.sha256, sha(orig), `${f.path} matches the device's ${f.name}`);
          if (f.name !== 'meta.txt') assert.ok(stored.equals(orig));
        }
        assert.equal(e.files.length, 8);
      }
      const files = await listAll(run.dir);
      assert.deepEqual(files.filter((f) => path.basename(f).startsWith(TEMP_PREFIX) || f.includes('.orphan-')), []);
      assert.equal(files.filter((f) => /kmemleak_log_\d+\.txt$/.test(f)).length, 3);
      const meta2 = JSON.parse(await fs.readFile(path.join(run.dir, `boot-${BOOT}`, 'meta_2.json'), 'utf8'));
      assert.equal(meta2.seq, 2);
      assert.equal(meta2.leakCount, 22);
      assert.equal(meta2.raw, originals.get('2/meta.txt')!.toString());
      await fs.rm(root, { recursive: true, force: true });
    });
  }
}
