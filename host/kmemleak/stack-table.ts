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

/**
 * A stored key (see StackInterner.keys) holds the same `len` bytes as bytes/words: compared a word
 * at a time in JS (a native Buffer.compare per record costs more in the call than in the compare).
 */
export function sameStack(key: Int32Array, keyBytes: Uint8Array, words: Int32Array, bytes: Uint8Array, len: number): boolean {
  const n = len >>> 2;
  for (let k = 0; k < n; k++) if (key[k] !== words[k]) return false;
  for (let k = n << 2; k < len; k++) if (keyBytes[k] !== bytes[k]) return false;
  return true;
}

export class StackInterner implements StackTable {
  /** Stack bytes by id: as 32-bit words (the last one zero-padded), the same memory as bytes, and their length. */
  private readonly keys: Int32Array[] = [];
  private readonly keyBytes: Uint8Array[] = [];
  private readonly keyLens: number[] = [];
  private readonly texts: string[] = [];
  memo: unknown[] = [];
  /** Incremented each time the table starts over (see MAX_STACKS). */
  epoch = 0;
  /** Open addressing: slot → id + 1 (0 empty), and the slot's hash. */
  private slots = new Int32Array(1 << 12);
  private hashes = new Int32Array(1 << 12);

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
    const mask = this.slots.length - 1;
    let i = h & mask;
    for (;;) {
      const s = this.slots[i];
      if (s === 0) break;
      if (this.hashes[i] === h && this.keyLens[s - 1] === len && sameStack(this.keys[s - 1], this.keyBytes[s - 1], words, bytes, len)) return s - 1;
      i = (i + 1) & mask;
    }
    if (this.texts.length >= MAX_STACKS) {
      this.keys.length = 0;
      this.keyLens.length = 0;
      this.keyBytes.length = 0;
      this.texts.length = 0;
      this.memo = [];
      this.slots.fill(0);
      this.epoch++;
    }
    const id = this.texts.length;
    const key = new Int32Array((len + 3) >>> 2);
    const keyBytes = new Uint8Array(key.buffer);
    keyBytes.set(bytes.subarray(0, len));
    this.keys.push(key);
    this.keyBytes.push(keyBytes);
    this.keyLens.push(len);
    this.texts.push(ascii ? (bytes as FastBuffer).latin1Slice(0, len) : (bytes as FastBuffer).utf8Slice(0, len));
    if ((id + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    this.put(h, id);
    return id;
  }

  private put(h: number, id: number): void {
    const mask = this.slots.length - 1;
    let i = h & mask;
    while (this.slots[i] !== 0) i = (i + 1) & mask;
    this.slots[i] = id + 1;
    this.hashes[i] = h;
  }

  private rehash(size: number): void {
    const oldSlots = this.slots;
    const oldHashes = this.hashes;
    this.slots = new Int32Array(size);
    this.hashes = new Int32Array(size);
    for (let i = 0; i < oldSlots.length; i++) if (oldSlots[i] !== 0) this.put(oldHashes[i], oldSlots[i] - 1);
  }
}
