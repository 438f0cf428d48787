// The wire format between parse workers and the thread that analyses (parse-worker.ts →
// parse-pool.ts): records packed in typed arrays, strings sent once per worker.
//
// A record is FIELDS numbers in a Float64Array (null → NaN: none of these fields can be NaN
// otherwise; -0 and Infinity survive), its hex dump characters in a side byte array, and ids of
// strings (stack text, comm, format, long address) the worker interns and sends the first time.
import type { KmemleakFrame, KmemleakRecord } from './types.js';
import type { ParserCounters } from './types.js';
import { framesOfStackText, hexOf } from './record.js';
import type { StackTable } from './stack-table.js';

/** A parse worker's strings (stack texts among them), by the ids it gave them. */
export class WorkerStrings implements StackTable {
  readonly list: string[] = [];
  memo: unknown[] = [];
  text(id: number): string {
    return this.list[id];
  }
}

export const FIELDS = 16;
export const F_ADDR_HI = 0;
export const F_ADDR_LO = 1;
/** Hex digits of the address (≤ 16), or −(1 + id) of the address text when longer. */
export const F_ADDR_LEN = 2;
export const F_JIFFIES = 3;
export const F_LINE = 4;
export const F_SIZE = 5;
export const F_PID = 6;
export const F_AGE_MS = 7;
export const F_HEX_LENGTH = 8;
export const F_HEX_CPU = 9;
/** Offset of the hex characters in the side array, and their count. */
export const F_HEX_AT = 10;
export const F_HEX_CHARS = 11;
export const F_STACK = 12;
/** Comm string id, −1 for null. */
export const F_COMM = 13;
export const F_FORMAT = 14;
/** Bit 0: 32-bit pointers; bits 1-2: object type (0 normal, 1 percpu, 2 phys); bit 3 truncated; bit 4 from dmesg. */
export const F_FLAGS = 15;

/** Records per batch. */
export const BATCH_RECORDS = 2048;
/** Hex characters kept per record (MAX_HEX_CHARS). */
export const BATCH_HEX = BATCH_RECORDS * 128;

export const OBJECT_TYPES: ReadonlyArray<KmemleakRecord['objectType']> = ['normal', 'percpu', 'phys'];

/** One piece of work: a whole file, or a byte range of one that starts at a record header. */
export interface ParseJob {
  id: number;
  file: string;
  start: number;
  /** End offset (exclusive), or -1 for the end of the file. */
  end: number;
  hash: boolean;
}

export interface BatchMessage {
  type: 'batch';
  job: number;
  count: number;
  nums: Float64Array;
  hex: Uint8Array;
  /** Strings first seen in this batch, in id order, per table. */
  strings: string[];
}

export interface DoneMessage {
  type: 'done';
  job: number;
  counters: ParserCounters;
  bytes: number;
  sha256: string | null;
  error?: string;
  lastLineUnterminated: boolean;
}

export type WorkerMessage = BatchMessage | DoneMessage | { type: 'fatal'; message: string };

/**
 * A record of a batch seen through the fields the analysis reads (the same as ParsedRecord's).
 * Reused: `load()` moves it to another record.
 */
export class BatchRecord {
  private nums: Float64Array = new Float64Array(0);
  private hexBytes: Uint8Array = new Uint8Array(0);
  private o = 0;

  addrHi = 0;
  addrLo = 0;
  addrLen = 0;
  jiffies: number | null = null;
  line = 0;
  size = 0;
  pid: number | null = null;
  ageMs: number | null = null;
  hexLength: number | null = null;
  hexCpu: number | null = null;
  comm: string | null = null;
  format = '';
  pointerBits: 32 | 64 = 64;
  objectType: KmemleakRecord['objectType'] = 'normal';
  truncated = false;
  fromDmesg = false;
  private stack = '';
  private longAddress: string | null = null;

  /** The worker's strings: stackId() numbers stacks there. */
  stackTable: WorkerStrings = new WorkerStrings();
  private stackNo = 0;

  /** Point at record `k` of a batch whose string ids index `table` (the worker's). */
  load(nums: Float64Array, hex: Uint8Array, k: number, table: WorkerStrings, lineOffset: number): void {
    const strings = table.list;
    this.stackTable = table;
    this.nums = nums;
    this.hexBytes = hex;
    const o = (this.o = k * FIELDS);
    this.addrHi = nums[o + F_ADDR_HI];
    this.addrLo = nums[o + F_ADDR_LO];
    const len = nums[o + F_ADDR_LEN];
    if (len < 0) {
      this.longAddress = strings[-len - 1];
      this.addrLen = this.longAddress.length;
    } else {
      this.longAddress = null;
      this.addrLen = len;
    }
    const j = nums[o + F_JIFFIES];
    this.jiffies = j === j ? j : null;
    this.line = nums[o + F_LINE] + lineOffset;
    this.size = nums[o + F_SIZE];
    const pid = nums[o + F_PID];
    this.pid = pid === pid ? pid : null;
    const age = nums[o + F_AGE_MS];
    this.ageMs = age === age ? age : null;
    const hl = nums[o + F_HEX_LENGTH];
    this.hexLength = hl === hl ? hl : null;
    const hc = nums[o + F_HEX_CPU];
    this.hexCpu = hc === hc ? hc : null;
    this.stackNo = nums[o + F_STACK];
    this.stack = strings[this.stackNo];
    const c = nums[o + F_COMM];
    this.comm = c < 0 ? null : strings[c];
    this.format = strings[nums[o + F_FORMAT]];
    const f = nums[o + F_FLAGS];
    this.pointerBits = f & 1 ? 32 : 64;
    this.objectType = OBJECT_TYPES[(f >> 1) & 3];
    this.truncated = (f & 8) !== 0;
    this.fromDmesg = (f & 16) !== 0;
  }

  get address(): string {
    return this.longAddress ?? hexOf(this.addrHi, this.addrLo, this.addrLen);
  }

  get hex(): string | null {
    if (this.hexLength === null) return null;
    const at = this.nums[this.o + F_HEX_AT];
    const n = this.nums[this.o + F_HEX_CHARS];
    let s = '';
    for (let k = 0; k < n; k++) s += String.fromCharCode(this.hexBytes[at + k]);
    return s;
  }

  stackKey(): string {
    return this.stack;
  }

  stackId(): number {
    return this.stackNo;
  }

  frames(): KmemleakFrame[] {
    return framesOfStackText(this.stack);
  }
}
