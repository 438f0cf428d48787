// npm run soak: an overnight run in minutes. Lab devices, kml_leaky leaking, the real `kml collect`
// at a short interval, a seeded fault schedule (adb server killed, cable pulled, reboot, adbd
// killed, kml SIGKILLed, device /data full, host store full), then an independent account of what
// the devices wrote against what the host stored. Exit 1 when anything is lost or duplicated (or
// any other check fails), 2 on bad options.
//
//   npm run soak                                        # 3 devices, 300 cycles, every fault ≥ 3 times
//   npm run soak -- --seed 1234                         # replay a run (the seed is printed up front)
//   node dist/scripts/soak/run.js --devices 1 --cycles 40 --per-kind 1 --json
//   node dist/scripts/soak/run.js --faults unplug,reboot --heavy 1 --out /tmp/soak-x
//
// Why --scan-wait 5: kmemleak reports an object only once it is at least 5 s old (MSECS_MIN_AGE)
// and was seen unreferenced by two scans with an unchanged checksum. The agent's cycle is scan,
// wait, scan, read, clear, back to back at this interval, so with a 5 s wait every object is
// reported by the cycle after the one in which it turned 5 s old: the shortest wait kml allows
// (it refuses less) and one that still gives real leaks in every snapshot.
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FAULT_KINDS, parseFaultList } from './schedule.js';
import { runSoak, type SoakOptions } from './soak.js';
import type { LabBuild } from '../../host/lab/guest-config.js';
import { renderSchedule, renderSummary } from './table.js';

const USAGE = `Usage: npm run soak -- [options]   (or node dist/scripts/soak/run.js [options])

  --devices N       lab devices (default 3)
  --cycles N        snapshot cycles per device, at least (default 300)
  --interval S      kml collect --interval (default 2)
  --scan-wait S     kml collect --scan-wait (default 5, the shortest kmemleak allows)
  --seed N          fault schedule seed (default: random, printed)
  --faults LIST     comma list of ${FAULT_KINDS.join(', ')} (default all)
  --per-kind N      every fault kind fires at least N times (default 3)
  --heavy I         index of the heavily faulted device (default 0); the others only see host faults
  --heavy-build B   root on the heavy device as on a B build (kml lab up --build): userdebug (default:
                    adbd is not root, every reboot undoes adb root) or userdebug-root
  --leak-rate N     kml_leaky objects per second (default 20)
  --out DIR         work folder: logs, ledgers, summary.json (default a new /tmp/kml-soak-*)
  --keep-store      copy the store out of its tmpfs before unmounting (always done on failure)
  --json            print the summary as JSON on stdout (progress stays on stderr)

Exit: 0 nothing lost or duplicated and every check passed, 1 a check failed, 2 usage.`;

function int(name: string, v: string | undefined, def: number, min = 1): number {
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < min) {
    process.stderr.write(`soak: ${name} must be a whole number ≥ ${min}, got ${JSON.stringify(v)}\n${USAGE}\n`);
    process.exit(2);
  }
  return Number(v);
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        devices: { type: 'string' }, cycles: { type: 'string' }, interval: { type: 'string' }, 'scan-wait': { type: 'string' },
        seed: { type: 'string' }, faults: { type: 'string' }, 'per-kind': { type: 'string' }, heavy: { type: 'string' }, 'heavy-build': { type: 'string' },
        'leak-rate': { type: 'string' }, out: { type: 'string' }, 'keep-store': { type: 'boolean' }, json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`soak: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  let faults;
  try {
    faults = parseFaultList(values.faults ?? 'all');
  } catch (e) {
    process.stderr.write(`soak: --faults: ${(e as Error).message}\n`);
    return 2;
  }
  const scanWait = int('--scan-wait', values['scan-wait'], 5);
  if (scanWait < 5) {
    process.stderr.write('soak: --scan-wait must be ≥ 5 (kmemleak reports nothing younger than 5 s)\n');
    return 2;
  }
  const heavyBuild = (values['heavy-build'] ?? 'userdebug') as LabBuild;
  if (heavyBuild !== 'userdebug' && heavyBuild !== 'userdebug-root') {
    process.stderr.write(`soak: --heavy-build must be userdebug or userdebug-root, got ${JSON.stringify(heavyBuild)}\n`);
    return 2;
  }
  const seed = values.seed !== undefined ? int('--seed', values.seed, 0, 0) : randomInt(1, 2 ** 31 - 1);
  const out = values.out ?? fs.mkdtempSync(path.join(os.tmpdir(), `kml-soak-${seed}-`));
  const opts: SoakOptions = {
    devices: int('--devices', values.devices, 3),
    cycles: int('--cycles', values.cycles, 300),
    intervalS: int('--interval', values.interval, 2),
    scanWaitS: scanWait,
    seed,
    faults,
    perKind: int('--per-kind', values['per-kind'], 3, 0),
    heavy: int('--heavy', values.heavy, 0, 0),
    heavyBuild,
    out,
    leakRate: int('--leak-rate', values['leak-rate'], 20),
    dataSizeMb: 256,
    memMb: 512,
    storeMb: 2048,
    keepStore: Boolean(values['keep-store']),
    say: (line) => process.stderr.write(`soak: ${line}\n`),
    replay: '',
  };
  opts.replay = `npm run soak -- --seed ${seed} --devices ${opts.devices} --cycles ${opts.cycles} --interval ${opts.intervalS} --scan-wait ${opts.scanWaitS} ` +
    `--faults ${faults.join(',')} --per-kind ${opts.perKind} --heavy ${opts.heavy} --heavy-build ${heavyBuild} --leak-rate ${opts.leakRate}`;
  process.stderr.write(`soak: seed ${seed}, work folder ${out}\n`);

  const ac = new AbortController();
  opts.signal = ac.signal;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`soak: ${sig} again: quitting now (lab devices stop when their owner is gone)\n`);
      process.exit(130);
    }
    process.stderr.write(`soak: ${sig}: stopping and cleaning up (${sig} again to quit at once)\n`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const summary = await runSoak(opts);
  fs.writeFileSync(path.join(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  const text = renderSummary(summary) + '\n' + renderSchedule(summary);
  fs.writeFileSync(path.join(out, 'summary.txt'), text);
  if (values.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  else process.stdout.write(text);
  process.stderr.write(`soak: summary in ${path.join(out, 'summary.json')} and summary.txt\n`);
  return summary.ok ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => {
  if ((e as Error)?.message === 'soak interrupted') {
    process.stderr.write('soak: interrupted; lab devices, adb server and mounts cleaned up\n');
    process.exit(130);
  }
  process.stderr.write(`soak: failed: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
