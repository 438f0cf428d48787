// Bounded fuzz run in the suite for the memory side: seeded mutations of the real /proc and
// kernel-log captures through every memstate parser, then series → verdict → all renderers.
// No input may throw, hang (worker killed after 20 s without progress) or take longer than 2 s.
// The long run: node dist/scripts/fuzz/parsers.js --target memstate --iterations 20000
import test from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from '../../scripts/fuzz/run-fuzz.js';
import { MEMSTATE_TARGETS } from '../../scripts/fuzz/memstate.js';

test('memstate corpus is the real captures', () => {
  const files = MEMSTATE_TARGETS[0].corpus();
  assert.ok(files.length >= 15, files.join(','));
  assert.ok(files.some((f) => f.endsWith('host-6.18/zoneinfo.txt')));
  assert.ok(files.some((f) => f.endsWith('dmesg-memcg-oom-6.18.txt')));
});

test('fuzz: 800 mutated /proc and kernel-log inputs, no throw, no hang, each under 2 s', { timeout: 300_000 }, async () => {
  const res = await runFuzz({ targets: ['memstate'], iterations: 800, seed: 20251127, perInputMs: 2000 }, 20_000);
  assert.deepEqual(res.failures, []);
  assert.equal(res.inputs, 800);
});
