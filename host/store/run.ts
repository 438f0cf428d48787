// A run: one folder <out>/<serial-safe>/<run-id>/ holding run.json, manifest.jsonl, kml.log and
// the boot segments. Creating, resuming and closing runs lives here.
//
// Resume rule (documented in README, "Resuming"): `kml collect`/`kml pull`/`kml stop` continue the LATEST
// run of that serial under --out when that run was not closed, i.e. it has no `ended` record with
// clean=true. A run is closed cleanly by `--count`/`--duration` reached, Ctrl-C/SIGTERM, or
// `kml stop`, each after a final pull that left nothing on the device. A collector killed with
// SIGKILL, a host crash, `--detach`, or a final pull that could not finish leave it open.
// `--resume RUN_DIR` names a run explicitly; `--new-run` always starts a fresh one.
// Whether its collector is still alive is the lock's business (lock.ts), checked before this.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ExitCode, KmlError, ioError } from '../errors.js';
import { KML_VERSION } from '../version.js';
import { mkdirDurable, removeStaleTemps, writeFileAtomic } from './durable.js';
import { MANIFEST, RUN_ID_RE, RUN_JSON, deviceDirOf, newRunId, serialSafe } from './layout.js';
import { readManifest, repairManifest, type ManifestEntry } from './manifest.js';

export const RUN_SCHEMA_VERSION = 1;

export interface RunEnd {
  at: string;
  reason: 'count' | 'duration' | 'signal' | 'stop' | 'pull' | 'error';
  /** True when the final pull emptied the device and the agent was stopped: the run is closed. */
  clean: boolean;
  message?: string;
}

export interface RunJson {
  schemaVersion: 1;
  runId: string;
  serial: string;
  serialSafe: string;
  kmlVersion: string;
  started: string;
  host: { hostname: string; pid: number; platform: string };
  /** Collection settings. */
  intervalS: number | null;
  scanProtocol: string | null;
  scanWaitS: number | null;
  count: number | null;
  durationS: number | null;
  /** What doctor found: props, kernel version, cmdline, config excerpt, root method, ... */
  device: Record<string, unknown>;
  /** Boot segments seen, in order. */
  boots: { bootId: string; firstSeen: string }[];
  /**
   * Lines the device agent's skipped.log already held when this run began (earlier runs' skipped
   * cycles); later lines are this run's and are copied into skipped.jsonl.
   */
  agentSkippedBaseline?: number;
  /** Every time a collector (re)opened this run. */
  sessions: { at: string; pid: number; command: string; resumed: boolean }[];
  ended?: RunEnd;
}

export interface OpenRun {
  dir: string;
  json: RunJson;
  manifestPath: string;
  entries: ManifestEntry[];
  /** What opening found and fixed: leftover temp files, a torn manifest line, bad lines. */
  recovered: { tempsRemoved: string[]; tornManifestLine?: { line: number; text: string }; badManifestLines: number };
}

export interface RunSettings {
  intervalS?: number | null;
  scanProtocol?: string | null;
  scanWaitS?: number | null;
  count?: number | null;
  durationS?: number | null;
  device?: Record<string, unknown>;
  command?: string;
}

export async function readRunJson(dir: string): Promise<RunJson> {
  const file = path.join(dir, RUN_JSON);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw ioError(`reading ${file}`, e);
  }
  let o: RunJson;
  try {
    o = JSON.parse(text) as RunJson;
  } catch {
    throw new KmlError(ExitCode.IO, `${file} is not valid JSON`, { hint: 'the run folder is damaged; start a new run with --new-run' });
  }
  if (o?.schemaVersion !== RUN_SCHEMA_VERSION) {
    throw new KmlError(ExitCode.IO, `${file}: unsupported schemaVersion ${JSON.stringify(o?.schemaVersion)}`);
  }
  return o;
}

export async function writeRunJson(dir: string, json: RunJson): Promise<void> {
  await writeFileAtomic(path.join(dir, RUN_JSON), JSON.stringify(json, null, 2) + '\n');
}

/** Run ids of one serial under `out`, oldest first. */
export async function listRuns(out: string, serial: string): Promise<string[]> {
  try {
    const names = await fs.readdir(deviceDirOf(out, serial));
    return names.filter((n) => RUN_ID_RE.test(n)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw ioError(`listing runs in ${deviceDirOf(out, serial)}`, e);
  }
}

export function isClosed(json: RunJson): boolean {
  return Boolean(json.ended?.clean);
}

/** The run a rerun should continue (see the rule at the top of this file), or undefined. */
export async function findResumableRun(out: string, serial: string): Promise<string | undefined> {
  const runs = await listRuns(out, serial);
  for (let i = runs.length - 1; i >= 0; i--) {
    const dir = path.join(deviceDirOf(out, serial), runs[i]);
    let json: RunJson;
    try {
      json = await readRunJson(dir);
    } catch {
      continue; // a run folder whose run.json never became durable: not resumable, look further back
    }
    if (json.serial !== serial) continue;
    return isClosed(json) ? undefined : dir;
  }
  return undefined;
}

export async function createRun(out: string, serial: string, settings: RunSettings, now = new Date()): Promise<OpenRun> {
  const dir = path.join(deviceDirOf(out, serial), newRunId(now));
  try {
    await mkdirDurable(dir);
  } catch (e) {
    throw ioError(`creating run folder ${dir}`, e);
  }
  const json: RunJson = {
    schemaVersion: RUN_SCHEMA_VERSION,
    runId: path.basename(dir),
    serial,
    serialSafe: serialSafe(serial),
    kmlVersion: KML_VERSION,
    started: now.toISOString(),
    host: { hostname: os.hostname(), pid: process.pid, platform: `${process.platform} node ${process.version}` },
    intervalS: settings.intervalS ?? null,
    scanProtocol: settings.scanProtocol ?? null,
    scanWaitS: settings.scanWaitS ?? null,
    count: settings.count ?? null,
    durationS: settings.durationS ?? null,
    device: settings.device ?? {},
    boots: [],
    sessions: [{ at: now.toISOString(), pid: process.pid, command: settings.command ?? '', resumed: false }],
  };
  try {
    await writeRunJson(dir, json);
  } catch (e) {
    throw ioError(`writing ${path.join(dir, RUN_JSON)}`, e);
  }
  return { dir, json, manifestPath: path.join(dir, MANIFEST), entries: [], recovered: { tempsRemoved: [], badManifestLines: 0 } };
}

/**
 * Reopen an existing run: remove crash leftovers (temp files), cut a torn manifest line, load the
 * manifest, record the session. Settings given explicitly replace the recorded ones.
 */
export async function openRun(dir: string, settings: RunSettings = {}, now = new Date()): Promise<OpenRun> {
  const json = await readRunJson(dir);
  const manifestPath = path.join(dir, MANIFEST);
  let tempsRemoved: string[];
  let torn: { line: number; text: string } | undefined;
  try {
    tempsRemoved = await removeStaleTemps(dir);
    torn = await repairManifest(manifestPath);
  } catch (e) {
    throw ioError(`recovering run folder ${dir}`, e);
  }
  const read = await readManifest(manifestPath);
  for (const [k, v] of Object.entries(settings)) {
    if (k === 'command' || v === undefined) continue;
    if (k === 'device') json.device = { ...json.device, ...(v as Record<string, unknown>) };
    else (json as unknown as Record<string, unknown>)[k] = v;
  }
  json.sessions.push({ at: now.toISOString(), pid: process.pid, command: settings.command ?? '', resumed: true });
  delete json.ended;
  await writeRunJson(dir, json);
  return {
    dir,
    json,
    manifestPath,
    entries: read.entries,
    recovered: { tempsRemoved, tornManifestLine: torn, badManifestLines: read.bad.length },
  };
}

/** Record a boot segment the first time it is seen. */
export async function noteBoot(run: OpenRun, bootId: string, now = new Date()): Promise<boolean> {
  if (run.json.boots.some((b) => b.bootId === bootId)) return false;
  run.json.boots.push({ bootId, firstSeen: now.toISOString() });
  await writeRunJson(run.dir, run.json);
  return true;
}

export async function endRun(run: OpenRun, end: Omit<RunEnd, 'at'>, now = new Date()): Promise<void> {
  run.json.ended = { at: now.toISOString(), ...end };
  await writeRunJson(run.dir, run.json);
}

/** Manifest entries of every run of this serial under `out` (the store-wide exactly-once index). */
export async function entriesOfAllRuns(out: string, serial: string): Promise<ManifestEntry[]> {
  const all: ManifestEntry[] = [];
  for (const id of await listRuns(out, serial)) {
    const r = await readManifest(path.join(deviceDirOf(out, serial), id, MANIFEST));
    all.push(...r.entries.filter((e) => e.serial === serial));
  }
  return all;
}
