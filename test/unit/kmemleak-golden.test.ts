// Golden test: every era fixture in test/fixtures/kmemleak/<era>.txt is parsed, both from memory
// and as a stream split at awkward places, and compared with <era>.expected.json (records and
// counters). Each expected file says where its text came from in its "source" field.
// Regenerate after a deliberate parser change with: UPDATE_GOLDEN=1 node --test dist/test/unit/kmemleak-golden.test.js
// (then review the diff by eye).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { FIXTURES } from '../helpers/paths.js';
import { parseKmemleakStream, parseKmemleakText } from '../../host/kmemleak/parser.js';
import type { KmemleakRecord } from '../../host/kmemleak/types.js';

const DIR = path.join(FIXTURES, 'kmemleak');
const eras = fs.readdirSync(DIR).filter((f) => f.endsWith('.txt')).map((f) => f.slice(0, -4)).sort();

interface Expected {
  source: string;
  counters: unknown;
  records: KmemleakRecord[];
}

test('there is a golden fixture for every report era', () => {
  for (const era of ['raw-arm32-seed-4.19', 'hashed-terminator-4.15', 'ptrval-4.15', 'unresolved-5.x', 'hashed-lab-6.1',
    'pk-zero-6.2', 'crc-6.8', 'bare-6.13', 'percpu-6.12', 'age-bare-6.6.70', 'dmesg-verbose', 'crlf-lab-6.1']) {
    assert.ok(eras.includes(era), `missing fixture ${era}.txt`);
  }
});

for (const era of eras) {
  test(`golden: ${era}`, async () => {
    const text = fs.readFileSync(path.join(DIR, `${era}.txt`), 'utf8');
    const got = parseKmemleakText(text);
    const expectedPath = path.join(DIR, `${era}.expected.json`);
    if (process.env.UPDATE_GOLDEN === '1') {
      const old = fs.existsSync(expectedPath) ? (JSON.parse(fs.readFileSync(expectedPath, 'utf8')) as Expected) : undefined;
      const next: Expected = { source: old?.source ?? 'TODO: say where this text came from', counters: got.counters, records: got.records };
      fs.writeFileSync(expectedPath, JSON.stringify(next, null, 2) + '\n');
    }
    const expected = JSON.parse(fs.readFileSync(expectedPath, 'utf8')) as Expected;
    assert.ok(expected.source && !expected.source.startsWith('TODO'), `${era}: expected file must say where the text came from`);
    assert.deepEqual(got.records, expected.records);
    assert.deepEqual(got.counters, expected.counters);

    // The streaming path must give the same records whatever the chunking (7-byte chunks split
    // lines, CRLF pairs and multi-byte characters).
    const buf = Buffer.from(text, 'utf8');
    const chunks: Buffer[] = [];
    for (let i = 0; i < buf.length; i += 7) chunks.push(buf.subarray(i, i + 7));
    const streamed: KmemleakRecord[] = [];
    const counters = await parseKmemleakStream(Readable.from(chunks), (r) => streamed.push(r));
    assert.deepEqual(streamed, expected.records);
    assert.equal(counters.unparsedLines, got.counters.unparsedLines);
    assert.equal(counters.records, got.counters.records);
  });
}
