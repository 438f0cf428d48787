// The parser's byte path (lineBytes: record lines recognised from their bytes) must give exactly
// what its string path (line(): the recogniser table's regexes) gives, on any input: the same
// records, field by field, and the same counters. Checked on every real capture and on seeded
// mutations aimed at the byte grammar (separators, case, whitespace kinds, non-ASCII, cut lines).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, SHARED_FIXTURES } from '../helpers/paths.js';
import { KmemleakParser } from '../../host/kmemleak/parser.js';
import { LineSplitter } from '../../host/kmemleak/lines.js';
import { StackInterner } from '../../host/kmemleak/stack-table.js';
import type { KmemleakRecord, ParserCounters } from '../../host/kmemleak/types.js';
import { mutatedInput, rng } from '../../scripts/fuzz/mutate.js';
import { parseInPieces } from '../../scripts/fuzz/feed.js';

const corpus: string[] = [];
for (const dir of [path.join(FIXTURES, 'kmemleak'), path.join(SHARED_FIXTURES, 'kmemleak')]) {
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.txt')).sort()) corpus.push(fs.readFileSync(path.join(dir, f), 'utf8'));
}

function parseWith(bytes: boolean, buf: Buffer, chunk: () => number): { records: KmemleakRecord[]; counters: Omit<ParserCounters, 'bytes'> } {
  const records: KmemleakRecord[] = [];
  const p = new KmemleakParser({ onRecord: (r) => records.push(r) });
  return { records, counters: parseInPieces(p, buf, chunk, bytes) };
}

function assertSame(text: string, seed: number, what: string): void {
  const buf = Buffer.from(text, 'utf8');
  const r1 = rng(seed);
  const r2 = rng(seed + 1);
  const viaText = parseWith(false, buf, () => 1 + Math.floor(r1() * 5000));
  const viaBytes = parseWith(true, buf, () => 1 + Math.floor(r2() * 5000));
  assert.deepEqual(viaBytes.records, viaText.records, `${what}: records differ`);
  assert.deepEqual(viaBytes.counters, viaText.counters, `${what}: counters differ`);
}

// Characters that sit on the edges of the byte grammar.
const TRICKY = [' ', '  ', '\t', '\r', '\u00a0', 'é', '\u2028', 'A', 'F', 'f', 'x', 'X', '0', '9', '+', '/', '[', ']', '<', '>', '(', ')', '"', ',', '-', '.', ':', '_', '$', 'k', 's', ''];

/** Change a few characters of record lines (where the byte path works) to tricky ones. */
function lineMutations(text: string, r: () => number): string {
  return text.split('\n').map((l) => {
    if (r() > 0.15 || l.length === 0) return l;
    let s = l;
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const p = Math.floor(r() * (s.length + 1));
      const t = TRICKY[Math.floor(r() * TRICKY.length)];
      s = r() < 0.5 ? s.slice(0, p) + t + s.slice(p + 1) : s.slice(0, p) + t + s.slice(p);
    }
    return s;
  }).join('\n');
}

test('byte path = string path on every real capture', () => {
  corpus.forEach((text, i) => {
    assertSame(text, 100 + i, `capture ${i}`);
    assertSame(text.replace(/\n/g, '\r\n'), 200 + i, `capture ${i} CRLF`);
    assertSame(text.toUpperCase(), 300 + i, `capture ${i} upper case`);
  });
});

test('byte path = string path on 1500 mutated inputs', { timeout: 300_000 }, () => {
  for (let i = 0; i < 1500; i++) {
    const { text, ops } = mutatedInput(corpus, 20260301, i);
    const r = rng(i);
    const input = i % 2 === 0 ? lineMutations(text, r) : text;
    assertSame(input.length > 600_000 ? input.slice(0, 600_000) : input, i, `input ${i} (${ops.join(',')}${i % 2 === 0 ? ',line-mutations' : ''})`);
  }
});

test('byte path: the grammar edges, record by record', () => {
  // Each record line slot gets a well-formed or an edge variant; lines from other slots are mixed in.
  const slots: string[][] = [
    ['unreferenced object 0xffff888012345678 (size 64):', 'unreferenced object (percpu) 0xABCDEF (size 16)', 'unreferenced object (phys) 0x1000 (size 4096):  ',
      'unreferenced object (other) 0x1 (size 1):', 'unreferenced object 0x (size 1):', 'unreferenced object 0x12 (size 99999999999999999999):',
      '<3>[  1.5] [  T12] kmemleak: unreferenced object 0x10 (size 1):', '[12.5]unreferenced object 0x10 (size 1):', '  unreferenced object 0x10 (size 1):'],
    ['  comm "a", pid 1, jiffies 4294967000', '  comm "a b \\"c\\"", pid -3, jiffies 12 (age 1.5s)', '  comm "x", pid 1, jiffies 99999999999999999999',
      '  comm "", pid 1, jiffies 1 (age 12.34567s)', '  comm ", pid 1, jiffies 2', '  comm "\u00e9t\u00e9", pid 1, jiffies 2', '  comm "a", pid 1, jiffies 2 (age 1.s)',
      '  comm "a", pid 1, jiffies 2 (age 1.5s) x', `  comm "${'y'.repeat(70)}", pid 0, jiffies 3`, '  comm "a", pid -0, jiffies 0 (age 0.05s)  ',
      '  comm "a", pid 1, jiffies 2", pid 3, jiffies 4', '  comm "kworker/u16:3", pid 211, jiffies 4294901250 (age 1205.332s)'],
    ['  hex dump (first 8 bytes):', '  hex dump (first 16 bytes on cpu 3):', '  hex dump (first 16 bytes on cpu ):', '  hex dump (first 0 bytes):', '  hex dump (first 32 bytes): x'],
    ['    01 02 03 04 05 06 07 08', '    01 02 03 04 05 06 07 08 ', '    01 02 03 04 05 06 07 08  ........', '    0A 0b', '    ab',
      '    ' + Array.from({ length: 33 }, () => 'ab').join(' '), '    ' + Array.from({ length: 32 }, () => 'Cd').join(' ') + '  x', '    01 02  \u00e9', '    01 02  a\rb',
      '    01 02 03', '    01  02'],
    ['  backtrace:', '  backtrace (crc ABCdef01):', '  backtrace (crc ):', '  backtrace: ', '  backtrace', '[  12.345678] kmemleak:   backtrace:'],
    ['    [<ffffffff81000000>] foo+0x1/0x2', '    [<FFFFFFFF81000000>] foo.isra.0+0xA/0xB [mod_x]', '    [<0000000000000000>] $x.y+0x1/0x2  ',
      '    [<(____ptrval____)>] foo+0x1/0x2', '    [<(ptrval)>] foo+0x1/0x2', '    [<c0472728>] foo+0x1/0x2', '    [<0000000f81000000>] foo+0x1/0x2', '    [<80472728>] foo+0x1/0x2',
      '    [<ffffffff>] 0xffffffff', '    [<ffffffffffffffff>] 0xFFFFFFFFFFFFFFFF', '    0xffffffffc003102d', '    0xffffffffc003102g', '    0xfffffffff',
      '    foo+0x1/0x2 [mod] [inline]', '    foo+0x1/0x2 mm/slub.c:12', '    foo mm/slub.c:12 [inline]', '    foo+0x1/0x2 [', '    foo+0x1/0x2 [m',
      '    foo+0x1/0x2 []', '    foo+0x/0x2', '    foo+1/0x2', '    [<>] foo+0x1/0x2', '    [<12>]foo+0x1/0x2', '    [<12>]\tfoo+0x1/0x2',
      '[ C1] kmemleak:     [<ffffffff81000000>] foo+0x1/0x2', 'unix_create1+0x1/0x2', '    usb_alloc+0x10/0x20 [usb]', '    0x10+0x1/0x2',
      '    0xffffffffc003102d mm/x.c:9', '    foo x.c:1x', '    foo+0x1/0x2 [a]:1', '    foo  x.c:1', '    0xabg x.c:1', '    foo+0x1/0x2 [m] [x:1',
      '    [<ffffffff>] 0xffffffff x.c:1', '    foo x.c:1 [inline]  ', '    foo :1', '    foo x:', '    foo x.c:1 [inline] [inline]', '    foo+0x1/0x2 x.c:1 y.c:2',
      '    __kmalloc_cache_noprof+0x42f/0x5e0 mm/slub.c:5719', '    kmalloc_noprof include/linux/slab.h:957 [inline]'],
    ['', ' ', '[ 1.x] foo', '<1234>x', '6,1,2,-;kmemleak: x', 'BUG: memory leak', 'Object 0x10 (size 8):', '  count = 1',
      '2018/01/09 14:28:48 BUG: memory leak', '2018/01/09 14:28:48 BUG: memory leak x', 'BUG: memory leak  ', '2018/01/9 14:28:48 BUG: memory leak',
      '  BUG: memory leak', '[  1.000000] BUG: memory leak', '20 18 BUG: memory leak'],
  ];
  const r = rng(7);
  const pick = (xs: string[]): string => (r() < 0.6 ? xs[0] : xs[Math.floor(r() * xs.length)]);
  for (let round = 0; round < 400; round++) {
    let text = '';
    for (let rec = 0; rec < 3; rec++) {
      const order = [0, 1, 2, 3, 3, 4, 5, 5, 5];
      for (const slot of order) {
        if (r() < 0.08) continue;
        const from = r() < 0.1 ? slots[Math.floor(r() * slots.length)] : slots[slot];
        text += pick(from) + (r() < 0.1 ? '\r\n' : '\n');
      }
    }
    assertSame(text, round, `round ${round}`);
  }
});

// The backtrace block memo (block-memo.ts): a block whose bytes were parsed before is not read
// again. With it on, the records (frames included) and counters must be what reading every line
// gives, when blocks repeat (every capture three times over, mutated or not, CRLF, cut into
// random chunks so blocks straddle chunk ends) and in files parsed one after the other.
function parseMemo(memo: boolean, inputs: Buffer[], seed: number): { records: KmemleakRecord[]; counters: Array<Omit<ParserCounters, 'bytes'>>; stackIds: number[] } {
  const stacks = new StackInterner();
  const records: KmemleakRecord[] = [];
  const counters: Array<Omit<ParserCounters, 'bytes'>> = [];
  const stackIds: number[] = [];
  const r = rng(seed);
  for (const buf of inputs) {
    const p = new KmemleakParser({ stacks, stackPcs: seed % 2 === 0, blockMemo: memo, onParsed: (rec) => { stackIds.push(rec.stackId()); }, onRecord: (rec) => records.push(rec) });
    counters.push(parseInPieces(p, buf, () => 1 + Math.floor(r() * 20000)));
  }
  return { records, counters, stackIds };
}

function assertMemoSame(inputs: string[], seed: number, what: string): number {
  const bufs = inputs.map((t) => Buffer.from(t, 'utf8'));
  const plain = parseMemo(false, bufs, seed);
  const memo = parseMemo(true, bufs, seed);
  assert.deepEqual(memo.records, plain.records, `${what}: records differ`);
  assert.deepEqual(memo.counters, plain.counters, `${what}: counters differ`);
  assert.deepEqual(memo.stackIds, plain.stackIds, `${what}: stack ids differ`);
  return plain.records.length;
}

test('block memo = reading every line, on repeated real captures', () => {
  let records = 0;
  corpus.forEach((text, i) => {
    records += assertMemoSame([text + text + text], 400 + i, `capture ${i} x3`);
    records += assertMemoSame([text, text.replace(/\n/g, '\r\n'), text], 500 + i, `capture ${i} LF/CRLF/LF files`);
  });
  assert.ok(records > 400, `checked ${records} records`);
});

test('block memo = reading every line, on 400 mutated repeated inputs', { timeout: 300_000 }, () => {
  for (let i = 0; i < 400; i++) {
    const { text, ops } = mutatedInput(corpus, 20261127, i);
    const r = rng(i);
    const base = text.length > 200_000 ? text.slice(0, 200_000) : text;
    // The same text, then a mutated copy: blocks seen before, some with a byte changed.
    assertMemoSame([base, lineMutations(base, r), base], 7000 + i, `input ${i} (${ops.join(',')})`);
  }
});

test('block memo: repeated blocks are really taken from the memo', () => {
  const count = (t: string): number => t.split('unreferenced object').length - 1;
  const text = corpus.filter((t) => /backtrace/.test(t) && !/\[\s*\d+\.\d+\]/.test(t)).sort((a, b) => count(b) - count(a))[0];
  const stacks = new StackInterner();
  let lines = 0;
  let calls = 0;
  const p = new KmemleakParser({ stacks, stackPcs: false });
  // Count the lines the parser is handed: with the memo, the second copy's frame lines are skipped.
  const sink = { lineBytes: (b: Buffer, s: number, e: number) => { lines++; calls++; return p.lineBytes(b, s, e); }, line: (t: string, o: boolean) => { lines++; p.line(t, o); } };
  const sp = new LineSplitter(sink);
  sp.pushString(text + text + text);
  sp.end();
  p.end();
  assert.ok(calls > 0);
  assert.equal(p.counters.lines, (text.split('\n').length - 1) * 3, 'every line is counted');
  assert.ok(lines < p.counters.lines * 0.8, `lines read one by one: ${lines} of ${p.counters.lines}`);
  // Every block of the second and third copy but the last (no header after it to end it).
  const records = p.counters.records / 3;
  assert.ok(records >= 5);
  assert.ok(p.replayedBlocks >= 2 * records - 1, `blocks replayed: ${p.replayedBlocks} for ${records} records a copy`);
});

test('block memo: two parsers sharing one stack table, fed a line each in turn, each get what reading every line gives', () => {
  const texts = corpus.filter((t) => /backtrace/.test(t) && !/\r/.test(t)).slice(0, 6);
  assert.ok(texts.length >= 4);
  let replayed = 0;
  for (let k = 0; k + 1 < texts.length; k++) {
    const inputs = [texts[k].repeat(3), texts[k + 1].repeat(3)].map((t) => Buffer.from(t, 'utf8'));
    const expected = inputs.map((b) => parseMemo(false, [b], 10).records); // even seed: pointers kept, as below
    const stacks = new StackInterner();
    const got: KmemleakRecord[][] = [[], []];
    const parsers = got.map((out) => new KmemleakParser({ stacks, onRecord: (rec) => out.push(rec) }));
    // Each parser is handed its whole input as one buffer, a line at a time, the two in turn: a
    // block one parser is learning is still open when the other looks one up.
    const at = [0, 0];
    while (at[0] < inputs[0].length || at[1] < inputs[1].length) {
      for (const i of [0, 1]) {
        const b = inputs[i];
        if (at[i] >= b.length) continue;
        const nl = b.indexOf(10, at[i]);
        const end = nl < 0 ? b.length : nl;
        const next = parsers[i].lineBytes(b, at[i], end);
        if (next > end) replayed++;
        at[i] = next > end ? next : end + 1;
      }
    }
    for (const i of [0, 1]) {
      parsers[i].end();
      assert.deepEqual(got[i], expected[i], `captures ${k}/${k + 1}, parser ${i}`);
    }
  }
  assert.ok(replayed > 0, 'blocks were replayed from the memo');
});

test('block memo: one read buffer refilled for every chunk (same object, new bytes) parses as fresh buffers do', () => {
  const text = corpus.filter((t) => /backtrace/.test(t)).join('');
  const input = Buffer.from(text.repeat(3), 'utf8');
  const run = (reuse: boolean, size: number): { records: KmemleakRecord[]; counters: unknown } => {
    const stacks = new StackInterner();
    const records: KmemleakRecord[] = [];
    const p = new KmemleakParser({ stacks, stackPcs: false, onRecord: (r) => records.push(r) });
    const sp = new LineSplitter(p);
    const buf = Buffer.alloc(size);
    for (let i = 0; i < input.length; i += size) {
      const n = Math.min(size, input.length - i);
      if (reuse && n === size) {
        input.copy(buf, 0, i, i + n); // as fs.readSync(fd, buf) into the one buffer
        sp.pushBuffer(buf);
      } else sp.pushBuffer(Buffer.from(input.subarray(i, i + n)));
    }
    sp.end();
    p.end(sp.lastLineUnterminated);
    return { records, counters: p.counters };
  };
  for (const size of [977, 4096, 65536]) {
    const fresh = run(false, size);
    assert.ok(fresh.records.length > 100);
    assert.deepEqual(run(true, size), fresh, `chunks of ${size} bytes`);
  }
});
