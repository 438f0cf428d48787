// Fuzz target for everything kml parses that a device (or the adb server) sends, except kmemleak
// and /proc samples (targets.ts, memstate.ts): the agent's meta.txt, heartbeat, skipped.log and
// status-probe output (host/device/agent-files.ts), the store's meta reader (host/store/meta.ts),
// doctor's readers (kernel config, cmdline, bootconfig, mounts, kernel log, statfs/df, getprop,
// probe output), the adb server's device list and the shell protocol decoders, and the validators
// device text meets (serials, snapshot names). Nothing may throw except the documented refusals
// (MetaParseError, KmlError), and what comes out must keep the invariants kml relies on when it
// builds paths from device text.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FuzzTarget } from './targets.js';
import {
  isSnapshotFileName, isSnapshotNumber, MetaParseError, parseHeartbeat, parseKeyValues, parseMeta, parseSkipped,
  parseStatusProbe, probeSaysRunning, snapshotNumber,
} from '../../host/device/agent-files.js';
import {
  classifyProbe, configExcerpt, configHz, debugfsMountPoints, evaluateBootParams, evaluateKernelConfig, evaluateKernelLog,
  evaluateProbe, kmemleakBootParam, parseBootconfig, parseCmdline, parseDfK, parseKernelConfig, parseStatFs, scanKernelLog,
} from '../../host/device/doctor-checks.js';
import { parseGetprop } from '../../host/device/doctor.js';
import { metaJson, parseDeviceMeta } from '../../host/store/meta.js';
import { parseDeviceList, stateWord } from '../../host/adb/device-list.js';
import { decodeShellPackets, parseV1Output } from '../../host/adb/shell-protocol.js';
import { parseTcpSerial, shq, validateSerial } from '../../host/adb/quote.js';
import { KmlError } from '../../host/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function filesIn(rel: string, re = /\.txt$/): string[] {
  return fs.readdirSync(path.join(ROOT, rel)).filter((f) => re.test(f)).sort().map((f) => path.join(rel, f));
}

/** Run fn; a throw of one of the allowed classes is a refusal, anything else propagates. */
function refusing<T>(fn: () => T, ...allowed: Array<new (...a: never[]) => Error>): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (allowed.some((c) => e instanceof c)) return undefined;
    throw e;
  }
}

function fail(what: string): never {
  throw new Error(what);
}

export const DEVICE_TARGETS: FuzzTarget[] = [
  {
    name: 'device-text',
    corpus: () => [
      ...filesIn('scripts/fuzz/corpus'),
      ...filesIn('test/fixtures/shared/proc', /^proc-cmdline/),
      ...filesIn('test/fixtures/shared/kmemleak', /^(config|dmesg|boot|kmemleak-error)/),
    ],
    run(text, r) {
      const lines = text.split('\n');
      const someLine = lines[Math.floor(r() * lines.length)] ?? '';

      // agent files: the names and numbers that become paths must stay safe
      const meta = refusing(() => parseMeta(text), MetaParseError);
      if (meta) {
        if (!isSnapshotNumber(meta.seq)) fail(`meta seq ${meta.seq} accepted`);
        for (const f of meta.files) {
          if (!isSnapshotFileName(f.name) || f.name.includes('/') || f.name.includes('..')) fail(`meta file name ${JSON.stringify(f.name)} accepted`);
          if (!(Number.isSafeInteger(f.bytes) && f.bytes >= 0)) fail(`meta size ${f.bytes}`);
        }
        if (!/^[A-Za-z0-9-]{1,64}$/.test(meta.bootId)) fail(`meta boot_id ${JSON.stringify(meta.bootId)} accepted`);
      }
      const hb = parseHeartbeat(text);
      for (const v of [hb.pid, hb.seq, hb.freeKb, hb.nextCycleWall, hb.lastCycleWall]) if (v !== undefined && !Number.isSafeInteger(v)) fail(`heartbeat number ${v}`);
      for (const s of parseSkipped(text)) if (!isSnapshotNumber(s.seq) || !/^[A-Za-z0-9_-]{1,64}$/.test(s.reason)) fail(`skipped entry ${JSON.stringify(s)}`);
      const probe = parseStatusProbe(text);
      probeSaysRunning(probe);
      if (probe.pidfilePid !== undefined && !(Number.isSafeInteger(probe.pidfilePid) && probe.pidfilePid > 0)) fail(`probe pid ${probe.pidfilePid}`);
      parseKeyValues(text);
      const n = snapshotNumber(someLine);
      if (n !== undefined && !isSnapshotNumber(n)) fail(`snapshot name ${JSON.stringify(someLine)} → ${n}`);

      // the store's meta reader and the meta_<N>.json it writes
      const dm = parseDeviceMeta(text);
      if (dm.seq !== null && !(Number.isSafeInteger(dm.seq) && dm.seq >= 0)) fail(`device meta seq ${dm.seq}`);
      for (const v of Object.values(dm.size)) if (!(Number.isSafeInteger(v) || v > Number.MAX_SAFE_INTEGER) || v < 0) fail(`device meta size ${v}`);
      const json = metaJson(dm, text, { serial: 'fuzz' });
      if (JSON.parse(json).raw !== text) fail('meta_<N>.json does not keep the device text verbatim');

      // doctor
      const cfg = parseKernelConfig(text);
      configExcerpt(cfg);
      configHz(cfg);
      evaluateKernelConfig(cfg);
      evaluateKernelConfig(undefined, someLine);
      parseCmdline(text);
      parseBootconfig(text);
      kmemleakBootParam(someLine, text);
      const bootParams = evaluateBootParams(r() < 0.5 ? cfg : undefined, someLine, r() < 0.5 ? text : undefined);
      debugfsMountPoints(text);
      const verdict = classifyProbe(r() < 0.3 ? undefined : Math.floor(r() * 256), text);
      const log = scanKernelLog(text);
      evaluateProbe(verdict, r() < 0.5 ? log : undefined, someLine, bootParams.status);
      evaluateKernelLog(r() < 0.8 ? log : undefined, someLine);
      parseStatFs(text);
      parseDfK(text);
      parseGetprop(text);

      // adb: device list, shell v1 marker, shell v2 packets, serials
      for (const d of parseDeviceList(text)) stateWord(d.state);
      const buf = Buffer.from(text, 'latin1');
      const v1 = parseV1Output(Buffer.concat([buf, Buffer.from(`\n__KML_RC_0a1b2c__${Math.floor(r() * 300)}\n`)]), '0a1b2c');
      // (a trailing CR goes with the marker's line break: pty output ends lines with CR LF)
      if (!v1 || !(v1.stdout.equals(buf) || (buf[buf.length - 1] === 0x0d && v1.stdout.equals(buf.subarray(0, -1))))) fail('shell v1 output not recovered');
      parseV1Output(buf, '0a1b2c');
      const { packets, rest } = decodeShellPackets(buf);
      if (packets.reduce((a, p) => a + 5 + p.data.length, 0) + rest.length !== buf.length) fail('shell v2 packets do not add up');
      parseTcpSerial(someLine);
      refusing(() => validateSerial(someLine), KmlError);
      refusing(() => shq(someLine), KmlError);
    },
  },
];
