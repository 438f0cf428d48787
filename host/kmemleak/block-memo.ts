// Backtrace blocks already parsed, by their exact bytes. A kernel prints the same call site's
// backtrace with the same bytes every time within one boot (the same return addresses, hashed the
// same way, or no pointers at all), and a run holds a few thousand distinct stacks in hundreds of
// thousands of records. So the parser reads a block's frame lines once; when the same bytes come
// again it takes what that parse gave (stack id, frame count, first frame's pointer kind,
// terminator, line count) instead of reading 5–16 lines byte by byte. The bytes are compared in
// full before a result is reused: a hash collision costs a normal parse, never a wrong record.

import { ByteKeyTable, hashBytes } from './byte-keys.js';
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
    this.hash = hashBytes(this.view, start, len);
    const id = this.keys.find(this.hash, this.view, start, len);
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
