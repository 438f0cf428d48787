// Parsing in worker threads (host/kmemleak/parse-pool.ts) gives exactly the analysis of parsing
// in the calling thread: on the fixture runs, and on a file of every era's records cut into many
// pieces (each piece parsed by whichever worker is free, records consumed in file order).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIXTURES } from '../helpers/paths.js';
import { analyzeRun } from '../../host/analyze/index.js';

const NOW = (): Date => new Date('2026-01-01T00:00:00Z');

function eraText(): string {
  const dir = path.join(FIXTURES, 'kmemleak');
  return fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort().map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
}

for (const run of ['store-slab-leak/127.0.0.1_5555/20251124T160000Z-ab12', 'seed-folder', 'store-half-written/127.0.0.1_5555/20251124T160000Z-cd34']) {
  test(`parse workers give the same analysis: ${run}`, { timeout: 60_000 }, async () => {
    const src = path.join(FIXTURES, 'runs', run);
    const inThread = await analyzeRun(src, { now: NOW, parallel: { workers: 0 } });
    const workers = await analyzeRun(src, { now: NOW, parallel: { workers: 2, pieceBytes: 1024 } });
    assert.deepEqual(workers, inThread);
    assert.ok(inThread.parseStats.records > 0);
  });
}

test('parse workers give the same analysis: one file of every era cut into pieces', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-parallel-'));
  try {
    const file = path.join(dir, 'kmemleak_log_1.txt');
    // Every era twice (duplicates inside one snapshot are dropped the same way across pieces).
    const text = eraText();
    fs.writeFileSync(file, text + '\n' + text);
    const inThread = await analyzeRun(file, { now: NOW, parallel: { workers: 0 } });
    for (const pieceBytes of [700, 4096]) {
      const workers = await analyzeRun(file, { now: NOW, parallel: { workers: 3, pieceBytes } });
      assert.deepEqual(workers, inThread, `pieces of ${pieceBytes} bytes`);
    }
    assert.ok(inThread.parseStats.duplicateRecords > 0);
    assert.ok(inThread.parseStats.unparsedLines > 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
