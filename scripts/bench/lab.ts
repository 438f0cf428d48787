// Lab benchmark: kernel build time (cold, cached), boot-to-`device`, reboot-to-`device`, kmemleak scan
// time, and push/pull throughput through the same private adb server:
//   - the real `adb push/pull` CLI to the lab device (the baseline),
//   - kml's path (adbkit sync) to the lab device,
//   - the `adb push/pull` CLI to our adbd running on the host, no VM (what the VM costs).
// Ratios are against the baseline measured in the same run.
//
//   node dist/scripts/bench/lab.js [--json] [--size-mb 20] [--cold]
//   --cold  also time a cold kernel build in a temporary cache (about 6+ minutes on 2 cores);
//           without it the cold time is the one recorded by the last cold build on this machine.
import adbkit from '@devicefarmer/adbkit';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseKeyValues } from '../../host/lab/artifacts.js';
import { BUILD_KERNEL_SCRIPT, cacheRoot } from '../../host/lab/paths.js';
import { labReboot } from '../../host/lab/lab.js';
import { startLabDevice } from '../../test/helpers/lab.js';
import { startAdbServer, type AdbServer } from '../../test/helpers/adb-server.js';
import { startHostAdbd } from '../../test/helpers/host-adbd.js';

const { Adb } = adbkit;
const args = process.argv.slice(2);
const json = args.includes('--json');
const cold = args.includes('--cold');
const sizeMb = Number(args[args.indexOf('--size-mb') + 1]) || 20;

const results: Record<string, number | string | null> = {};
const say = (line: string) => {
  if (!json) process.stdout.write(line + '\n');
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function timeCommand(cmd: string, cmdArgs: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, cmdArgs, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} ${cmdArgs.join(' ')} exited ${code}: ${err}`));
      resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    });
  });
}

async function kernelTimes(): Promise<void> {
  const cachedMs = await timeCommand('bash', [BUILD_KERNEL_SCRIPT]);
  results.kernel_cached_s = +(cachedMs / 1000).toFixed(2);
  if (cold) {
    const tmpCache = mkdtempSync(path.join(os.tmpdir(), 'kml-bench-cache-'));
    try {
      const ms = await timeCommand('bash', [BUILD_KERNEL_SCRIPT], { ...process.env, KML_CACHE_DIR: tmpCache, KML_LAB_KEEP_TREE: '0' });
      results.kernel_cold_s = +(ms / 1000).toFixed(1);
      results.kernel_cold_source = 'measured now';
    } finally {
      rmSync(tmpCache, { recursive: true, force: true });
    }
  } else {
    try {
      const env = parseKeyValues(readFileSync(path.join(cacheRoot(), 'lab', 'last-cold-build.env'), 'utf8'));
      results.kernel_cold_s = Number(env.total_s);
      results.kernel_cold_source = `recorded ${env.built_at} (jobs=${env.jobs})`;
    } catch {
      results.kernel_cold_s = null;
      results.kernel_cold_source = 'no cold build recorded; run with --cold';
    }
  }
  say(`kernel build: cold ${results.kernel_cold_s ?? '?'} s (${results.kernel_cold_source}), cached ${results.kernel_cached_s} s`);
}

interface Throughput {
  pushMiBs: number;
  pullMiBs: number;
}

async function cliTransfer(server: AdbServer, serial: string, local: string, back: string, sha: string): Promise<Throughput> {
  const remote = '/data/local/tmp/kml-bench.bin';
  const t0 = Date.now();
  const push = await server.adb(['-s', serial, 'push', local, remote], { timeoutMs: 300_000 });
  const pushMs = Date.now() - t0;
  if (push.code !== 0) throw new Error(`adb push failed: ${push.stderr}`);
  const t1 = Date.now();
  const pull = await server.adb(['-s', serial, 'pull', remote, back], { timeoutMs: 300_000 });
  const pullMs = Date.now() - t1;
  if (pull.code !== 0) throw new Error(`adb pull failed: ${pull.stderr}`);
  if (createHash('sha256').update(readFileSync(back)).digest('hex') !== sha) throw new Error('adb pull: content differs');
  await server.adb(['-s', serial, 'shell', `rm -f ${remote}`]);
  return { pushMiBs: sizeMb / (pushMs / 1000), pullMiBs: sizeMb / (pullMs / 1000) };
}

async function adbkitTransfer(port: number, serial: string, local: string, back: string, sha: string): Promise<Throughput> {
  const device = Adb.createClient({ host: '127.0.0.1', port }).getDevice(serial);
  const remote = '/data/local/tmp/kml-bench-kit.bin';
  const t0 = Date.now();
  const transfer = await device.push(createReadStream(local), remote);
  await new Promise<void>((resolve, reject) => {
    transfer.once('end', () => resolve());
    transfer.once('error', reject);
  });
  const pushMs = Date.now() - t0;
  const t1 = Date.now();
  const pull = await device.pull(remote);
  await pipeline(pull, createWriteStream(back));
  const pullMs = Date.now() - t1;
  if (createHash('sha256').update(readFileSync(back)).digest('hex') !== sha) throw new Error('adbkit pull: content differs');
  return { pushMiBs: sizeMb / (pushMs / 1000), pullMiBs: sizeMb / (pullMs / 1000) };
}

async function main(): Promise<void> {
  await kernelTimes();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kml-bench-lab-'));
  const local = path.join(tmp, 'blob.bin');
  const back = path.join(tmp, 'blob.back');
  const data = randomBytes(sizeMb * 1024 * 1024);
  writeFileSync(local, data);
  const sha = createHash('sha256').update(data).digest('hex');
  const server = await startAdbServer();
  try {
    const lab = await startLabDevice({ server, kmemleak: true });
    try {
      results.boot_to_device_ms = lab.device.bootToDeviceMs ?? null;
      results.boot_to_adbd_listening_ms = lab.device.lastBootMs ?? null;
      say(`boot: up to \`adb shell echo\` working ${lab.device.bootToDeviceMs} ms (QEMU start to adbd listening ${lab.device.lastBootMs} ms)`);

      // Scan: round trip of `echo scan > kmemleak` minus the round trip of a no-op, medians of 5.
      const rt = async (cmd: string) => {
        const t0 = Date.now();
        const r = await lab.sh(cmd);
        if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr}`);
        return Date.now() - t0;
      };
      const noop: number[] = [];
      const scans: number[] = [];
      for (let i = 0; i < 5; i++) {
        noop.push(await rt('true'));
        scans.push(await rt('echo scan > /sys/kernel/debug/kmemleak'));
      }
      results.adb_shell_roundtrip_ms = median(noop);
      results.scan_ms = median(scans) - median(noop);
      say(`kmemleak scan: ${results.scan_ms} ms (shell round trip ${results.adb_shell_roundtrip_ms} ms subtracted)`);

      const cli = await cliTransfer(server, lab.serial, local, back, sha);
      const kit = await adbkitTransfer(server.port, lab.serial, local, back, sha);
      results.lab_cli_push_MiBs = +cli.pushMiBs.toFixed(1);
      results.lab_cli_pull_MiBs = +cli.pullMiBs.toFixed(1);
      results.lab_adbkit_push_MiBs = +kit.pushMiBs.toFixed(1);
      results.lab_adbkit_pull_MiBs = +kit.pullMiBs.toFixed(1);
      results.lab_adbkit_vs_cli_push = +(kit.pushMiBs / cli.pushMiBs).toFixed(2);
      results.lab_adbkit_vs_cli_pull = +(kit.pullMiBs / cli.pullMiBs).toFixed(2);
      say(`lab device, ${sizeMb} MiB: adb CLI push ${results.lab_cli_push_MiBs} MiB/s, pull ${results.lab_cli_pull_MiBs} MiB/s (baseline)`);
      say(`lab device, ${sizeMb} MiB: adbkit  push ${results.lab_adbkit_push_MiBs} MiB/s (x${results.lab_adbkit_vs_cli_push}), pull ${results.lab_adbkit_pull_MiBs} MiB/s (x${results.lab_adbkit_vs_cli_pull})`);

      const r = await labReboot(lab.ctx, lab.serial);
      results.reboot_to_device_ms = r.rebootToDeviceMs;
      say(`reboot: to \`adb shell echo\` working again ${r.rebootToDeviceMs} ms`);
    } finally {
      await lab.stop();
    }

    // Our adbd on the host (no VM) through the same server: the transport's own speed.
    const hostd = await startHostAdbd(server, { args: ['--reboot-cmd', ''] });
    try {
      const host = await hostCliTransfer(server, hostd.serial, local, back, sha, tmp);
      results.host_adbd_cli_push_MiBs = +host.pushMiBs.toFixed(1);
      results.host_adbd_cli_pull_MiBs = +host.pullMiBs.toFixed(1);
      say(`our adbd on the host (no VM): adb CLI push ${results.host_adbd_cli_push_MiBs} MiB/s, pull ${results.host_adbd_cli_pull_MiBs} MiB/s`);
      if (typeof results.lab_cli_push_MiBs === 'number') {
        results.lab_vs_host_push = +(results.lab_cli_push_MiBs / host.pushMiBs).toFixed(2);
        results.lab_vs_host_pull = +((results.lab_cli_pull_MiBs as number) / host.pullMiBs).toFixed(2);
      }
    } finally {
      await hostd.stop();
    }
  } finally {
    await server.kill();
    rmSync(tmp, { recursive: true, force: true });
  }
  results.host = `${os.cpus().length} CPU ${os.cpus()[0]?.model ?? ''}`.trim();
  results.qemu = execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  results.size_mib = sizeMb;
  results.host_load_avg = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  if (json) process.stdout.write(JSON.stringify({ bench: 'lab', ...results }) + '\n');
}

async function hostCliTransfer(server: AdbServer, serial: string, local: string, back: string, sha: string, dir: string): Promise<Throughput> {
  const remote = path.join(dir, 'remote.bin');
  const t0 = Date.now();
  const push = await server.adb(['-s', serial, 'push', local, remote], { timeoutMs: 300_000 });
  const pushMs = Date.now() - t0;
  if (push.code !== 0) throw new Error(`adb push (host adbd) failed: ${push.stderr}`);
  const t1 = Date.now();
  const pull = await server.adb(['-s', serial, 'pull', remote, back], { timeoutMs: 300_000 });
  const pullMs = Date.now() - t1;
  if (pull.code !== 0) throw new Error(`adb pull (host adbd) failed: ${pull.stderr}`);
  if (createHash('sha256').update(readFileSync(back)).digest('hex') !== sha) throw new Error('host adbd pull: content differs');
  return { pushMiBs: sizeMb / (pushMs / 1000), pullMiBs: sizeMb / (pullMs / 1000) };
}

main().catch((e) => {
  process.stderr.write(`bench lab: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
