// Fuzz in the suite (issue 5, item 6): a bounded, seeded run of the targets the other fuzz tests
// do not cover — device-text (agent meta.txt / heartbeat / skipped.log / status probe, the store's
// meta reader, doctor's readers, adb answers) and store-files (manifest, run.json, skipped.jsonl,
// lock, the report's run reader, saved analyses, suppression files) — with the same bounds as the
// long run: no throw, no hang, each input under its time bound, the worker's heap capped.
// kmemleak-fuzz.test.ts and memstate-fuzz.test.ts run the kmemleak and /proc targets.
// A second test keeps the fuzz targets complete: every exported parse*/read*/scan*/decode*/discover*
// function of the modules that read device or store text must be called by some target.
// The long run: `npm run fuzz` (all targets, ≥10k inputs each).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';
import { runFuzz } from '../../scripts/fuzz/run-fuzz.js';
import { mutatedInput, rng } from '../../scripts/fuzz/mutate.js';
import { TARGETS } from '../../scripts/fuzz/targets.js';
import { parseManifest } from '../../host/store/manifest.js';

test('every fuzz target has a real corpus', () => {
  for (const t of TARGETS) {
    const files = t.corpus();
    assert.ok(files.length >= 3, `${t.name}: ${files.length} corpus files`);
    for (const f of files) assert.ok(fs.statSync(path.join(REPO_ROOT, f)).size > 0, `${t.name}: ${f} is empty`);
  }
  assert.deepEqual(TARGETS.map((t) => t.name).sort(), ['device-text', 'kmemleak', 'memstate', 'store-files']);
});

test('fuzz: 600 mutated device texts through every device-side reader, bounded', { timeout: 300_000 }, async () => {
  const res = await runFuzz({ targets: ['device-text'], iterations: 600, seed: 20251127, perInputMs: 10_000 }, 60_000, undefined, { maxHeapMb: 1024 });
  assert.deepEqual(res.failures, []);
  assert.equal(res.inputs, 600);
  assert.equal(res.targets[0]?.target, 'device-text');
  assert.ok(res.targets[0].slowest, 'the slowest input is reported');
});

test('fuzz: 300 mutated store files through the store and report readers, bounded', { timeout: 300_000 }, async () => {
  const res = await runFuzz({ targets: ['store-files'], iterations: 300, seed: 20251127, perInputMs: 10_000 }, 60_000, undefined, { maxHeapMb: 1024 });
  assert.deepEqual(res.failures, []);
  assert.equal(res.inputs, 300);
});

test('the memory bound holds: a worker that reaches its heap limit is stopped and reported, not a crash', { timeout: 120_000 }, async () => {
  // the mechanism the long run relies on (V8 resource limits on the worker): a limit below what the
  // target needs ends the run with a 'worker' failure (ERR_WORKER_OUT_OF_MEMORY), the parent goes on
  const res = await runFuzz({ targets: ['kmemleak'], iterations: 50, seed: 1, perInputMs: 10_000 }, 60_000, undefined, { maxHeapMb: 4 });
  assert.ok(res.failures.some((f) => f.kind === 'worker' && /memory|heap/i.test(f.message)), JSON.stringify(res.failures).slice(0, 500));
  assert.ok(res.peakRssBytes > 0);
});

test('the time bound holds: a run past its deadline stops with a time failure', { timeout: 120_000 }, async () => {
  const res = await runFuzz({ targets: ['memstate'], iterations: 100_000, seed: 1, perInputMs: 10_000 }, 60_000, undefined, { deadlineMs: 1_500 });
  assert.ok(res.failures.some((f) => f.kind === 'time'), JSON.stringify(res.failures).slice(0, 500));
  assert.ok(res.wallMs < 30_000);
});

test('inputs the long run (seed 20251127) found stay fixed: a manifest file entry without a path', async () => {
  // `kml report` on a run whose manifest.jsonl had a damaged file entry died with a TypeError
  // (f.name.endsWith / path.resolve(undefined)): the manifest reader now refuses such a line.
  const t = TARGETS.find((x) => x.name === 'store-files')!;
  const files = t.corpus();
  const corpus = files.map((f) => fs.readFileSync(path.join(REPO_ROOT, f), 'utf8'));
  try {
    for (const i of [2638, 2906, 3480]) {
      const m = mutatedInput(corpus, 20251127, i);
      await t.run(m.text, rng(20251127 + i));
    }
  } finally {
    t.teardown?.();
  }
  const line = JSON.stringify({ schemaVersion: 1, serial: 's', bootId: 'b', seq: 1, digest: 'd', files: [{ name: 'kmemleak.txt', pah: 'x', bytes: 1, sha256: 'a' }] });
  const read = parseManifest(`${line}\n`);
  assert.equal(read.entries.length, 0);
  assert.match(read.bad[0].reason, /file entry/);
});

test('every parser of device or store text is fuzzed', () => {
  const fuzzText = fs.readdirSync(path.join(REPO_ROOT, 'scripts', 'fuzz')).filter((f) => f.endsWith('.ts'))
    .map((f) => fs.readFileSync(path.join(REPO_ROOT, 'scripts', 'fuzz', f), 'utf8')).join('\n');
  const dirs = ['host/device', 'host/store', 'host/adb', 'host/memstate', 'host/kmemleak', 'host/analyze', 'host/report'];
  const missing: string[] = [];
  let count = 0;
  for (const d of dirs) {
    for (const f of fs.readdirSync(path.join(REPO_ROOT, d)).filter((x) => x.endsWith('.ts'))) {
      const src = fs.readFileSync(path.join(REPO_ROOT, d, f), 'utf8');
      for (const m of src.matchAll(/^export (?:async )?function ((?:parse|read|scan|decode|discover)[A-Za-z0-9]*)\s*[(<]/gm)) {
        count++;
        if (!new RegExp(`\\b${m[1]}\\b`).test(fuzzText)) missing.push(`${d}/${f}: ${m[1]}`);
      }
    }
  }
  assert.ok(count >= 25, `found ${count} readers`);
  assert.deepEqual(missing, []);
});
