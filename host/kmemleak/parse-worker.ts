// A parse worker (worker_threads): reads the files (or byte ranges of a file) it is given, runs
// them through the kmemleak parser and posts the records back in packed batches (parse-batch.ts),
// with the file's counters and sha256 at the end of each job. It keeps no records: memory is one
// read buffer, one batch being filled, and the strings it interned.
//
// Flow control: `ctrl` (shared Int32Array) counts batches posted [0] and batches the analysing
// thread has consumed [1]; the worker waits when MAX_AHEAD batches are waiting, so a slow
// consumer bounds memory instead of letting batches pile up.
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { LineSplitter } from './lines.js';
import { KmemleakParser } from './parser.js';
import type { ParsedRecord } from './record.js';
import { StackInterner } from './stack-table.js';
import {
  BATCH_HEX, BATCH_RECORDS, FIELDS, F_ADDR_HI, F_ADDR_LEN, F_ADDR_LO, F_AGE_MS, F_COMM, F_FLAGS, F_FORMAT, F_HEX_AT, F_HEX_CHARS,
  F_HEX_CPU, F_HEX_LENGTH, F_JIFFIES, F_LINE, F_PID, F_SIZE, F_STACK, type ParseJob, type WorkerMessage,
} from './parse-batch.js';

const MAX_AHEAD = 8;
const READ_SIZE = 1 << 20;

const { ctrl: ctrlBuffer, maxSamples } = workerData as { ctrl: SharedArrayBuffer; maxSamples: number };
const ctrl = new Int32Array(ctrlBuffer);
const port = parentPort!;

const ids = new Map<string, number>();
let nextId = 0;
let newStrings: string[] = [];
const intern = (s: string): number => {
  let id = ids.get(s);
  if (id === undefined) {
    id = nextId++;
    ids.set(s, id);
    newStrings.push(s);
  }
  return id;
};

// Stacks: numbered by their bytes (no string per record), then given a wire id once.
const stacks = new StackInterner();
let stackWire: number[] = [];
let stackEpoch = 0;

let nums = new Float64Array(BATCH_RECORDS * FIELDS);
let hex = new Uint8Array(BATCH_HEX);
let count = 0;
let hexUsed = 0;
let jobId = 0;

function post(msg: WorkerMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function flush(): void {
  if (count === 0 && newStrings.length === 0) return;
  post({ type: 'batch', job: jobId, count, nums, hex, strings: newStrings }, [nums.buffer as ArrayBuffer, hex.buffer as ArrayBuffer]);
  nums = new Float64Array(BATCH_RECORDS * FIELDS);
  hex = new Uint8Array(BATCH_HEX);
  count = 0;
  hexUsed = 0;
  newStrings = [];
  const posted = Atomics.add(ctrl, 0, 1) + 1;
  for (;;) {
    const consumed = Atomics.load(ctrl, 1);
    if (posted - consumed < MAX_AHEAD) break;
    Atomics.wait(ctrl, 1, consumed, 1000);
  }
}

function encode(r: ParsedRecord): void {
  if (count === BATCH_RECORDS) flush();
  const o = count * FIELDS;
  const n = nums;
  n[o + F_ADDR_HI] = r.addrHi;
  n[o + F_ADDR_LO] = r.addrLo;
  n[o + F_ADDR_LEN] = r.addrLen <= 16 ? r.addrLen : -1 - intern(r.address);
  n[o + F_JIFFIES] = r.jiffies ?? NaN;
  n[o + F_LINE] = r.line;
  n[o + F_SIZE] = r.size;
  n[o + F_PID] = r.pid ?? NaN;
  n[o + F_AGE_MS] = r.ageMs ?? NaN;
  n[o + F_HEX_LENGTH] = r.hexLength ?? NaN;
  n[o + F_HEX_CPU] = r.hexCpu ?? NaN;
  let chars = 0;
  if (r.hexLength !== null) {
    chars = r.hexChars;
    const hb = r.hexBuf;
    for (let k = 0; k < chars; k++) hex[hexUsed + k] = hb[k];
  }
  n[o + F_HEX_AT] = hexUsed;
  n[o + F_HEX_CHARS] = chars;
  hexUsed += chars;
  const sid = r.stackId();
  if (stacks.epoch !== stackEpoch) { stackEpoch = stacks.epoch; stackWire = []; }
  let wire = stackWire[sid];
  if (wire === undefined) wire = stackWire[sid] = intern(stacks.text(sid));
  n[o + F_STACK] = wire;
  n[o + F_COMM] = r.comm === null ? -1 : intern(r.comm);
  n[o + F_FORMAT] = intern(r.format);
  n[o + F_FLAGS] = (r.pointerBits === 32 ? 1 : 0) | (r.objectType === 'percpu' ? 2 : r.objectType === 'phys' ? 4 : 0) | (r.truncated ? 8 : 0) | (r.fromDmesg ? 16 : 0);
  count++;
}

const readBuffer = Buffer.allocUnsafeSlow(READ_SIZE);

function run(job: ParseJob): void {
  jobId = job.id;
  const parser = new KmemleakParser({ onParsed: encode, maxSamples, stacks });
  const splitter = new LineSplitter(parser);
  const hash = job.hash ? createHash('sha256') : null;
  let bytes = 0;
  let error: string | undefined;
  let fd = -1;
  try {
    fd = fs.openSync(job.file, 'r');
    let pos = job.start;
    for (;;) {
      const want = job.end < 0 ? READ_SIZE : Math.min(READ_SIZE, job.end - pos);
      if (want <= 0) break;
      const n = fs.readSync(fd, readBuffer, 0, want, pos);
      if (n === 0) break;
      pos += n;
      bytes += n;
      const chunk = readBuffer.subarray(0, n);
      hash?.update(chunk);
      splitter.pushBuffer(chunk);
    }
  } catch (e) {
    error = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  } finally {
    if (fd >= 0) try { fs.closeSync(fd); } catch { /* nothing to do */ }
  }
  splitter.end();
  parser.end(splitter.lastLineUnterminated);
  parser.counters.bytes = bytes;
  flush();
  post({ type: 'done', job: job.id, counters: parser.counters, bytes, sha256: hash ? hash.digest('hex') : null, error, lastLineUnterminated: splitter.lastLineUnterminated });
}

port.on('message', (job: ParseJob | null) => {
  if (job === null) {
    port.close();
    return;
  }
  try {
    run(job);
  } catch (e) {
    post({ type: 'fatal', message: (e as Error)?.stack ?? String(e) });
  }
});
