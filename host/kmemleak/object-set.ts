// The kmemleak objects printed by one snapshot, identified by (address, jiffies) — or (address,
// line) for a record without jiffies — each with a small integer value (the analysis stores the
// index of the group the object went to). Used to drop a record printed twice in one read and to
// recognise objects a later read prints again.
//
// Why not a Map<string, …>: a snapshot can hold hundreds of thousands of objects, and a string key
// per object is ~100 bytes of heap that lives through the whole read (so the GC promotes it and the
// old generation, and the RSS, grow with the largest snapshot). Here an object costs one slot of
// typed arrays (4 words, at most 2/3 full): numbers, outside the JS heap, no garbage. Addresses
// longer than 16 hex digits (not a real kernel pointer) fall back to a string-keyed Map.

/** What identifies an object: ParsedRecord has these. */
export interface ObjectKey {
  addrHi: number;
  addrLo: number;
  addrLen: number;
  readonly address: string;
  jiffies: number | null;
  line: number;
}

const MIN_CAPACITY = 1024;

export class ObjectSet {
  private cap = MIN_CAPACITY;
  /** Per slot: address high and low halves, address length (0 = empty slot). */
  private hi = new Int32Array(this.cap);
  private lo = new Int32Array(this.cap);
  private len = new Uint8Array(this.cap);
  /** Per slot: jiffies, or −(line + 1) when the record had none (jiffies are never negative). */
  private when = new Float64Array(this.cap);
  private val = new Int32Array(this.cap);
  private count = 0;
  private long: Map<string, number> | null = null;

  get size(): number {
    return this.count + (this.long?.size ?? 0);
  }

  /** Empty the set; keeps its storage unless it is much bigger than what it last held. */
  clear(): void {
    if (this.cap > MIN_CAPACITY && this.count * 8 < this.cap) this.alloc(MIN_CAPACITY);
    else this.len.fill(0);
    this.count = 0;
    this.long = null;
  }

  private alloc(cap: number): void {
    this.cap = cap;
    this.hi = new Int32Array(cap);
    this.lo = new Int32Array(cap);
    this.len = new Uint8Array(cap);
    this.when = new Float64Array(cap);
    this.val = new Int32Array(cap);
  }

  /** Slot of the key, or of the empty slot where it would go. */
  private slot(hi: number, lo: number, len: number, when: number): number {
    let h = Math.imul(hi ^ Math.imul(lo, 0x9e3779b1), 0x85ebca6b) ^ Math.imul(when | 0, 0xc2b2ae35) ^ Math.imul((when / 4294967296) | 0, 0x27d4eb2f) ^ len;
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 13;
    const mask = this.cap - 1;
    let i = h & mask;
    const L = this.len;
    for (;;) {
      const l = L[i];
      if (l === 0 || (l === len && this.lo[i] === lo && this.hi[i] === hi && this.when[i] === when)) return i;
      i = (i + 1) & mask;
    }
  }

  private static when(k: ObjectKey): number {
    return k.jiffies === null ? -(k.line + 1) : k.jiffies;
  }

  private static longKey(k: ObjectKey): string {
    return k.jiffies === null ? `${k.address}:?${k.line}` : `${k.address}:${k.jiffies}`;
  }

  /** The value stored for the object, or -1. */
  get(k: ObjectKey): number {
    if (k.addrLen > 16) return this.long?.get(ObjectSet.longKey(k)) ?? -1;
    const i = this.slot(k.addrHi | 0, k.addrLo | 0, k.addrLen, ObjectSet.when(k));
    return this.len[i] === 0 ? -1 : this.val[i];
  }

  has(k: ObjectKey): boolean {
    return this.get(k) >= 0;
  }

  /** Store the object with `value` (≥ 0), replacing any value it had. */
  set(k: ObjectKey, value: number): void {
    if (k.addrLen > 16) {
      (this.long ??= new Map()).set(ObjectSet.longKey(k), value);
      return;
    }
    const hi = k.addrHi | 0;
    const lo = k.addrLo | 0;
    const when = ObjectSet.when(k);
    let i = this.slot(hi, lo, k.addrLen, when);
    if (this.len[i] === 0) {
      if ((this.count + 1) * 3 > this.cap * 2) {
        this.grow();
        i = this.slot(hi, lo, k.addrLen, when);
      }
      this.count++;
      this.hi[i] = hi;
      this.lo[i] = lo;
      this.len[i] = k.addrLen;
      this.when[i] = when;
    }
    this.val[i] = value;
  }

  private grow(): void {
    const { hi, lo, len, when, val, cap } = this;
    this.alloc(cap * 2);
    for (let j = 0; j < cap; j++) {
      if (len[j] === 0) continue;
      const i = this.slot(hi[j], lo[j], len[j], when[j]);
      this.hi[i] = hi[j];
      this.lo[i] = lo[j];
      this.len[i] = len[j];
      this.when[i] = when[j];
      this.val[i] = val[j];
    }
  }

  /** Call `fn(value)` for every object of this set that `other` does not hold. */
  forEachMissingIn(other: ObjectSet, fn: (value: number) => void): void {
    const { hi, lo, len, when, val } = this;
    for (let j = 0; j < this.cap; j++) {
      if (len[j] === 0) continue;
      const i = other.slot(hi[j], lo[j], len[j], when[j]);
      if (other.len[i] === 0) fn(val[j]);
    }
    if (this.long) for (const [key, v] of this.long) if (!other.long?.has(key)) fn(v);
  }
}
