// Bounded fuzz run in the suite: 2000 seeded mutations of the real captures through the
// kmemleak parser (in memory and streamed), fingerprinting and jiffies code. No input may throw,
// hang (the worker is killed after 60 s without progress) or take longer than 10 s (inputs are at
// most 4 MB and take well under a second; the bound catches runaway behaviour, with room for a
// loaded 2-core CI machine).
// The long run is scripts/fuzz/parsers.ts (≥10k inputs, random seed).
import test from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from '../../scripts/fuzz/run-fuzz.js';
import { MUTATIONS, mutatedInput, rng } from '../../scripts/fuzz/mutate.js';

test('mutations are deterministic for a (seed, index)', () => {
  const corpus = ['unreferenced object 0xffff (size 1):\n  comm "a", pid 1, jiffies 2\n', 'abc\ndef\n'];
  assert.deepEqual(mutatedInput(corpus, 42, 7), mutatedInput(corpus, 42, 7));
  assert.notDeepEqual(mutatedInput(corpus, 42, 7).text + mutatedInput(corpus, 42, 8).text, mutatedInput(corpus, 43, 7).text + mutatedInput(corpus, 43, 8).text);
  const r = rng(1);
  assert.ok(r() >= 0 && r() < 1);
  assert.ok(MUTATIONS.length >= 10);
});

test('fuzz: 2000 mutated inputs, no throw, no hang, each under 10 s', { timeout: 600_000 }, async () => {
  const res = await runFuzz({ targets: ['kmemleak'], iterations: 2000, seed: 20260101, perInputMs: 10_000 }, 60_000);
  assert.deepEqual(res.failures, []);
  assert.equal(res.inputs, 2000);
});
