// Throughput of our device-side adbd: push/pull MiB/s through adbkit (what kml uses) next to
// the same transfer with the real `adb push/pull` CLI through the same adb server (baseline).
//
//   node dist/scripts/bench/adbd.js                       # our adbd on the host, private server
//   node dist/scripts/bench/adbd.js --size 64 --runs 5
//   node dist/scripts/bench/adbd.js -P 5037 -s 127.0.0.1:5555 --remote-dir /data/local/tmp   # a lab VM
//   ... --json                                            # one JSON object on stdout
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import adbkit from '@devicefarmer/adbkit';
import type { DeviceClient } from '@devicefarmer/adbkit';

const { Adb } = adbkit;
const ADB = process.env.KML_ADB ?? '/usr/bin/adb';
const ADBD_MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'lab', 'adbd', 'main.js');

const USAGE = `Usage: node dist/scripts/bench/adbd.js [--size MiB] [--runs N] [-P PORT -s SERIAL] [--remote-dir DIR] [--json]

Without -s: starts a private adb server and our adbd on the host (loopback), and measures it.
With -P/-s: measures an existing device (e.g. a lab VM) through an existing adb server.
Prints the median MiB/s of push and pull via adbkit and via the adb CLI, and the ratio.`;

interface Result {
  op: 'push' | 'pull';
  via: 'adb-cli' | 'adbkit';
  mibPerSec: number;
  runsMs: number[];
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(ADB, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
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
  const child = spawn(process.execPath, [ADBD_MAIN, '--port', '0', '--listen', '127.0.0.1', '--reboot-cmd', '', '--log', '/dev/null'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /adbd listening on [0-9.]+:(\d+)/.exec(text);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`adbd exited (${code}) before listening`)));
  });
  return { child, port };
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function adbkitPush(device: DeviceClient, local: string, remote: string): Promise<void> {
  const t = await device.push(local, remote);
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    t.on('error', (e: Error) => {
      failed = true;
      reject(e);
    });
    t.on('end', () => !failed && resolve());
  });
}

async function adbkitPull(device: DeviceClient, remote: string, local: string): Promise<void> {
  const t = await device.pull(remote);
  let err: Error | undefined;
  t.on('error', (e: Error) => (err = e));
  await pipeline(t, fs.createWriteStream(local));
  await new Promise((r) => setImmediate(r));
  if (err) throw err;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '64' },
      runs: { type: 'string', default: '3' },
      port: { type: 'string', short: 'P' },
      serial: { type: 'string', short: 's' },
      'remote-dir': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const sizeMiB = Number(values.size);
  const runs = Number(values.runs);
  if (!(sizeMiB > 0) || !(runs >= 1)) throw new Error('--size and --runs must be positive numbers');
  if (Boolean(values.serial) !== Boolean(values.port)) throw new Error('give both -P PORT and -s SERIAL, or neither');

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-bench-adbd-'));
  let ownAdbd: ChildProcess | undefined;
  let serverPort: number;
  let serial: string;
  let ownServer = false;
  try {
    if (values.serial) {
      serverPort = Number(values.port);
      serial = values.serial;
    } else {
      serverPort = await freePort();
      ownServer = true;
      const env = { ...process.env, ANDROID_ADB_SERVER_PORT: String(serverPort) };
      const started = await run(['-P', String(serverPort), 'start-server'], env);
      if (started.code !== 0) throw new Error(`adb start-server failed: ${started.out}`);
      const d = await startOwnAdbd();
      ownAdbd = d.child;
      serial = `127.0.0.1:${d.port}`;
      const c = await run(['-P', String(serverPort), 'connect', serial], env);
      if (!/connected to/.test(c.out)) throw new Error(`adb connect failed: ${c.out}`);
      for (let i = 0; i < 100; i++) {
        if ((await run(['-P', String(serverPort), '-s', serial, 'get-state'], env)).out.trim() === 'device') break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const env = { ...process.env, ANDROID_ADB_SERVER_PORT: String(serverPort) };
    const remoteDir = values['remote-dir'] ?? (values.serial ? '/data/local/tmp' : tmp);
    const local = path.join(tmp, 'payload.bin');
    fs.writeFileSync(local, randomBytes(sizeMiB * 1024 * 1024));
    const want = sha256File(local);
    const client = Adb.createClient({ port: serverPort, bin: ADB });
    client.on('error', () => {});
    const device = client.getDevice(serial);
    const remote = `${remoteDir}/kml-bench-adbd.bin`;
    const back = path.join(tmp, 'back.bin');
    const adb = (args: string[]) => run(['-P', String(serverPort), '-s', serial, ...args], env);

    const results: Result[] = [];
    const measure = async (op: Result['op'], via: Result['via'], once: () => Promise<void>, verify: () => Promise<void>) => {
      const ms: number[] = [];
      for (let i = 0; i < runs; i++) {
        ms.push(await timed(once));
        await verify();
      }
      results.push({ op, via, runsMs: ms, mibPerSec: sizeMiB / (median(ms) / 1000) });
    };
    const verifyRemote = async () => {
      const r = await adb(['exec-out', `sha256sum '${remote}'`]);
      if (!r.out.startsWith(want)) throw new Error(`pushed copy differs: ${r.out.slice(0, 200)}`);
    };
    const verifyLocal = async () => {
      if (sha256File(back) !== want) throw new Error('pulled copy differs');
      fs.rmSync(back);
    };
    await measure('push', 'adb-cli', async () => {
      const r = await adb(['push', local, remote]);
      if (r.code !== 0) throw new Error(`adb push failed: ${r.out}`);
    }, verifyRemote);
    await measure('push', 'adbkit', () => adbkitPush(device, local, remote), verifyRemote);
    await measure('pull', 'adb-cli', async () => {
      const r = await adb(['pull', remote, back]);
      if (r.code !== 0) throw new Error(`adb pull failed: ${r.out}`);
    }, verifyLocal);
    await measure('pull', 'adbkit', () => adbkitPull(device, remote, back), verifyLocal);
    await adb(['shell', `rm -f '${remote}'`]);

    const get = (op: string, via: string) => results.find((r) => r.op === op && r.via === via)!;
    const summary = {
      target: values.serial ? serial : `host adbd ${serial}`,
      adbServerPort: serverPort,
      sizeMiB,
      runs,
      results,
      ratios: {
        pushAdbkitVsCli: get('push', 'adbkit').mibPerSec / get('push', 'adb-cli').mibPerSec,
        pullAdbkitVsCli: get('pull', 'adbkit').mibPerSec / get('pull', 'adb-cli').mibPerSec,
      },
    };
    if (values.json) {
      console.log(JSON.stringify(summary));
    } else {
      console.log(`adbd throughput: ${sizeMiB} MiB random file, median of ${runs} runs, ${summary.target}, adb server :${serverPort}`);
      for (const op of ['push', 'pull'] as const) {
        const cli = get(op, 'adb-cli');
        const kit = get(op, 'adbkit');
        console.log(`  ${op}  adb CLI (baseline) ${cli.mibPerSec.toFixed(1).padStart(7)} MiB/s`);
        console.log(`  ${op}  adbkit             ${kit.mibPerSec.toFixed(1).padStart(7)} MiB/s   = ${(kit.mibPerSec / cli.mibPerSec).toFixed(2)} x baseline`);
      }
    }
  } finally {
    if (ownServer) await run(['-P', String(serverPort!), 'kill-server'], process.env).catch(() => undefined);
    if (ownAdbd && ownAdbd.exitCode === null) {
      ownAdbd.kill('SIGTERM');
      await new Promise((r) => ownAdbd!.once('exit', r));
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench adbd: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
