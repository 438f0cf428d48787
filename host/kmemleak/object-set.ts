// The kmemleak objects printed by one snapshot, identified by (address, jiffies) — or (address,
// line) for a record without jiffies — each with a small integer value (the analysis stores the
// index of the group the object went to). Used to drop a record printed twice in one read and to
// recognise objects a later read prints again.
//
// Why not a Map<string, …>: a snapshot can hold hundreds of thousands of objects, and a string key
// per object is ~100 bytes of heap that lives through the whole read (so the GC promotes it and the
// old generation, and the RSS, grow with the largest snapshot). Here an object costs one 16-byte
// slot of typed arrays (at most 4/5 full): address halves, jiffies as an offset from the first
// object's, value and address length packed in one word. Numbers, outside the JS heap, no garbage.
// The rare objects that do not fit (address over 16 hex digits, no jiffies, jiffies more than
// 2^31 away from the first object's) go to a string-keyed Map.

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
const SMALL_SET_SLOTS = 1 << 16;
/** Values must be below this (they share a word with the address length). */
const MAX_VALUE = (1 << 26) - 2;
const LEN_SHIFT = 26;
/** reserve()'s answer for an object that goes to the Map. */
const OTHER_PLACE = -2;
const VALUE_MASK = (1 << LEN_SHIFT) - 1;

export class ObjectSet {
  private cap = MIN_CAPACITY;
  /**
   * Slot i is words 4i..4i+3: tag = (value + 1) | (address length << 26) (0 = empty slot),
   * address high half, low half, jiffies − base. One slot's words share a cache line: a probe
   * into a set of hundreds of thousands of objects costs one cache miss, not four.
   */
  private s = new Int32Array(this.cap * 4);
  private count = 0;
  private base = 0;
  private haveBase = false;
  private other: Map<string, number> | null = null;

  get size(): number {
    return this.count + (this.other?.size ?? 0);
  }

  /** Empty the set; keeps its storage unless it is much bigger than what it last held. */
  clear(): void {
    if (this.cap > MIN_CAPACITY && this.count * 8 < this.cap) this.alloc(MIN_CAPACITY);
    else this.s.fill(0);
    this.count = 0;
    this.haveBase = false;
    this.other = null;
  }

  private alloc(cap: number): void {
    this.cap = cap;
    this.s = new Int32Array(cap * 4);
  }

  /** Word index (4 × slot) of the key, or of the empty slot where it would go. */
  private slot(hi: number, lo: number, len: number, dj: number): number {
    let h = Math.imul(hi ^ Math.imul(lo, 0x9e3779b1), 0x85ebca6b) ^ Math.imul(dj, 0xc2b2ae35) ^ len;
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 13;
    const mask = this.cap * 4 - 1;
    let i = (h << 2) & mask;
    const S = this.s;
    for (;;) {
      const t = S[i];
      if (t === 0 || (t >>> LEN_SHIFT === len && S[i + 2] === lo && S[i + 1] === hi && S[i + 3] === dj)) return i;
      i = (i + 4) & mask;
    }
  }

  /** The jiffies offset for a typed-array slot, or NaN when the object goes to the Map. */
  private offsetOf(k: ObjectKey): number {
    if (k.addrLen > 16 || k.jiffies === null) return NaN;
    if (!this.haveBase) return 0;
    const d = k.jiffies - this.base;
    return d >= -2147483648 && d <= 2147483647 ? d : NaN;
  }

  private static otherKey(k: ObjectKey): string {
    return k.jiffies === null ? `${k.address}:?${k.line}` : `${k.address}:${k.jiffies}`;
  }

  /** The value stored for the object, or -1. */
  get(k: ObjectKey): number {
    const d = this.offsetOf(k);
    if (d !== d) return this.other?.get(ObjectSet.otherKey(k)) ?? -1;
    if (this.count === 0) return -1;
    const t = this.s[this.slot(k.addrHi | 0, k.addrLo | 0, k.addrLen, d)];
    return t === 0 ? -1 : (t & VALUE_MASK) - 1;
  }

  has(k: ObjectKey): boolean {
    return this.get(k) >= 0;
  }

  /**
   * One probe for "add if absent": -1 if the set holds the object; else a place to give
   * commit() with the object's value once known (no other object may be added in between).
   */
  reserve(k: ObjectKey): number {
    const d = this.offsetOf(k);
    if (d !== d) return this.other?.has(ObjectSet.otherKey(k)) ? -1 : OTHER_PLACE;
    if (!this.haveBase) {
      this.base = k.jiffies!;
      this.haveBase = true;
    }
    // Up to 64k slots (1 MiB, in cache) a set is kept at most half full, where probes are what a
    // lookup costs; a bigger one at most 4/5 full, where its size (cache misses) is.
    if (this.cap < SMALL_SET_SLOTS ? (this.count + 1) * 2 > this.cap : (this.count + 1) * 5 > this.cap * 4) this.grow();
    const i = this.slot(k.addrHi | 0, k.addrLo | 0, k.addrLen, d);
    return this.s[i] === 0 ? i : -1;
  }

  /** Add the object reserve() found absent, with `value` (0 ≤ value < 2^26 − 1). */
  commit(place: number, k: ObjectKey, value: number): void {
    if (value < 0 || value > MAX_VALUE) throw new RangeError(`ObjectSet value out of range: ${value}`);
    if (place === OTHER_PLACE) {
      (this.other ??= new Map()).set(ObjectSet.otherKey(k), value);
      return;
    }
    this.count++;
    this.s[place + 1] = k.addrHi | 0;
    this.s[place + 2] = k.addrLo | 0;
    this.s[place + 3] = k.jiffies! - this.base;
    this.s[place] = (value + 1) | (k.addrLen << LEN_SHIFT);
  }

  /** Store the object with `value` (0 ≤ value < 2^26 − 1), replacing any value it had. */
  set(k: ObjectKey, value: number): void {
    const place = this.reserve(k);
    if (place !== -1) {
      this.commit(place, k, value);
      return;
    }
    if (value < 0 || value > MAX_VALUE) throw new RangeError(`ObjectSet value out of range: ${value}`);
    const d = this.offsetOf(k);
    if (d !== d) this.other!.set(ObjectSet.otherKey(k), value);
    else this.s[this.slot(k.addrHi | 0, k.addrLo | 0, k.addrLen, d)] = (value + 1) | (k.addrLen << LEN_SHIFT);
  }

  private grow(): void {
    const { s: old, cap } = this;
    this.alloc(cap * 2);
    const S = this.s;
    for (let j = 0; j < cap * 4; j += 4) {
      const t = old[j];
      if (t === 0) continue;
      const i = this.slot(old[j + 1], old[j + 2], t >>> LEN_SHIFT, old[j + 3]);
      S[i] = t;
      S[i + 1] = old[j + 1];
      S[i + 2] = old[j + 2];
      S[i + 3] = old[j + 3];
    }
  }

  /** Call `fn(value)` for every object of this set that `other` does not hold. */
  forEachMissingIn(other: ObjectSet, fn: (value: number) => void): void {
    const S = this.s;
    // The other set measures jiffies from its own base: compare absolute values.
    const shift = this.base - other.base;
    const comparable = other.haveBase && other.count > 0;
    for (let j = 0; j < this.cap * 4; j += 4) {
      const t = S[j];
      if (t === 0) continue;
      const hi = S[j + 1];
      const lo = S[j + 2];
      const dj = S[j + 3];
      let found = false;
      if (comparable) {
        const d = dj + shift;
        if (d >= -2147483648 && d <= 2147483647) found = other.s[other.slot(hi, lo, t >>> LEN_SHIFT, d)] !== 0;
      }
      // Objects whose offset does not fit the other set's range are in its Map, if anywhere.
      if (!found && other.other !== null && (!comparable || !(dj + shift >= -2147483648 && dj + shift <= 2147483647))) {
        found = other.other.has(`${hexKeyOf(hi, lo, t >>> LEN_SHIFT)}:${this.base + dj}`);
      }
      if (!found) fn((t & VALUE_MASK) - 1);
    }
    if (this.other) {
      for (const [key, v] of this.other) {
        if (other.other?.has(key)) continue;
        if (other.hasOtherKey(key)) continue;
        fn(v);
      }
    }
  }

  /** Whether an object this set keeps in its Map (by its text key) is in the typed slots here. */
  private hasOtherKey(key: string): boolean {
    // `address:jiffies` with a ≤16-digit address and jiffies in range would be in the slots.
    const colon = key.lastIndexOf(':');
    const address = key.slice(0, colon);
    const j = key.slice(colon + 1);
    if (address.length > 16 || j.startsWith('?') || this.count === 0) return false;
    const jiffies = Number(j);
    const d = jiffies - this.base;
    if (!(d >= -2147483648 && d <= 2147483647)) return false;
    const n = address.length;
    const hi = n > 8 ? parseInt(address.slice(0, n - 8), 16) | 0 : 0;
    const lo = parseInt(address.slice(n > 8 ? n - 8 : 0), 16) | 0;
    return this.s[this.slot(hi, lo, n, d)] !== 0;
  }
}

const HEX = '0123456789abcdef';

/** The lowercase address text of a slot (len ≤ 16 digits). */
function hexKeyOf(hi: number, lo: number, len: number): string {
  let out = '';
  for (let k = len - 1; k >= 0; k--) out += HEX[(k >= 8 ? hi >>> ((k - 8) * 4) : lo >>> (k * 4)) & 15];
  return out;
}
