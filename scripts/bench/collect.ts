// Pull throughput of kml's puller next to `adb pull` of the same file through the same adb server.
//
//   node dist/scripts/bench/collect.js                    # our adbd on the host, private adb server
//   node dist/scripts/bench/collect.js --size 32 --runs 5
//   node dist/scripts/bench/collect.js -P 5037 -s 127.0.0.1:5555 --agent-dir /data/local/tmp/kml-bench   # a lab VM
//   ... --json
//
// Three numbers, median of --runs, MiB/s of the snapshot's kmemleak.txt:
//   adb-cli   `adb -P PORT -s SERIAL pull` of the file (the baseline)
//   sync      kml's own sync pull (host/adb pullToFile: hashing, fsync) of the same file
//   snapshot  kml's whole per-snapshot path (host/collect/pull.ts): meta, listing, verified pull
//             into the store, rename, manifest fsync, delete on the device
// Ratios are against the baseline measured in the same run. No pass/fail target: the numbers go
// into the README; the script fails only when a transfer does not verify.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Adb, resolveAdbEndpoint, shq } from '../../host/adb/index.js';
import { AdbDevicePort } from '../../host/collect/adb-port.js';
import { pullSnapshot } from '../../host/collect/pull.js';
import { createLogger } from '../../host/log.js';
import { openRunFor } from '../../host/store/open.js';

const ADB = process.env.KML_ADB ?? '/usr/bin/adb';
const here = path.dirname(fileURLToPath(import.meta.url));
const ADBD_MAIN = path.resolve(here, '..', 'lab', 'adbd', 'main.js');
const FIXTURE = path.resolve(here, '..', '..', '..', 'test', 'fixtures', 'shared', 'kmemleak', 'kmemleak-report-after-rmmod.txt');

const { values: opt } = parseArgs({
  options: {
    size: { type: 'string', default: '16' },
    runs: { type: 'string', default: '5' },
    port: { type: 'string', short: 'P' },
    serial: { type: 'string', short: 's' },
    'agent-dir': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write('Usage: node dist/scripts/bench/collect.js [--size MiB] [--runs N] [-P PORT -s SERIAL --agent-dir DIR] [--json]\n');
  process.exit(0);
}
const sizeMiB = Number(opt.size);
const runs = Number(opt.runs);

function adbCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(ADB, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    c.stderr.on('data', (d: Buffer) => (out += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out }));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function startOwnAdbd(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [ADBD_MAIN, '--port', '0', '--listen', '127.0.0.1', '--reboot-cmd', '', '--log', '/dev/null'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => {
      text += d;
      const m = /adbd listening on [0-9.]+:(\d+)/.exec(text);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`adbd exited (${code}) before listening`)));
  });
  return { child, port };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function main(): Promise<void> {
  let serverPort: number;
  let serial: string;
  let own: { child: ChildProcess; port: number } | undefined;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-bench-collect-'));
  const agentDir = opt['agent-dir'] ?? (opt.serial ? '/data/local/tmp/kml-bench' : path.join(work, 'agent'));
  if (opt.serial) {
    serverPort = Number(opt.port ?? process.env.ANDROID_ADB_SERVER_PORT ?? 5037);
    serial = opt.serial;
  } else {
    serverPort = await freePort();
    const env = { ...process.env, ANDROID_ADB_SERVER_PORT: String(serverPort) };
    if ((await adbCli(['-P', String(serverPort), 'start-server'], env)).code !== 0) throw new Error('adb start-server failed');
    own = await startOwnAdbd();
    serial = `127.0.0.1:${own.port}`;
    const c = await adbCli(['-P', String(serverPort), 'connect', serial], env);
    if (!/connected/.test(c.out)) throw new Error(`adb connect failed: ${c.out}`);
  }
  const env = { ...process.env, ANDROID_ADB_SERVER_PORT: String(serverPort) };
  const log = createLogger({ level: 'silent' });
  const adb = new Adb(resolveAdbEndpoint({ port: serverPort }), { log });
  try {
    await adb.waitForDevice(serial, { timeoutMs: 30_000 });
    // The snapshot's report: the real fixture repeated up to --size MiB (kmemleak text compresses
    // nothing in adb sync, so its content does not matter for throughput).
    const unit = fs.readFileSync(FIXTURE);
    const report = Buffer.concat(Array.from({ length: Math.ceil((sizeMiB * 1048576) / unit.length) }, () => unit)).subarray(0, sizeMiB * 1048576);
    const localReport = path.join(work, 'kmemleak.txt');
    fs.writeFileSync(localReport, report);
    const bootId = (await adb.shellOk(serial, 'cat /proc/sys/kernel/random/boot_id')).trim();
    const meta = `seq=1\nboot_id=${bootId}\nuptime_s=1\nwall_time=${Math.floor(Date.now() / 1000)}\nprotocol=double\nleak_count=22\nhash=sha256\nsize.kmemleak.txt=${report.length}\nsha256.kmemleak.txt=${sha(report)}\n`;
    const snap = `${agentDir}/snapshots/1`;
    const stash = `${agentDir}/stash`;
    await adb.shellOk(serial, `mkdir -p ${shq(stash)} ${shq(`${agentDir}/snapshots`)}`);
    await adb.push(serial, localReport, `${stash}/kmemleak.txt`, { timeoutMs: 300_000 });
    await adb.push(serial, Buffer.from(meta), `${stash}/meta.txt`);
    const publish = () => adb.shellOk(serial, `rm -rf ${shq(snap)} && cp -r ${shq(stash)} ${shq(snap)}`, { timeoutMs: 120_000 });

    const mib = report.length / 1048576;
    const results: Record<string, number[]> = { 'adb-cli': [], sync: [], snapshot: [] };
    for (let i = 0; i < runs; i++) {
      // baseline: the adb CLI
      const dest = path.join(work, `cli-${i}`);
      let t = process.hrtime.bigint();
      const c = await adbCli(['-P', String(serverPort), '-s', serial, 'pull', `${stash}/kmemleak.txt`, dest], env);
      let ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (c.code !== 0 || sha(fs.readFileSync(dest)) !== sha(report)) throw new Error(`adb pull failed: ${c.out}`);
      results['adb-cli'].push(mib / (ms / 1000));
      fs.rmSync(dest);
      // kml's sync pull
      const dest2 = path.join(work, `sync-${i}`);
      t = process.hrtime.bigint();
      const r = await adb.pullToFile(serial, `${stash}/kmemleak.txt`, dest2, { timeoutMs: 300_000 });
      ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (r.sha256 !== sha(report)) throw new Error('kml sync pull did not verify');
      results.sync.push(mib / (ms / 1000));
      fs.rmSync(dest2);
      // kml's whole snapshot path into a fresh store
      await publish();
      const opened = (await openRunFor({ out: path.join(work, `store-${i}`), serial, settings: {}, command: 'bench' }))!;
      const port = new AdbDevicePort({ adb, serial, log, outDir: work, agentDir, skipDoctorWithRoot: 'adbd-root' });
      await port.attach();
      t = process.hrtime.bigint();
      const o = await pullSnapshot({ port, run: opened.run, index: opened.index, log }, 1);
      ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (o.kind !== 'stored') throw new Error(`snapshot not stored: ${JSON.stringify(o)}`);
      results.snapshot.push(mib / (ms / 1000));
    }
    const base = median(results['adb-cli']);
    const rows = Object.entries(results).map(([via, xs]) => ({ via, mibPerSec: Number(median(xs).toFixed(1)), ratio: Number((median(xs) / base).toFixed(2)) }));
    const rss = Math.round(process.memoryUsage().rss / 1048576);
    if (opt.json) {
      process.stdout.write(JSON.stringify({ serial, sizeMiB, runs, results: rows, rssMiB: rss }) + '\n');
    } else {
      process.stdout.write(`pull of a ${sizeMiB} MiB kmemleak.txt from ${serial}, median of ${runs} runs\n`);
      for (const r of rows) process.stdout.write(`  ${r.via.padEnd(9)} ${String(r.mibPerSec).padStart(7)} MiB/s   ×${r.ratio.toFixed(2)} of adb pull\n`);
      process.stdout.write(`  host RSS ${rss} MiB\n`);
    }
  } finally {
    await adb.shell(serial, `rm -rf ${shq(agentDir)}`).catch(() => undefined);
    if (own) {
      await adbCli(['-P', String(serverPort), 'kill-server'], env).catch(() => undefined);
      own.child.kill('SIGTERM');
    }
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench collect: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
