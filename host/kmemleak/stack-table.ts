// Distinct stacks, numbered: the printed text of a record's frames (ParsedRecord's stack bytes)
// gets a small integer id, the same for the same bytes. A run has a few thousand distinct stacks
// and hundreds of thousands of records, so a record costs a hash of its stack bytes (4 bytes at a
// time) and one byte comparison with the stack stored under that hash — no string per record. The
// text is decoded once per distinct stack; `memo` holds what a caller derives from a stack (the
// analysis keeps the stack's identity there).

import { ByteKeyTable, hashBytes } from './byte-keys.js';

type FastBuffer = Buffer & { latin1Slice(start: number, end: number): string; utf8Slice(start: number, end: number): string };

/**
 * Past this many distinct stacks the table starts over (pathological inputs only): ids are
 * reused, so a caller must not keep an id past the record it came with (memo is cleared too).
 */
export const MAX_STACKS = 50_000;

export class StackInterner {
  /** Stack bytes by id. */
  private readonly keys = new ByteKeyTable();
  private readonly texts: string[] = [];
  memo: unknown[] = [];
  /** Incremented each time the table starts over (see MAX_STACKS). */
  epoch = 0;

  get size(): number {
    return this.texts.length;
  }

  text(id: number): string {
    return this.texts[id];
  }

  /**
   * Id of the stack bytes[0, len) (`view` views the same memory); `ascii`:
   * every byte is below 0x80, so the text is its latin1 decoding (else UTF-8).
   */
  idOf(bytes: Buffer, view: DataView, len: number, ascii: boolean): number {
    const h = hashBytes(view, 0, len);
    const found = this.keys.find(h, view, 0, len);
    if (found >= 0) return found;
    if (this.texts.length >= MAX_STACKS) {
      this.keys.clear();
      this.texts.length = 0;
      this.memo = [];
      this.epoch++;
    }
    const id = this.keys.add(h, bytes, len);
    this.texts.push(ascii ? (bytes as FastBuffer).latin1Slice(0, len) : (bytes as FastBuffer).utf8Slice(0, len));
    return id;
  }
}
