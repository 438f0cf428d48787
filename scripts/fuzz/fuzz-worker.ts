// Worker side of the fuzzer: runs mutated inputs through the targets and reports each one, so the
// parent can kill the worker when one input hangs (a synchronous loop cannot be interrupted from
// inside its own thread). Per target it reports the inputs run, the time spent and the slowest
// input (with what reproduces it).
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { mutatedInput, rng } from './mutate.js';
import { REPO_ROOT, TARGETS } from './targets.js';

export interface FuzzJob {
  targets: string[];
  iterations: number;
  seed: number;
  /** Fail an input that takes longer than this (ms) even if it finishes. */
  perInputMs: number;
}

export interface SlowestInput {
  i: number;
  ms: number;
  chars: number;
  base: string;
  ops: string[];
}

export interface TargetStats {
  target: string;
  inputs: number;
  failures: number;
  totalMs: number;
  maxMs: number;
  bytes: number;
  slowest?: SlowestInput;
}

export type FuzzMessage =
  | { type: 'start'; i: number; target: string }
  | { type: 'ok'; i: number; target: string; ms: number }
  | { type: 'fail'; i: number; target: string; seed: number; ops: string[]; base: string; message: string }
  | { type: 'target-done'; stats: TargetStats }
  | { type: 'done'; inputs: number; maxMs: number; totalMs: number; bytes: number };

const job = workerData as FuzzJob;
const post = (m: FuzzMessage): void => parentPort!.postMessage(m);

let inputs = 0;
let maxMs = 0;
let totalMs = 0;
let bytes = 0;
for (const t of TARGETS.filter((x) => job.targets.length === 0 || job.targets.includes(x.name))) {
  const files = t.corpus();
  const corpus = files.map((f) => fs.readFileSync(path.join(REPO_ROOT, f), 'utf8'));
  const stats: TargetStats = { target: t.name, inputs: 0, failures: 0, totalMs: 0, maxMs: 0, bytes: 0 };
  for (let i = 0; i < job.iterations; i++) {
    const m = mutatedInput(corpus, job.seed, i);
    post({ type: 'start', i, target: t.name });
    const t0 = performance.now();
    try {
      await t.run(m.text, rng(job.seed + i));
    } catch (e) {
      stats.failures++;
      post({ type: 'fail', i, target: t.name, seed: job.seed, ops: m.ops, base: files[m.base], message: (e as Error).stack ?? String(e) });
      continue;
    }
    const ms = performance.now() - t0;
    inputs++;
    bytes += m.text.length;
    totalMs += ms;
    if (ms > maxMs) maxMs = ms;
    stats.inputs++;
    stats.bytes += m.text.length;
    stats.totalMs += ms;
    if (ms > stats.maxMs) {
      stats.maxMs = ms;
      stats.slowest = { i, ms, chars: m.text.length, base: files[m.base], ops: m.ops };
    }
    if (ms > job.perInputMs) {
      stats.failures++;
      post({ type: 'fail', i, target: t.name, seed: job.seed, ops: m.ops, base: files[m.base], message: `took ${ms.toFixed(0)} ms (bound ${job.perInputMs} ms) on ${m.text.length} chars` });
    } else if (i % 50 === 0) {
      post({ type: 'ok', i, target: t.name, ms });
    }
  }
  t.teardown?.();
  post({ type: 'target-done', stats });
}
post({ type: 'done', inputs, maxMs, totalMs, bytes });
