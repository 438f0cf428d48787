// Distinct stacks, numbered: the printed text of a record's frames (ParsedRecord's stack bytes)
// gets a small integer id, the same for the same bytes. A run has a few thousand distinct stacks
// and hundreds of thousands of records, so a record costs a hash of its stack bytes (4 bytes at a
// time) and one byte comparison with the stack stored under that hash — no string per record. The
// text is decoded once per distinct stack; `memo` holds what a caller derives from a stack (the
// analysis keeps the stack's identity there).

/** Stack texts by id, and a caller's per-stack slot. Also implemented by a parse worker's table. */
export interface StackTable {
  text(id: number): string;
  memo: unknown[];
}

import { ByteKeyTable } from './byte-keys.js';

type FastBuffer = Buffer & { latin1Slice(start: number, end: number): string; utf8Slice(start: number, end: number): string };

/**
 * Past this many distinct stacks the table starts over (pathological inputs only): ids are
 * reused, so a caller must not keep an id past the record it came with (memo is cleared too).
 */
export const MAX_STACKS = 50_000;

/** 32-bit hash of bytes[0, len); `words` views the same memory (bytes must start at offset 0). */
export function hashStackBytes(words: Int32Array, bytes: Uint8Array, len: number): number {
  let h = len | 0;
  const n = len >>> 2;
  for (let i = 0; i < n; i++) {
    let k = Math.imul(words[i], 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  for (let i = n << 2; i < len; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h;
}

export class StackInterner implements StackTable {
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
   * Id of the stack bytes[0, len) (`words` views the same memory, see hashStackBytes); `ascii`:
   * every byte is below 0x80, so the text is its latin1 decoding (else UTF-8).
   */
  idOf(bytes: Buffer, words: Int32Array, len: number, ascii: boolean): number {
    const h = hashStackBytes(words, bytes, len);
    const found = this.keys.find(h, words, bytes, len);
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
