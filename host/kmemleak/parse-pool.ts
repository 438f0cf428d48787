// Parsing kmemleak files on several cores: worker threads (parse-worker.ts) parse files — or byte
// ranges of a big file, cut before a record header — while the caller consumes the records in
// file order, exactly as if one parser had read the files one after the other: same records,
// same line numbers, same counters. The caller's per-record work (deduplication, grouping) stays
// sequential and so gives the same result; only the parsing runs in parallel.
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { ParserCounters } from './types.js';
import { isRecordStart } from './parser.js';
import { BatchRecord, WorkerStrings, type BatchMessage, type DoneMessage, type ParseJob, type WorkerMessage } from './parse-batch.js';

export interface FileParseResult {
  counters: ParserCounters;
  bytes: number;
  sha256: string | null;
  error?: string;
}

export interface PoolFile {
  path: string;
  /** Compute the file's sha256 (a whole file then goes to one worker). */
  hash: boolean;
}

export interface PoolOptions {
  workers: number;
  /** A file without a hash to check is cut into pieces of about this size (default 32 MiB). */
  pieceBytes?: number;
  maxSamples: number;
}

interface JobState {
  job: ParseJob;
  worker: number;
  batches: BatchMessage[];
  done: DoneMessage | null;
}

const DEFAULT_PIECE = 32 << 20;
/** How far past a wanted cut to look for a record header. */
const CUT_SEARCH = 1 << 20;

/** Offsets where `file` can be cut into about `pieces` parts (each before a record header). */
function cutPoints(file: string, size: number, pieces: number): number[] {
  const cuts: number[] = [];
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(CUT_SEARCH + 1);
    for (let k = 1; k < pieces; k++) {
      const want = Math.floor((size * k) / pieces);
      if (cuts.length && want <= cuts[cuts.length - 1]) continue;
      const n = fs.readSync(fd, buf, 0, CUT_SEARCH, want);
      buf[n] = 10; // a guard byte, so b[end] is inside the buffer (isRecordStart looks at it)
      let p = buf.indexOf(10, 0);
      while (p >= 0 && p + 1 < n) {
        const s = p + 1;
        const e = buf.indexOf(10, s);
        if (e < 0 || e >= n) break; // the line runs past what was read
        if (isRecordStart(buf, s, e)) { cuts.push(want + s); break; }
        p = e;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return cuts;
}

/** Add `b`'s counters to `a` (b's lines come after a's). */
function mergeCounters(a: ParserCounters, b: ParserCounters, maxSamples: number): void {
  for (const s of b.unparsedSamples) {
    if (a.unparsedSamples.length >= maxSamples) break;
    a.unparsedSamples.push({ line: s.line + a.lines, text: s.text });
  }
  a.lines += b.lines;
  a.bytes += b.bytes;
  a.records += b.records;
  a.truncatedRecords += b.truncatedRecords;
  a.unparsedLines += b.unparsedLines;
  a.overlongLines += b.overlongLines;
  for (const [k, v] of Object.entries(b.ignoredLines)) a.ignoredLines[k] = (a.ignoredLines[k] ?? 0) + v;
}

export class ParsePool {
  private readonly workers: Worker[] = [];
  private readonly ctrl: Int32Array[] = [];
  /** Per worker: the strings it interned, by id. */
  private readonly strings: WorkerStrings[] = [];
  private readonly jobs: JobState[] = [];
  /** Per file: its job ids, in order. */
  private readonly fileJobs: number[][] = [];
  private nextToAssign = 0;
  private readonly outstanding: number[] = [];
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private readonly view = new BatchRecord();
  private closed = false;

  constructor(files: readonly PoolFile[], private readonly opts: PoolOptions) {
    const piece = opts.pieceBytes ?? DEFAULT_PIECE;
    for (const f of files) {
      const ids: number[] = [];
      let size = -1;
      try { size = fs.statSync(f.path).size; } catch { /* the worker reports the error */ }
      const pieces = !f.hash && size > piece ? Math.ceil(size / piece) : 1;
      let bounds = [0];
      if (pieces > 1) {
        try { bounds = [0, ...cutPoints(f.path, size, pieces)]; } catch { bounds = [0]; }
      }
      for (let i = 0; i < bounds.length; i++) {
        const id = this.jobs.length;
        this.jobs.push({ job: { id, file: f.path, start: bounds[i], end: i + 1 < bounds.length ? bounds[i + 1] : -1, hash: f.hash }, worker: -1, batches: [], done: null });
        ids.push(id);
      }
      this.fileJobs.push(ids);
    }
    const url = new URL('./parse-worker.js', import.meta.url);
    const n = Math.max(1, Math.min(opts.workers, this.jobs.length));
    for (let w = 0; w < n; w++) {
      const ctrl = new SharedArrayBuffer(8);
      const worker = new Worker(url, { workerData: { ctrl, maxSamples: opts.maxSamples } });
      worker.on('message', (m: WorkerMessage) => this.onMessage(w, m));
      worker.on('error', (e) => this.fail(e));
      worker.on('exit', (code) => { if (!this.closed) this.fail(new Error(`parse worker exited with code ${code}`)); });
      this.workers.push(worker);
      this.ctrl.push(new Int32Array(ctrl));
      this.strings.push(new WorkerStrings());
      this.outstanding.push(0);
    }
    // Two jobs per worker in its queue, so none waits for the next between files.
    for (let round = 0; round < 2; round++) for (let w = 0; w < n; w++) this.assign(w);
  }

  private assign(w: number): void {
    if (this.nextToAssign >= this.jobs.length) return;
    const st = this.jobs[this.nextToAssign++];
    st.worker = w;
    this.outstanding[w]++;
    this.workers[w].postMessage(st.job);
  }

  private onMessage(w: number, m: WorkerMessage): void {
    if (m.type === 'fatal') { this.fail(new Error(m.message)); return; }
    const st = this.jobs[m.job];
    if (m.type === 'batch') {
      // Strings are numbered per worker in posting order: register them now, whatever job reads them.
      const table = this.strings[w].list;
      for (const s of m.strings) table.push(s);
      st.batches.push(m);
    } else {
      st.done = m;
      this.outstanding[w]--;
      this.assign(w);
    }
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private fail(e: Error): void {
    if (this.failure || this.closed) return;
    this.failure = e;
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private next(): Promise<void> {
    return new Promise((resolve) => { this.wake = resolve; });
  }

  /**
   * Records of file `k` (in order; call for k = 0, 1, ... in turn), given to `onRecord` through a
   * reused view; resolves with the file's counters, size and hash.
   */
  async parse(k: number, onRecord: (r: BatchRecord) => void): Promise<FileParseResult> {
    let total: FileParseResult | null = null;
    for (const id of this.fileJobs[k]) {
      const st = this.jobs[id];
      const w = st.worker;
      const lineOffset = total ? total.counters.lines : 0;
      for (;;) {
        if (this.failure) throw this.failure;
        const b = st.batches.shift();
        if (b) {
          const table = this.strings[w];
          for (let i = 0; i < b.count; i++) {
            this.view.load(b.nums, b.hex, i, table, lineOffset);
            onRecord(this.view);
          }
          Atomics.add(this.ctrl[w], 1, 1);
          Atomics.notify(this.ctrl[w], 1);
          continue;
        }
        if (st.done) break;
        await this.next();
      }
      const d = st.done!;
      this.jobs[id] = { job: st.job, worker: w, batches: [], done: null }; // drop what was read
      if (!total) {
        total = { counters: d.counters, bytes: d.bytes, sha256: d.sha256, error: d.error };
      } else {
        mergeCounters(total.counters, d.counters, this.opts.maxSamples);
        total.bytes += d.bytes;
        total.error ??= d.error;
      }
    }
    return total!;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
