// Reads the memory-state sample files of an analysed run from disk (the I/O edge of memory.ts).
// Store layout (brief: host store contract): boot-<id>/mem_<N>/<name>.txt and boot-<id>/kmsg_<N>.txt.
// The analysis lists these in SnapshotInfo.files; when it does not, the store layout (and a
// mem_<N>/ next to a plain folder's kmemleak_log_N.txt) is probed directly. Paths are resolved
// inside the run directory only: names come from a device and are not trusted.
import fs from 'node:fs';
import path from 'node:path';
import type { AnalyzedRun, SnapshotInfo } from './model.js';
import { MEM_FILES, type MemFileName, type MemoryAnalysis } from './memory-model.js';
import { analyzeMemory, type SampleInput } from './memory.js';

/** A sample file larger than this is read only up to here (a /proc file is a few hundred kB at most). */
export const MAX_SAMPLE_FILE_BYTES = 16 * 1024 * 1024;

function baseDirOf(run: AnalyzedRun): string {
  return run.source.type === 'file' ? path.dirname(run.source.path) : run.source.path;
}

/** Resolve rel inside base; undefined if it would escape it. */
function inside(base: string, rel: string): string | undefined {
  const abs = path.resolve(base, rel);
  const r = path.relative(base, abs);
  return r === '' || r.startsWith('..') || path.isAbsolute(r) ? undefined : abs;
}

type ReadResult = { text: string } | { error: string } | undefined;

function readCapped(file: string): ReadResult {
  let fd: number | undefined;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) return undefined;
    fd = fs.openSync(file, 'r');
    const size = Math.min(st.size, MAX_SAMPLE_FILE_BYTES);
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = fs.readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return { text: buf.subarray(0, off).toString('utf8') };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    return { error: code ?? String(e) };
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function candidatePaths(run: AnalyzedRun, snap: SnapshotInfo): Partial<Record<MemFileName | 'kmsg', string>> {
  const out: Partial<Record<MemFileName | 'kmsg', string>> = {};
  for (const [name, rel] of Object.entries(snap.files?.mem ?? {})) {
    if ((MEM_FILES as readonly string[]).includes(name)) out[name as MemFileName] = rel;
  }
  if (snap.files?.kmsg) out.kmsg = snap.files.kmsg;
  if (snap.seq === null) return out;
  // Probe the documented layouts for what the analysis did not list.
  const dirs: string[] = [];
  if (snap.bootId && /^[A-Za-z0-9._-]+$/.test(snap.bootId)) dirs.push(`boot-${snap.bootId}`);
  if (snap.files?.kmemleak) dirs.push(path.posix.dirname(snap.files.kmemleak));
  if (run.source.type !== 'file') dirs.push('.');
  for (const d of dirs) {
    for (const name of MEM_FILES) out[name] ??= probe(run, `${d}/mem_${snap.seq}/${name}.txt`);
    out.kmsg ??= probe(run, `${d}/kmsg_${snap.seq}.txt`);
  }
  return out;
}

function probe(run: AnalyzedRun, rel: string): string | undefined {
  const abs = inside(baseDirOf(run), rel);
  return abs && fs.existsSync(abs) ? rel : undefined;
}

function* sampleInputs(run: AnalyzedRun): Generator<SampleInput> {
  const base = baseDirOf(run);
  for (const snap of run.snapshots) {
    const texts: SampleInput['texts'] = {};
    const unreadable: string[] = [];
    for (const [name, rel] of Object.entries(candidatePaths(run, snap)) as Array<[MemFileName | 'kmsg', string | undefined]>) {
      if (rel === undefined) continue;
      const abs = inside(base, rel);
      if (!abs) { unreadable.push(name); continue; }
      const r = readCapped(abs);
      if (!r) continue;
      if ('error' in r) unreadable.push(name);
      else texts[name] = r.text;
    }
    yield { snapshot: snap.index, seq: snap.seq, bootId: snap.bootId, t: snap.t, uptimeS: snap.uptimeS, texts, unreadable };
  }
}

/** Memory analysis of a run: reads each snapshot's samples in turn, keeping only summaries. */
export function loadMemory(run: AnalyzedRun): MemoryAnalysis {
  return analyzeMemory(sampleInputs(run), run.snapshots.length);
}
