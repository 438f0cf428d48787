// Finding the snapshots of a run on disk (the I/O edge of the analysis). Three inputs:
// - kml's store run dir: run.json, manifest.jsonl, boot-<id>/kmemleak_log_<N>.txt + meta_<N>.json
//   + mem_<N>/ + kmsg_<N>.txt (contract in the brief; writer in host/store);
// - a plain folder of kmemleak_log_<N>.txt (the seed's /sdcard output), ordered by N; a store's
//   boot-<id>/ folder is one too;
// - a single file.
// Everything odd is tolerated and counted, never fatal: half-written snapshots (.partial-N dirs,
// *.part, *.tmp, .kml-tmp-* files), files missing from the manifest or the manifest lines without
// files, missing or broken meta, an unreadable run.json. Only "nothing to analyse here" is an error.
import fs from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { ExitCode, KmlError, ioError } from '../errors.js';
import { parseManifest, type ManifestEntry } from '../store/manifest.js';
import { SKIPPED, parseSkippedRecords } from '../store/skipped.js';
import type { InputStats, RunSource, SnapshotFiles } from './model.js';

/** One snapshot as found on disk, before its text is read. */
export interface SnapshotSource {
  seq: number | null;
  bootId: string | null;
  wallTime: number | null;
  wallTimeSource: 'manifest' | 'meta' | 'mtime' | 'none';
  uptimeS: number | null;
  /** Absolute path of the kmemleak text, or null when the snapshot has none (missing file). */
  kmemleakPath: string | null;
  /** Paths relative to the source base (store/folder dir; a single file's directory). */
  files: SnapshotFiles;
  /** sha256 the manifest recorded for the kmemleak file, if any. */
  sha256: string | null;
  inManifest: boolean | null;
  meta: Record<string, unknown>;
  metaError?: string;
}

export interface RunInput {
  source: RunSource;
  /** Directory all relative paths are relative to. */
  baseDir: string;
  runJson: Record<string, unknown> | null;
  snapshots: SnapshotSource[];
  stats: InputStats;
}

const STORE_LOG = /^kmemleak_log_(\d{1,15})\.txt$/;
// Plain folders: kmemleak_log_3.txt (seed), also kmemleak_3.txt / kmemleak-log-3.log.
const FOLDER_LOG = /^kmemleak[_-]?(?:log[_-]?)?(\d{1,15})(?:\.txt|\.log)?$/i;
const PARTIAL = /(?:\.part|\.partial|\.tmp|\.temp|~|\.swp)$|^\.kml-tmp-|^\.partial-|^\.#/i;
const MEM_NAMES = ['meminfo', 'vmstat', 'buddyinfo', 'zoneinfo', 'slabinfo', 'pagetypeinfo'];

function emptyStats(): InputStats {
  return {
    snapshotsFound: 0, partialSkipped: [], missingMeta: 0, missingFiles: [], badManifestLines: 0,
    hashMismatches: 0, unreadable: 0, runJson: 'missing', conflictsSkipped: [], agentSkipped: [],
  };
}

async function statOrNull(p: string): Promise<Stats | null> {
  try {
    return await fs.stat(p);
  } catch {
    return null;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch {
    return [];
  }
}

const toPosix = (p: string): string => p.split(path.sep).join('/');

/** Read a small JSON file; null + reason when absent or broken. */
async function readJson(file: string): Promise<{ value: Record<string, unknown> | null; error?: string; missing?: boolean }> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { value: null, missing: code === 'ENOENT', error: code ?? String(e) };
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return { value: null, error: 'not a JSON object' };
    return { value: v as Record<string, unknown> };
  } catch (e) {
    return { value: null, error: `invalid JSON (${(e as Error).message.slice(0, 80)})` };
  }
}

const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : null);

/** Fill seq/boot/time fields from a meta object (meta_<N>.json is camelCase; tolerate the device's snake_case). */
function applyMeta(s: SnapshotSource, meta: Record<string, unknown>): void {
  s.meta = meta;
  if (s.uptimeS === null) s.uptimeS = numOrNull(meta.uptimeS ?? meta.uptime_s);
  if (s.wallTime === null) {
    const w = numOrNull(meta.wallTime ?? meta.wall_time);
    if (w !== null) { s.wallTime = w; s.wallTimeSource = 'meta'; }
  }
  if (s.bootId === null) {
    const b = meta.bootId ?? meta.boot_id;
    if (typeof b === 'string' && b) s.bootId = b;
  }
}

/** Memory samples and kmsg beside snapshot N in `dir` (store boot dir or plain folder). */
async function siblingFiles(baseDir: string, dir: string, n: number, names: Set<string>): Promise<Pick<SnapshotFiles, 'kmsg' | 'mem'>> {
  const mem: Record<string, string> = {};
  if (names.has(`mem_${n}`)) {
    const inner = new Set(await readdirOrEmpty(path.join(dir, `mem_${n}`)));
    for (const m of MEM_NAMES) if (inner.has(`${m}.txt`)) mem[m] = toPosix(path.relative(baseDir, path.join(dir, `mem_${n}`, `${m}.txt`)));
  }
  const kmsg = names.has(`kmsg_${n}.txt`) ? toPosix(path.relative(baseDir, path.join(dir, `kmsg_${n}.txt`))) : null;
  return { kmsg, mem };
}

/** Decide what `p` is and list its snapshots. */
export async function discoverRun(p: string): Promise<RunInput> {
  const abs = path.resolve(p);
  const st = await statOrNull(abs);
  if (!st) {
    try { await fs.stat(abs); } catch (e) { throw ioError(`cannot read ${p}`, e); }
  }
  if (st!.isFile()) return discoverFile(abs, st!);
  if (!st!.isDirectory()) throw new KmlError(ExitCode.USAGE, `${p} is neither a file nor a folder`);
  const names = await readdirOrEmpty(abs);
  if (names.includes('run.json') || names.includes('manifest.jsonl') || names.some((n) => n.startsWith('boot-'))) return discoverStore(abs, names);
  const plain = await discoverFolder(abs, abs, names, emptyStats());
  if (plain.snapshots.length > 0 || plain.stats.partialSkipped.length > 0) return plain;
  // A serial folder holding several runs, or a folder of store runs: say which to pick.
  const runs: string[] = [];
  for (const n of names) if ((await readdirOrEmpty(path.join(abs, n))).includes('run.json')) runs.push(n);
  if (runs.length) {
    throw new KmlError(ExitCode.USAGE, `${p} holds ${runs.length} runs, not one`, { hint: `pass one run folder, e.g. ${path.join(p, runs[runs.length - 1])}` });
  }
  // the command line was right, the input was not: unreadable input (5), not usage (2)
  throw new KmlError(ExitCode.IO, `no kmemleak snapshots in ${p}`, {
    hint: 'expected a kml run folder (run.json, boot-<id>/kmemleak_log_<N>.txt), a folder of kmemleak_log_<N>.txt, or one file',
  });
}

async function discoverFile(abs: string, st: Stats): Promise<RunInput> {
  const name = path.basename(abs);
  const m = FOLDER_LOG.exec(name);
  const s: SnapshotSource = {
    seq: m ? Number(m[1]) : null, bootId: null, wallTime: st.mtimeMs / 1000, wallTimeSource: 'mtime', uptimeS: null,
    kmemleakPath: abs, files: { kmemleak: name, meta: null, kmsg: null, mem: {} }, sha256: null, inManifest: null, meta: {},
  };
  const stats = emptyStats();
  stats.snapshotsFound = 1;
  stats.missingMeta = 1;
  return { source: { type: 'file', path: abs }, baseDir: path.dirname(abs), runJson: null, snapshots: [s], stats };
}

async function discoverFolder(baseDir: string, dir: string, names: string[], stats: InputStats): Promise<RunInput> {
  const nameSet = new Set(names);
  const found: SnapshotSource[] = [];
  for (const name of names) {
    if (PARTIAL.test(name)) {
      if (/kmemleak|^\.partial-|^\.kml-tmp-/i.test(name)) stats.partialSkipped.push(toPosix(path.relative(baseDir, path.join(dir, name))));
      continue;
    }
    const m = FOLDER_LOG.exec(name);
    if (!m) continue;
    const file = path.join(dir, name);
    const st = await statOrNull(file);
    if (!st || !st.isFile()) continue;
    const n = Number(m[1]);
    const s: SnapshotSource = {
      seq: n, bootId: null, wallTime: null, wallTimeSource: 'none', uptimeS: null, kmemleakPath: file,
      files: { kmemleak: toPosix(path.relative(baseDir, file)), meta: null, ...(await siblingFiles(baseDir, dir, n, nameSet)) },
      sha256: null, inManifest: null, meta: {},
    };
    if (nameSet.has(`meta_${n}.json`)) {
      s.files.meta = toPosix(path.relative(baseDir, path.join(dir, `meta_${n}.json`)));
      const meta = await readJson(path.join(dir, `meta_${n}.json`));
      if (meta.value) applyMeta(s, meta.value);
      else { s.metaError = `meta_${n}.json: ${meta.error}`; stats.missingMeta++; }
    } else {
      stats.missingMeta++;
    }
    if (s.wallTime === null) { s.wallTime = st.mtimeMs / 1000; s.wallTimeSource = 'mtime'; }
    found.push(s);
  }
  // Two files with the same N (kmemleak_log_3.txt and kmemleak-3.log): keep both, stable order.
  found.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  stats.snapshotsFound += found.length;
  return { source: { type: 'folder', path: baseDir }, baseDir, runJson: null, snapshots: found, stats };
}

async function discoverStore(runDir: string, names: string[]): Promise<RunInput> {
  const stats = emptyStats();
  const rj = await readJson(path.join(runDir, 'run.json'));
  stats.runJson = rj.value ? 'ok' : rj.missing ? 'missing' : 'invalid';

  // Manifest: tolerant read (a torn last line and bad lines are skipped and counted).
  let entries: ManifestEntry[] = [];
  try {
    const text = await fs.readFile(path.join(runDir, 'manifest.jsonl'), 'utf8');
    const read = parseManifest(text);
    entries = read.entries;
    stats.badManifestLines = read.bad.length + (read.torn ? 1 : 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') stats.badManifestLines++;
  }
  const haveManifest = names.includes('manifest.jsonl');
  // Cycles the agent skipped (device storage low): holes the report names, not losses.
  try {
    const seen = new Set<string>();
    for (const r of parseSkippedRecords(await fs.readFile(path.join(runDir, SKIPPED), 'utf8'))) {
      const k = `${r.bootId}#${r.seq}`;
      if (seen.has(k)) continue;
      seen.add(k);
      stats.agentSkipped!.push({ bootId: r.bootId, seq: r.seq, wallTime: r.wallTime, reason: r.reason });
    }
    stats.agentSkipped!.sort((a, b) => a.seq - b.seq);
  } catch {
    // none recorded (older runs, or no cycle was skipped)
  }

  // Boot order: run.json's boots list, then first appearance in the manifest, then folder order.
  const bootOrder: string[] = [];
  const boots = rj.value?.boots;
  if (Array.isArray(boots)) for (const b of boots) if (b && typeof (b as { bootId?: unknown }).bootId === 'string') bootOrder.push((b as { bootId: string }).bootId);
  for (const e of entries) if (!bootOrder.includes(e.bootId)) bootOrder.push(e.bootId);

  const byKey = new Map<string, SnapshotSource>();
  for (const e of entries) {
    const kf = e.files.find((f) => f.name === 'kmemleak.txt');
    if (e.conflict) {
      stats.conflictsSkipped.push(kf?.path ?? `boot-${e.bootId}/seq ${e.seq}`);
      continue;
    }
    const key = `${e.bootId}/${e.seq}`;
    if (byKey.has(key)) continue; // the same snapshot listed twice: the index makes this rare; keep the first
    const files: SnapshotFiles = { kmemleak: kf?.path ?? null, meta: null, kmsg: null, mem: {} };
    for (const f of e.files) {
      if (f.name === 'meta.txt') files.meta = f.path;
      else if (f.name === 'kmsg.txt') files.kmsg = f.path;
      else if (f.name.endsWith('.txt') && MEM_NAMES.includes(f.name.slice(0, -4))) files.mem[f.name.slice(0, -4)] = f.path;
    }
    byKey.set(key, {
      seq: e.seq, bootId: e.bootId,
      wallTime: numOrNull(e.wallTime), wallTimeSource: numOrNull(e.wallTime) !== null ? 'manifest' : 'none',
      uptimeS: numOrNull(e.uptimeS),
      kmemleakPath: kf ? safeJoin(runDir, kf.path) : null,
      files, sha256: kf?.sha256 ?? null, inManifest: true, meta: {},
    });
  }

  // What is on disk: files the manifest does not list are used too (a crash between rename and
  // manifest append), marked inManifest=false; half-written ones are skipped and counted.
  for (const name of names) {
    if (PARTIAL.test(name)) { stats.partialSkipped.push(name); continue; }
    if (!name.startsWith('boot-')) continue;
    const bootId = name.slice('boot-'.length);
    const dir = path.join(runDir, name);
    const inner = await readdirOrEmpty(dir);
    const innerSet = new Set(inner);
    if (!bootOrder.includes(bootId)) bootOrder.push(bootId);
    for (const f of inner) {
      if (PARTIAL.test(f)) { stats.partialSkipped.push(`${name}/${f}`); continue; }
      if (f.startsWith('conflict-')) continue;
      const m = STORE_LOG.exec(f);
      if (!m) continue;
      const seq = Number(m[1]);
      const key = `${bootId}/${seq}`;
      let s = byKey.get(key);
      if (!s) {
        s = {
          seq, bootId, wallTime: null, wallTimeSource: 'none', uptimeS: null, kmemleakPath: path.join(dir, f),
          files: { kmemleak: `${name}/${f}`, meta: null, kmsg: null, mem: {} }, sha256: null,
          inManifest: haveManifest ? false : null, meta: {},
        };
        byKey.set(key, s);
      }
      const sib = await siblingFiles(runDir, dir, seq, innerSet);
      if (!s.files.kmsg) s.files.kmsg = sib.kmsg;
      for (const [k, v] of Object.entries(sib.mem)) if (!s.files.mem[k]) s.files.mem[k] = v;
      if (innerSet.has(`meta_${seq}.json`)) s.files.meta = `${name}/meta_${seq}.json`;
    }
  }

  const snapshots = [...byKey.values()];
  for (const s of snapshots) {
    if (s.kmemleakPath && !(await statOrNull(s.kmemleakPath))) {
      stats.missingFiles.push(s.files.kmemleak ?? '?');
      s.kmemleakPath = null;
    }
    if (s.files.meta && s.files.meta.endsWith('.json')) {
      const meta = await readJson(safeJoin(runDir, s.files.meta) ?? '');
      if (meta.value) applyMeta(s, meta.value);
      else s.metaError = `${s.files.meta}: ${meta.error}`;
    }
    if (!s.inManifest && Object.keys(s.meta).length === 0) stats.missingMeta++;
    if (s.wallTime === null && s.kmemleakPath) {
      const st = await statOrNull(s.kmemleakPath);
      if (st) { s.wallTime = st.mtimeMs / 1000; s.wallTimeSource = 'mtime'; }
    }
  }
  const order = (b: string | null): number => (b === null ? -1 : bootOrder.indexOf(b));
  snapshots.sort((a, b) => order(a.bootId) - order(b.bootId) || (a.seq ?? 0) - (b.seq ?? 0));
  stats.snapshotsFound = snapshots.length;
  if (snapshots.length === 0 && stats.partialSkipped.length === 0 && stats.missingFiles.length === 0) {
    // An empty store is valid (a run that has not pulled anything yet): the report says so.
  }
  return { source: { type: 'store', path: runDir }, baseDir: runDir, runJson: rj.value, snapshots, stats };
}

/** Join a manifest path under the run dir; null if it would escape (paths in files are not trusted). */
function safeJoin(runDir: string, rel: string): string | null {
  const absPath = path.resolve(runDir, rel);
  const r = path.relative(runDir, absPath);
  return r === '' || r.startsWith('..') || path.isAbsolute(r) ? null : absPath;
}
