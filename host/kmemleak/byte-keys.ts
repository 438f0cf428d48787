// Byte strings numbered 0, 1, 2, ... in the order they are added, found again by their hash and
// a full compare: the shared core of the stack table (stack text → id) and the backtrace block
// memo (block bytes → what parsing it gave). Keys are kept in 8-byte-aligned memory and looked up
// through a DataView, so that hash and compare run a word at a time in JS wherever the bytes lie
// (a native Buffer.compare per record costs more in the call than in the compare).

/** Words read from a DataView in the byte order the keys' typed arrays use. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * 32-bit hash of the len bytes at `start` of `view`, read a word at a time wherever they lie (no
 * copy to aligned memory first): two independent lanes over alternate words, so the
 * multiplications of one do not wait for the other's.
 */
export function hashBytes(view: DataView, start: number, len: number): number {
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

/**
 * The stored key (`key`, `keyWords` and `keyBytes` view the same memory) holds the len bytes at
 * `start` of `view`. Compared 8 bytes at a time as doubles (half the loads of 32-bit words): two
 * non-zero doubles are === exactly when their bits are equal. Zero (+0 === -0) and unequal
 * doubles (a NaN is unequal to itself) are decided on their 32-bit words.
 */
function sameBytes(key: Float64Array, keyWords: Int32Array, keyBytes: Uint8Array, view: DataView, start: number, len: number): boolean {
  const n = len >>> 3;
  for (let k = 0; k < n; k++) {
    const at = start + 8 * k;
    const x = view.getFloat64(at, LITTLE_ENDIAN);
    if (key[k] === x && x !== 0) continue;
    if (keyWords[2 * k] !== view.getInt32(at, LITTLE_ENDIAN) || keyWords[2 * k + 1] !== view.getInt32(at + 4, LITTLE_ENDIAN)) return false;
  }
  for (let k = n << 3; k < len; k++) if (keyBytes[k] !== view.getUint8(start + k)) return false;
  return true;
}

export class ByteKeyTable {
  private keys: Float64Array[] = [];
  private keyWords: Int32Array[] = [];
  private keyBytes: Uint8Array[] = [];
  private lens: number[] = [];
  /** Open addressing: slot → id + 1 (0 empty), and the slot's hash. */
  private slots = new Int32Array(1 << 12);
  private hashes = new Int32Array(1 << 12);

  get size(): number {
    return this.lens.length;
  }

  /** Id of the key equal to the len bytes at `start` of `view`, whose hash (hashBytes) is h, or -1. */
  find(h: number, view: DataView, start: number, len: number): number {
    const mask = this.slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = this.slots[i];
      if (s === 0) return -1;
      if (this.hashes[i] === h && this.lens[s - 1] === len && sameBytes(this.keys[s - 1], this.keyWords[s - 1], this.keyBytes[s - 1], view, start, len)) return s - 1;
    }
  }

  /** Add bytes[0, len) (not in the table; hash h): its id, the next number. */
  add(h: number, bytes: Uint8Array, len: number): number {
    const id = this.lens.length;
    const mem = new ArrayBuffer((len + 7) & ~7);
    const keyBytes = new Uint8Array(mem);
    keyBytes.set(bytes.subarray(0, len));
    this.keys.push(new Float64Array(mem));
    this.keyWords.push(new Int32Array(mem));
    this.keyBytes.push(keyBytes);
    this.lens.push(len);
    if ((id + 1) * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    this.put(h, id);
    return id;
  }

  clear(): void {
    this.keys = [];
    this.keyWords = [];
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
