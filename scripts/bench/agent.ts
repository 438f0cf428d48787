// CPU cost of one agent cycle on the device, next to its parts measured in the same run:
// a bare `cat` of the kmemleak file (the baseline), a bare `echo scan` (the kernel's scan, which
// runs in the writer's context and so is billed to whoever writes it), and the seed's loop.
//
//   node dist/scripts/bench/agent.js                            # boot a lab device, measure, tear it down (= --lab)
//   node dist/scripts/bench/agent.js -P 5037 -s 127.0.0.1:5555   # an existing device (lab or phone, rooted)
//   ... --cycles 3 --repeat 3 --json
//
// How: each measured command runs in the foreground under a wrapper `sh -c 'CMD; cat /proc/$$/stat'`;
// the wrapper's utime+stime+cutime+cstime (fields 14-17) is the CPU of CMD: its builtins (an
// `echo scan` runs the kernel's scan in the writer's context) and every child it waited for, in
// clock ticks (CLK_TCK, usually 100 → 10 ms resolution; hence several cycles/repeats).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Adb, asRoot, ensureRoot, resolveAdbEndpoint, type RootMethod, shq } from '../../host/adb/index.js';
import { AgentControl, agentArgs } from '../../host/device/agent.js';
import { createLogger } from '../../host/log.js';
import { DEFAULT_UP, labDown, labLeak, labUp, type LabContext } from '../../host/lab/lab.js';

const USAGE = `Usage: node dist/scripts/bench/agent.js [--lab | -s SERIAL [-P PORT]] [--cycles N] [--repeat ROUNDS] [--leak-rate R] [--json]

Without -s it boots a private lab device (kml_leaky at --leak-rate objects/s) and tears it down.

Measures, on the device, the CPU time (user+system, children included) of:
  cat      a bare \`cat /sys/kernel/debug/kmemleak > /dev/null\`   (baseline)
  scan     a bare \`echo scan > /sys/kernel/debug/kmemleak\`
  seed     the seed's loop body: cat > file; echo clear; echo scan
  double   one kml-agent.sh cycle, double-scan protocol (scan, 5 s, scan, read, samples, meta, clear)
  agent-seed  one kml-agent.sh cycle, --protocol seed
and prints each per cycle/run, with ratios to the bare cat and to the kernel work (2 scans + cat).`;

const KMEMLEAK = '/sys/kernel/debug/kmemleak';

interface Measure { name: string; runs: number; totalTicks: number; msPerRun: number; wallMsPerRun: number }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return 0;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
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

/** utime+stime+cutime+cstime of the wrapper shell after CMD, in ticks. */
function parseTicks(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state): field n is rest[n - 3]; utime 14, stime 15, cutime 16, cstime 17.
  const t = [11, 12, 13, 14].map((i) => Number(rest[i]));
  if (t.some((x) => !Number.isFinite(x))) throw new Error(`unexpected /proc/PID/stat: ${stat}`);
  return t.reduce((a, b) => a + b, 0);
}

async function measure(adb: Adb, serial: string, root: RootMethod, name: string, cmd: string, runs: number, tickMs: number): Promise<Measure> {
  const inner = `${cmd}; cat /proc/$$/stat`;
  const t0 = Date.now();
  const out = await adb.shellOk(serial, asRoot(root, `sh -c ${shq(inner)}`), { timeoutMs: 30 * 60_000 });
  const wall = Date.now() - t0;
  const line = out.trim().split('\n').pop() ?? '';
  const ticks = parseTicks(line);
  return { name, runs, totalTicks: ticks, msPerRun: (ticks * tickMs) / runs, wallMsPerRun: wall / runs };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      lab: { type: 'boolean', default: false },
      serial: { type: 'string', short: 's' },
      port: { type: 'string', short: 'P' },
      cycles: { type: 'string', default: '3' },
      repeat: { type: 'string', default: '3' },
      'leak-rate': { type: 'string', default: '5' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (!values.serial) values.lab = true;
  const cycles = Number(values.cycles);
  const repeat = Number(values.repeat);
  if (!Number.isInteger(cycles) || cycles < 1 || !Number.isInteger(repeat) || repeat < 1) throw new Error('--cycles and --repeat must be whole numbers >= 1');

  let serial = values.serial;
  let port = values.port ? Number(values.port) : undefined;
  let labCtx: LabContext | undefined;
  let stateDir: string | undefined;
  let ownServerPort: number | undefined;
  try {
    if (values.lab) {
      port ??= ownServerPort = await freePort();
      stateDir = mkdtempSync(path.join(os.tmpdir(), 'kml-bench-agent-'));
      labCtx = {
        adbPort: port,
        stateRoot: path.join(stateDir, 'lab'),
        env: { ...process.env, ANDROID_ADB_SERVER_PORT: String(port), KML_STATE_DIR: stateDir },
        log: createLogger({ level: 'info', file: path.join(stateDir, 'lab.log'), pretty: false }),
        progress: process.stderr,
      };
      const [dev] = await labUp(labCtx, { ...DEFAULT_UP, count: 1, dataSizeMb: 256 });
      serial = dev.serial;
      await labLeak(labCtx, serial, { rate: Number(values['leak-rate']), paths: 7 });
      await new Promise((r) => setTimeout(r, 8_000)); // let leaks age past MSECS_MIN_AGE (kml_leaky keeps leaking)
    }
    const adb = new Adb(resolveAdbEndpoint({ port }));
    const root = await ensureRoot(adb, serial!);
    const dir = '/data/local/tmp/kml-bench';
    const agent = new AgentControl(adb, serial!, { root, dir });
    await agent.install();
    const tck = Number((await adb.shell(serial!, 'getconf CLK_TCK 2>/dev/null || echo 100')).stdout.trim()) || 100;
    const tickMs = 1000 / tck;
    await adb.shellOk(serial!, asRoot(root, `echo scan=off > ${KMEMLEAK}; mkdir -p ${shq(dir)}`), { timeoutMs: 60_000 });

    const script = shq(`${dir}/kml-agent.sh`);
    const agentRun = (protocol: 'double' | 'seed') =>
      `rm -rf ${shq(dir)}/snapshots ${shq(dir)}/seq; sh ${script} ${agentArgs(dir, { interval: 1, protocol, count: cycles }).map(shq).join(' ')} >/dev/null 2>&1`;
    const names = ['cat', 'scan', 'double', 'seed', 'agent-seed'] as const;
    const cpu: Record<(typeof names)[number], number[]> = { cat: [], scan: [], double: [], seed: [], 'agent-seed': [] };
    const wall: Record<(typeof names)[number], number[]> = { cat: [], scan: [], double: [], seed: [], 'agent-seed': [] };
    const catBytes: number[] = [];
    const agentBytes: number[] = [];
    const record = (name: (typeof names)[number], m: Measure) => {
      cpu[name].push(m.msPerRun);
      wall[name].push(m.wallMsPerRun);
    };
    // Rounds of the same sequence, so leaks that keep growing weigh on every measure alike; each
    // read (bare cat or agent) sees what was reported since the previous clear.
    for (let round = 0; round < repeat; round++) {
      // The baseline cat reads a report made the way the agent makes one (scan, 5 s, scan).
      await adb.shellOk(serial!, asRoot(root, `echo scan > ${KMEMLEAK}; sleep 5; echo scan > ${KMEMLEAK}`), { timeoutMs: 300_000 });
      record('cat', await measure(adb, serial!, root, 'cat', `cat ${KMEMLEAK} > ${shq(`${dir}/cat.txt`)}`, 1, tickMs));
      catBytes.push(Number((await adb.shellOk(serial!, asRoot(root, `wc -c < ${shq(`${dir}/cat.txt`)}; echo clear > ${KMEMLEAK}`))).trim()));
      record('scan', await measure(adb, serial!, root, 'scan', `echo scan > ${KMEMLEAK}`, 1, tickMs));
      record('double', await measure(adb, serial!, root, 'double', agentRun('double'), cycles, tickMs));
      const last = Math.max(...(await agent.listComplete()));
      agentBytes.push((await agent.readMeta(last)).kmemleakBytes ?? 0);
      record('seed', await measure(adb, serial!, root, 'seed', `cat ${KMEMLEAK} > ${shq(`${dir}/seed.txt`)}; echo clear > ${KMEMLEAK}; echo scan > ${KMEMLEAK}`, 1, tickMs));
      record('agent-seed', await measure(adb, serial!, root, 'agent-seed', agentRun('seed'), cycles, tickMs));
      process.stderr.write(`round ${round + 1}/${repeat}: ${names.map((n) => `${n} ${cpu[n][round].toFixed(0)} ms`).join(', ')}\n`);
    }
    await adb.shell(serial!, asRoot(root, `rm -rf ${shq(dir)}`));

    const by = Object.fromEntries(names.map((n) => [n, { cpuMs: median(cpu[n]), wallMs: median(wall[n]), runs: cpu[n] }])) as Record<(typeof names)[number], { cpuMs: number; wallMs: number; runs: number[] }>;
    const kernelWork = 2 * by.scan.cpuMs + by.cat.cpuMs;
    const floor = tickMs / 2; // below one tick a ratio means nothing
    const summary = {
      serial,
      clockTickMs: tickMs,
      cycles,
      rounds: repeat,
      catBytesMedian: median(catBytes),
      agentReportBytesMedian: median(agentBytes),
      results: by,
      ratios: {
        doubleVsCat: by.double.cpuMs / Math.max(by.cat.cpuMs, floor),
        doubleVsKernelWork: by.double.cpuMs / Math.max(kernelWork, floor),
        agentSeedVsSeedLoop: by['agent-seed'].cpuMs / Math.max(by.seed.cpuMs, floor),
      },
      agentOverheadMsPerCycle: by.double.cpuMs - kernelWork,
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    } else {
      const lines = [
        `device ${serial}; CLK_TCK ${tck} (${tickMs} ms/tick); ${repeat} rounds, agent runs of ${cycles} cycles`,
        `report read: bare cat ${summary.catBytesMedian} bytes, agent ${summary.agentReportBytesMedian} bytes (medians)`,
        'what (median per run/cycle)   CPU ms   wall ms',
        ...names.map((n) => `${n.padEnd(28)} ${by[n].cpuMs.toFixed(0).padStart(6)}   ${by[n].wallMs.toFixed(0).padStart(7)}`),
        '',
        `agent double cycle / bare cat:                  ${summary.ratios.doubleVsCat.toFixed(1)}x`,
        `agent double cycle / kernel work (2 scans+cat): ${summary.ratios.doubleVsKernelWork.toFixed(2)}x`,
        `agent overhead beyond the kernel work:          ${summary.agentOverheadMsPerCycle.toFixed(0)} ms CPU per cycle`,
        `agent seed cycle / seed loop body:              ${summary.ratios.agentSeedVsSeedLoop.toFixed(1)}x`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
  } finally {
    if (labCtx) await labDown(labCtx, []).catch((e) => process.stderr.write(`lab down failed: ${(e as Error).message}\n`));
    if (ownServerPort !== undefined) {
      try {
        execFileSync(process.env.KML_ADB ?? 'adb', ['-P', String(ownServerPort), 'kill-server'], { stdio: 'ignore' });
      } catch { /* already gone */ }
    }
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench agent: ${(e as Error).message}\n`);
  process.exit(1);
});
