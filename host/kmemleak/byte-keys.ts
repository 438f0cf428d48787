// Byte strings numbered 0, 1, 2, ... in the order they are added, found again by their hash and
// a full compare: the shared core of the stack table (stack text → id) and the backtrace block
// memo (block bytes → what parsing it gave). Keys are kept as 32-bit words so that a compare runs
// a word at a time in JS (a native Buffer.compare per record costs more in the call than in the
// compare).

/**
 * The stored key `key`/`keyBytes` (same memory) holds the same `len` bytes as `words`/`bytes`
 * (same memory, from offset 0).
 */
function sameBytes(key: Int32Array, keyBytes: Uint8Array, words: Int32Array, bytes: Uint8Array, len: number): boolean {
  const n = len >>> 2;
  for (let k = 0; k < n; k++) if (key[k] !== words[k]) return false;
  for (let k = n << 2; k < len; k++) if (keyBytes[k] !== bytes[k]) return false;
  return true;
}

/** The stored key `key`/`keyBytes` holds the len bytes at `start` of `view`. */
function sameBytesIn(key: Int32Array, keyBytes: Uint8Array, view: DataView, start: number, len: number, littleEndian: boolean): boolean {
  const n = len >>> 2;
  for (let k = 0; k < n; k++) if (key[k] !== view.getInt32(start + 4 * k, littleEndian)) return false;
  for (let k = n << 2; k < len; k++) if (keyBytes[k] !== view.getUint8(start + k)) return false;
  return true;
}

export class ByteKeyTable {
  private keys: Int32Array[] = [];
  private keyBytes: Uint8Array[] = [];
  private lens: number[] = [];
  /** Open addressing: slot → id + 1 (0 empty), and the slot's hash. */
  private slots = new Int32Array(1 << 12);
  private hashes = new Int32Array(1 << 12);

  get size(): number {
    return this.lens.length;
  }

  /** Id of the key bytes[0, len) whose hash is h, or -1. `words` views bytes' memory from offset 0. */
  find(h: number, words: Int32Array, bytes: Uint8Array, len: number): number {
    const mask = this.slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = this.slots[i];
      if (s === 0) return -1;
      if (this.hashes[i] === h && this.lens[s - 1] === len && sameBytes(this.keys[s - 1], this.keyBytes[s - 1], words, bytes, len)) return s - 1;
    }
  }

  /**
   * Id of the key equal to the len bytes at `start` of `view`, whose hash is h, or -1. Words are
   * read as `littleEndian` says (the byte order of the keys' Int32Arrays).
   */
  findIn(h: number, view: DataView, start: number, len: number, littleEndian: boolean): number {
    const mask = this.slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = this.slots[i];
      if (s === 0) return -1;
      if (this.hashes[i] === h && this.lens[s - 1] === len && sameBytesIn(this.keys[s - 1], this.keyBytes[s - 1], view, start, len, littleEndian)) return s - 1;
    }
  }

  /** Add bytes[0, len) (not in the table; hash h): its id, the next number. */
  add(h: number, bytes: Uint8Array, len: number): number {
    const id = this.lens.length;
    const key = new Int32Array((len + 3) >>> 2);
    const keyBytes = new Uint8Array(key.buffer);
    keyBytes.set(bytes.subarray(0, len));
    this.keys.push(key);
    this.keyBytes.push(keyBytes);
    this.lens.push(len);
    if ((id + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    this.put(h, id);
    return id;
  }

  clear(): void {
    this.keys = [];
    this.keyBytes = [];
    this.lens = [];
    this.slots = new Int32Array(1 << 12);
    this.hashes = new Int32Array(1 << 12);
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
