// Backtrace blocks already parsed, by their exact bytes. A kernel prints the same call site's
// backtrace with the same bytes every time within one boot (the same return addresses, hashed the
// same way, or no pointers at all), and a run holds a few thousand distinct stacks in hundreds of
// thousands of records. So the parser reads a block's frame lines once; when the same bytes come
// again it takes what that parse gave (stack id, frame count, first frame's pointer kind,
// terminator, line count) instead of reading 5–16 lines byte by byte. The bytes are compared in
// full before a result is reused: a hash collision costs a normal parse, never a wrong record.

import { ByteKeyTable } from './byte-keys.js';
import type { PcKind } from './record.js';

/** Blocks longer than this are parsed line by line (kmemleak prints at most 16 frames). */
export const MAX_BLOCK_BYTES = 4096;
/** Entries kept; past it the memo starts over (pathological inputs: every block distinct). */
const MAX_ENTRIES = 16_384;

/** What parsing a block gave (see KmemleakParser's block path). */
export interface BlockFacts {
  stackId: number;
  frameCount: number;
  pcKind: PcKind;
  terminator: boolean;
  /** Lines in the block (each one a frame or the terminator), and the parser's byte count for them. */
  lines: number;
  bytes: number;
}

/** Words read from a DataView in the byte order an Int32Array over the same bytes uses. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * 32-bit hash of the len bytes at `start` of `view`, read a word at a time wherever they lie (no
 * copy to aligned memory first): two independent lanes over alternate words, so the
 * multiplications of one do not wait for the other's.
 */
function hashBlock(view: DataView, start: number, len: number): number {
  let a = len | 0;
  let b = 0x9747b28c;
  const n = len >>> 2;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    a = Math.imul(a ^ view.getInt32(start + 4 * i, LITTLE_ENDIAN), 0x9e3779b1);
    a = (a << 13) | (a >>> 19);
    b = Math.imul(b ^ view.getInt32(start + 4 * i + 4, LITTLE_ENDIAN), 0x85ebca6b);
    b = (b << 13) | (b >>> 19);
  }
  if (i < n) a = Math.imul(a ^ view.getInt32(start + 4 * i, LITTLE_ENDIAN), 0x9e3779b1);
  for (let k = n << 2; k < len; k++) b = Math.imul(b ^ view.getUint8(start + k), 0x01000193);
  let h = a ^ Math.imul(b, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h;
}

export class BlockMemo {
  /** Block bytes by entry, and what parsing them gave. */
  private readonly keys = new ByteKeyTable();
  private facts: BlockFacts[] = [];
  /** Scratch: a block looked up and not found, kept for insert() (the chunk it came from may be gone by then). */
  private readonly scratch = Buffer.alloc(MAX_BLOCK_BYTES + 4);
  /** A DataView of the chunk last looked in (made once per chunk). */
  private viewOf: Buffer | null = null;
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  /** Length and hash of the block in scratch (set by find()). */
  private len = 0;
  private hash = 0;
  /** Counts find() calls: insert() checks that scratch still holds the block it is about. */
  private finds = 0;
  /** The stack table's epoch the entries' stack ids belong to. */
  epoch = 0;

  get size(): number {
    return this.facts.length;
  }

  /**
   * Look b[start, end) up: its facts, or null (the block is then copied to scratch, and insert()
   * may record it once it has been parsed).
   */
  find(b: Buffer, start: number, end: number): BlockFacts | null {
    this.finds++;
    const len = end - start;
    if (b !== this.viewOf) {
      this.viewOf = b;
      this.view = new DataView(b.buffer, b.byteOffset, b.length);
    }
    this.len = len;
    this.hash = hashBlock(this.view, start, len);
    const id = this.keys.findIn(this.hash, this.view, start, len, LITTLE_ENDIAN);
    if (id >= 0) return this.facts[id];
    b.copy(this.scratch, 0, start, end);
    return null;
  }

  /** A ticket for the block just passed to find(), to give insert(). */
  get ticket(): number {
    return this.finds;
  }

  /**
   * Record the facts of the block last passed to find() (which found nothing). `ticket` is what
   * `ticket` was then: if another find() came in between (two parsers sharing one memo), the
   * block is no longer in scratch and nothing is recorded.
   */
  insert(facts: BlockFacts, ticket: number): void {
    if (ticket !== this.finds) return;
    if (this.facts.length >= MAX_ENTRIES) this.clear();
    this.keys.add(this.hash, this.scratch, this.len);
    this.facts.push(facts);
  }

  clear(): void {
    this.keys.clear();
    this.facts = [];
  }
}
