// ByteKeyTable: the exact-bytes lookup under the stack table and the block memo. Its compare reads
// 8 bytes at a time as doubles, where +0 === -0 and NaN !== NaN: keys made of such words must
// still be told apart exactly and found again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteKeyTable, hashBytes } from '../../host/kmemleak/byte-keys.js';

const viewOf = (b: Buffer): DataView => new DataView(b.buffer, b.byteOffset, b.length);

/** Look `key` up where it lies at `offset` of a larger buffer (any alignment). */
function findAt(table: ByteKeyTable, key: Buffer, offset: number, h = hashBytes(viewOf(key), 0, key.length)): number {
  const host = Buffer.alloc(offset + key.length + 11, 0x55);
  key.copy(host, offset);
  return table.find(h, viewOf(host), offset, key.length);
}

test('byte keys: words that are +0 and -0 as doubles are different keys', () => {
  const plusZero = Buffer.alloc(16); // two 8-byte words of zeros: +0, +0
  const minusZero = Buffer.alloc(16);
  minusZero[7] = 0x80; // the first word is -0 as a little-endian double
  const table = new ByteKeyTable();
  // The same hash for both, so that only the compare can tell them apart.
  const h = 12345;
  assert.equal(table.add(h, plusZero, 16), 0);
  assert.equal(findAt(table, minusZero, 3, h), -1, '-0 word found as +0');
  assert.equal(table.add(h, minusZero, 16), 1);
  for (const off of [0, 1, 5, 8]) {
    assert.equal(findAt(table, plusZero, off, h), 0);
    assert.equal(findAt(table, minusZero, off, h), 1);
  }
});

test('byte keys: words that are NaN as doubles are found again', () => {
  const nan = Buffer.from([0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 1, 2, 3, 4, 5, 6, 0xff, 0xff, 9]); // a quiet NaN, then a NaN with payload
  const table = new ByteKeyTable();
  const id = table.add(hashBytes(viewOf(nan), 0, nan.length), nan, nan.length);
  for (const off of [0, 2, 7]) assert.equal(findAt(table, nan, off), id);
  const other = Buffer.from(nan);
  other[0] = 1; // another NaN payload
  assert.equal(findAt(table, other, 0, hashBytes(viewOf(nan), 0, nan.length)), -1);
});

test('byte keys: every length up to 40 and a one-byte change at every position', () => {
  const table = new ByteKeyTable();
  const keys: Buffer[] = [];
  for (let len = 0; len <= 40; len++) {
    const k = Buffer.alloc(len);
    for (let i = 0; i < len; i++) k[i] = 0x20 + ((i * 7 + len) % 90);
    keys.push(k);
    assert.equal(table.add(hashBytes(viewOf(k), 0, len), k, len), len);
  }
  for (const k of keys) {
    for (const off of [0, 1, 3, 4, 6]) assert.equal(findAt(table, k, off), k.length);
    for (let i = 0; i < k.length; i++) {
      const changed = Buffer.from(k);
      changed[i] ^= 1;
      // Same hash as the original: the compare alone must find the byte that differs.
      assert.equal(findAt(table, changed, 1, hashBytes(viewOf(k), 0, k.length)), -1, `len ${k.length}, byte ${i}`);
    }
  }
});
