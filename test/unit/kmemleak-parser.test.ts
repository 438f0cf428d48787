// Parser behaviour beyond the golden eras: bad input never throws, and is counted.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { FIXTURES, SHARED_FIXTURES } from '../helpers/paths.js';
import { RECOGNISERS, kmemleakRecords, parseKmemleakStream, parseKmemleakText } from '../../host/kmemleak/parser.js';
import { LineSplitter } from '../../host/kmemleak/lines.js';
import type { KmemleakRecord } from '../../host/kmemleak/types.js';

const LAB = fs.readFileSync(path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-insmod.txt'), 'utf8');
const SEED = fs.readFileSync(path.join(SHARED_FIXTURES, 'kmemleak', 'seed-arm32-vendor-4.19.txt'), 'utf8');

test('the real lab capture parses completely: 10 records, nothing unparsed', () => {
  const { records, counters } = parseKmemleakText(LAB);
  assert.equal(records.length, 10);
  assert.equal(counters.unparsedLines, 0);
  assert.equal(records[0].comm, 'insmod');
  assert.equal(records[0].frames[1].address, 'ffffffffc003102d');
  assert.equal(records[9].size, 4096);
});

test('the recognisers form a table with names and regexes', () => {
  assert.ok(RECOGNISERS.length >= 10);
  for (const r of RECOGNISERS) {
    assert.equal(typeof r.name, 'string');
    assert.ok(r.re instanceof RegExp);
  }
  assert.ok(RECOGNISERS.some((r) => r.name === 'header'));
});

test('empty input gives no records and no errors', () => {
  const r = parseKmemleakText('');
  assert.equal(r.records.length, 0);
  assert.equal(r.counters.lines, 0);
  assert.equal(r.counters.unparsedLines, 0);
});

test('binary garbage is counted as unparsed, never thrown on', () => {
  const buf = Buffer.alloc(64 * 1024);
  let x = 12345;
  for (let i = 0; i < buf.length; i++) { x = (x * 1103515245 + 12345) >>> 0; buf[i] = x >>> 24; }
  const r = parseKmemleakText(buf.toString('latin1'));
  assert.equal(r.records.length, 0);
  assert.ok(r.counters.unparsedLines > 0);
  assert.ok(r.counters.unparsedSamples.length <= 20);
  for (const s of r.counters.unparsedSamples) assert.ok(s.text.length <= 201);
});

test('a 10 MB single line is cut, flagged overlong, and the records around it survive', async () => {
  const big = 'x'.repeat(10 * 1024 * 1024);
  const text = LAB.split('\n').slice(0, 13).join('\n') + '\n' + big + '\n' + LAB;
  const records: KmemleakRecord[] = [];
  const counters = await parseKmemleakStream(Readable.from([Buffer.from(text)]), (r) => records.push(r));
  assert.equal(counters.overlongLines, 1);
  assert.equal(counters.unparsedLines, 1);
  assert.equal(records.length, 11);
  assert.equal(records.filter((r) => r.issues.includes('garbage-inside')).length, 1);
});

test('the line splitter never keeps more than its cap of a line', () => {
  const seen: Array<[number, boolean]> = [];
  const sp = new LineSplitter((t, o) => seen.push([t.length, o]), 100);
  for (let i = 0; i < 1000; i++) sp.pushString('y'.repeat(1000));
  sp.pushString('\nshort\n');
  sp.end();
  assert.deepEqual(seen, [[100, true], [5, false]]);
  assert.equal(sp.lastLineUnterminated, false);
});

test('CRLF, lone CR at end and tabs are tolerated', () => {
  const crlf = LAB.replace(/\n/g, '\r\n');
  const a = parseKmemleakText(crlf);
  const b = parseKmemleakText(LAB);
  assert.deepEqual(a.records, b.records);
  const tabbed = LAB.replace(/^ {4}/gm, '\t');
  assert.equal(parseKmemleakText(tabbed).records.length, 10);
  assert.equal(parseKmemleakText(tabbed).counters.unparsedLines, 0);
});

test('a record cut at the end of a half-written file is flagged truncated', () => {
  const cut = LAB.slice(0, LAB.indexOf('do_init_module', 2000) + 5); // mid-line, no newline
  const r = parseKmemleakText(cut);
  const last = r.records[r.records.length - 1];
  assert.equal(last.truncated, true);
  assert.ok(last.issues.includes('eof-partial-line'));
  assert.equal(r.counters.truncatedRecords, 1);
});

test('a header alone (no comm, no backtrace) is a truncated record, not an error', () => {
  const r = parseKmemleakText('unreferenced object 0xffff888012345678 (size 64):\n');
  assert.equal(r.records.length, 1);
  assert.equal(r.records[0].truncated, true);
  assert.deepEqual(r.records[0].issues, ['no-comm', 'no-backtrace']);
});

test('the seed copy with no-break spaces parses like clean text', () => {
  const r = parseKmemleakText(SEED);
  assert.equal(r.records.length, 2);
  assert.equal(r.counters.unparsedLines, 0);
  assert.equal(r.records[0].hex?.length, 64);
  assert.equal(r.records[0].terminator, true);
  assert.equal(r.records[0].frames.length, 12);
  assert.equal(r.records[0].pointerBits, 32);
});

test('streaming from an async iterable of lines gives the same records', async () => {
  const lines = LAB.split('\n');
  async function* gen(): AsyncGenerator<string> { for (const l of lines) yield l; }
  const got: KmemleakRecord[] = [];
  for await (const r of kmemleakRecords(gen())) got.push(r);
  assert.deepEqual(got, parseKmemleakText(LAB).records);
});

test('more hex rows than announced, junk between frames: counted, the record is kept', () => {
  const text = [
    'unreferenced object 0xffff888012345678 (size 8):',
    '  comm "a b c", pid 7, jiffies 4294967000 (age 1.5s)',
    '  hex dump (first 8 bytes):',
    '    01 02 03 04 05 06 07 08                          ........',
    '    09 0a                                            ..',
    '  backtrace:',
    '    [<ffffffff81000000>] foo+0x1/0x2',
    '    ??? not a frame',
    '    [<ffffffff81000001>] bar+0x1/0x2 [baz]',
  ].join('\n') + '\n';
  const r = parseKmemleakText(text);
  assert.equal(r.records.length, 1);
  const rec = r.records[0];
  assert.equal(rec.comm, 'a b c');
  assert.equal(rec.ageMs, 1500);
  assert.equal(rec.hex, '0102030405060708');
  assert.deepEqual(rec.frames.map((f) => f.symbol), ['foo', 'bar']);
  assert.equal(rec.frames[1].module, 'baz');
  assert.equal(r.counters.unparsedLines, 2);
  assert.ok(rec.issues.includes('garbage-inside'));
});

test('every golden fixture also parses when fed one byte at a time', async () => {
  const text = fs.readFileSync(path.join(FIXTURES, 'kmemleak', 'dmesg-verbose.txt'));
  const chunks: Buffer[] = [];
  for (let i = 0; i < text.length; i++) chunks.push(text.subarray(i, i + 1));
  const recs: KmemleakRecord[] = [];
  await parseKmemleakStream(Readable.from(chunks), (r) => recs.push(r));
  assert.deepEqual(recs, parseKmemleakText(text.toString('utf8')).records);
});
