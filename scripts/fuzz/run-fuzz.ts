// Parent side of the fuzzer: starts the worker, and kills it when one input runs longer than the
// hang bound (reported with the seed and index that reproduce it). Used by scripts/fuzz/parsers.ts
// and by the bounded fuzz test in the unit suite.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FuzzJob, FuzzMessage } from './fuzz-worker.js';

export interface FuzzFailure {
  target: string;
  i: number;
  seed: number;
  kind: 'throw' | 'slow' | 'hang' | 'worker';
  message: string;
  ops?: string[];
  base?: string;
}

export interface FuzzResult {
  failures: FuzzFailure[];
  inputs: number;
  maxMs: number;
  totalMs: number;
  bytes: number;
}

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fuzz-worker.js');

export function runFuzz(job: FuzzJob, hangMs: number, onProgress?: (m: FuzzMessage) => void): Promise<FuzzResult> {
  return new Promise((resolve) => {
    const res: FuzzResult = { failures: [], inputs: 0, maxMs: 0, totalMs: 0, bytes: 0 };
    const w = new Worker(WORKER, { workerData: job });
    let current: { i: number; target: string } = { i: -1, target: '' };
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        res.failures.push({ target: current.target, i: current.i, seed: job.seed, kind: 'hang', message: `no progress for ${hangMs} ms` });
        finished = true;
        void w.terminate();
        resolve(res);
      }, hangMs);
    };
    arm();
    w.on('message', (m: FuzzMessage) => {
      onProgress?.(m);
      if (m.type === 'start') { current = { i: m.i, target: m.target }; arm(); }
      else if (m.type === 'fail') {
        res.failures.push({ target: m.target, i: m.i, seed: m.seed, kind: m.message.startsWith('took ') ? 'slow' : 'throw', message: m.message, ops: m.ops, base: m.base });
      } else if (m.type === 'done') {
        Object.assign(res, { inputs: m.inputs, maxMs: m.maxMs, totalMs: m.totalMs, bytes: m.bytes });
      }
    });
    w.on('error', (e) => res.failures.push({ target: current.target, i: current.i, seed: job.seed, kind: 'worker', message: e.stack ?? String(e) }));
    w.on('exit', () => {
      if (timer) clearTimeout(timer);
      if (!finished) { finished = true; resolve(res); }
    });
  });
}
