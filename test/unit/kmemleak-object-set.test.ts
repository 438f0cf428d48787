// ObjectSet (host/kmemleak/object-set.ts) behaves like a Map keyed by the text `address:jiffies`
// (`address:?line` without jiffies), which is what the analysis used before: checked against
// such a Map on random objects, including the ones that do not fit its typed slots (long
// addresses, no jiffies, jiffies far from the first object's) and across two sets.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ObjectSet, type ObjectKey } from '../../host/kmemleak/object-set.js';
import { hexOf } from '../../host/kmemleak/record.js';
import { rng } from '../../scripts/fuzz/mutate.js';

function key(address: string, jiffies: number | null, line: number): ObjectKey {
  const n = address.length;
  return {
    address, jiffies, line, addrLen: n,
    addrHi: n <= 16 && n > 8 ? parseInt(address.slice(0, n - 8), 16) : 0,
    addrLo: n <= 16 ? parseInt(address.slice(Math.max(0, n - 8)), 16) : 0,
  };
}

const text = (k: ObjectKey): string => (k.jiffies === null ? `${k.address}:?${k.line}` : `${k.address}:${k.jiffies}`);

function randomKey(r: () => number, pool: ObjectKey[]): ObjectKey {
  if (pool.length && r() < 0.3) return pool[Math.floor(r() * pool.length)]; // seen before
  const len = r() < 0.05 ? 17 + Math.floor(r() * 4) : r() < 0.2 ? 1 + Math.floor(r() * 16) : 16;
  let a = '';
  for (let i = 0; i < len; i++) a += '0123456789abcdef'[Math.floor(r() * (i === 0 && r() < 0.5 ? 1 : 16))]; // leading zeros too
  const jiffies = r() < 0.05 ? null : r() < 0.05 ? Math.floor(r() * 2 ** 52) : 4294667296 + Math.floor(r() * 1e6);
  return key(a, jiffies, 1 + Math.floor(r() * 1e6));
}

test('ObjectSet matches a Map keyed by address:jiffies, within and across sets', () => {
  const r = rng(99);
  for (let round = 0; round < 20; round++) {
    const prev = new ObjectSet();
    const cur = new ObjectSet();
    const prevRef = new Map<string, number>();
    const curRef = new Map<string, number>();
    const pool: ObjectKey[] = [];
    for (let i = 0; i < 3000; i++) {
      const k = randomKey(r, pool);
      pool.push(k);
      const v = Math.floor(r() * 5000);
      prev.set(k, v);
      prevRef.set(text(k), v);
    }
    for (let i = 0; i < 3000; i++) {
      const k = r() < 0.5 ? pool[Math.floor(r() * pool.length)] : randomKey(r, pool);
      assert.equal(cur.get(k), curRef.get(text(k)) ?? -1);
      const v = Math.floor(r() * 5000);
      cur.set(k, v);
      curRef.set(text(k), v);
      assert.equal(prev.has(k), prevRef.has(text(k)));
    }
    assert.equal(cur.size, curRef.size);
    const missing: number[] = [];
    prev.forEachMissingIn(cur, (v) => missing.push(v));
    const want = [...prevRef].filter(([k]) => !curRef.has(k)).map(([, v]) => v);
    assert.deepEqual(missing.sort((a, b) => a - b), want.sort((a, b) => a - b));
    cur.clear();
    assert.equal(cur.size, 0);
    assert.equal(cur.get(pool[0]), -1);
  }
});

test('reserve + commit (add if absent, one probe) matches a Map', () => {
  const r = rng(7);
  for (let round = 0; round < 20; round++) {
    const set = new ObjectSet();
    const ref = new Map<string, number>();
    const pool: ObjectKey[] = [];
    for (let i = 0; i < 5000; i++) {
      const k = randomKey(r, pool);
      pool.push(k);
      const place = set.reserve(k);
      assert.equal(place === -1, ref.has(text(k)), `round ${round} object ${i}: present`);
      if (place !== -1) {
        const v = Math.floor(r() * 1000);
        set.commit(place, k, v);
        ref.set(text(k), v);
      }
      assert.equal(set.get(k), ref.get(text(k)), `round ${round} object ${i}: value`);
    }
    assert.equal(set.size, ref.size);
    for (const k of pool) assert.equal(set.get(k), ref.get(text(k)));
  }
});

test('hexOf gives the address text back, leading zeros kept', () => {
  assert.equal(hexOf(0xffff8882, 0xe7545a40, 16), 'ffff8882e7545a40');
  assert.equal(hexOf(0, 0x0000abcd, 8), '0000abcd');
  assert.equal(hexOf(0, 0xc413bd00, 8), 'c413bd00');
  assert.equal(hexOf(0x7d, 0xfd232a16, 12), '007dfd232a16');
});
