// Parent side of the fuzzer: starts the worker, and kills it when one input runs longer than the
// hang bound (reported with the seed and index that reproduce it), when its heap passes the
// memory bound (V8 resource limits: the worker dies with ERR_WORKER_OUT_OF_MEMORY) or when the
// whole run passes its time bound. It samples the process's resident memory meanwhile (the worker
// shares the process). Used by scripts/fuzz/parsers.ts and by the bounded fuzz tests.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FuzzJob, FuzzMessage, TargetStats } from './fuzz-worker.js';

export interface FuzzFailure {
  target: string;
  i: number;
  seed: number;
  kind: 'throw' | 'slow' | 'hang' | 'worker' | 'time';
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
  /** Per target, in the order they ran. */
  targets: TargetStats[];
  /** Highest resident set size sampled while the worker ran (bytes, whole process). */
  peakRssBytes: number;
  wallMs: number;
}

export interface FuzzLimits {
  /** Old-generation heap limit of the worker (MB): a runaway allocation kills it, reported. */
  maxHeapMb?: number;
  /** Stop (and fail) once the run has taken this long (ms). */
  deadlineMs?: number;
}

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fuzz-worker.js');

export function runFuzz(job: FuzzJob, hangMs: number, onProgress?: (m: FuzzMessage) => void, limits: FuzzLimits = {}): Promise<FuzzResult> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const res: FuzzResult = { failures: [], inputs: 0, maxMs: 0, totalMs: 0, bytes: 0, targets: [], peakRssBytes: process.memoryUsage().rss, wallMs: 0 };
    const w = new Worker(WORKER, {
      workerData: job,
      resourceLimits: limits.maxHeapMb ? { maxOldGenerationSizeMb: limits.maxHeapMb } : undefined,
    });
    let current: { i: number; target: string } = { i: -1, target: '' };
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const sampler = setInterval(() => { res.peakRssBytes = Math.max(res.peakRssBytes, process.memoryUsage().rss); }, 100);
    const end = (): void => {
      if (finished) return;
      finished = true;
      if (timer) clearTimeout(timer);
      if (deadline) clearTimeout(deadline);
      clearInterval(sampler);
      res.peakRssBytes = Math.max(res.peakRssBytes, process.memoryUsage().rss);
      res.wallMs = Date.now() - t0;
      resolve(res);
    };
    const arm = (): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        res.failures.push({ target: current.target, i: current.i, seed: job.seed, kind: 'hang', message: `no progress for ${hangMs} ms` });
        void w.terminate().finally(end);
      }, hangMs);
    };
    const deadline = limits.deadlineMs !== undefined ? setTimeout(() => {
      res.failures.push({ target: current.target, i: current.i, seed: job.seed, kind: 'time', message: `time bound of ${limits.deadlineMs} ms reached at input ${current.i} of ${current.target}` });
      void w.terminate().finally(end);
    }, limits.deadlineMs) : undefined;
    arm();
    w.on('message', (m: FuzzMessage) => {
      onProgress?.(m);
      if (m.type === 'start') { current = { i: m.i, target: m.target }; arm(); }
      else if (m.type === 'fail') {
        res.failures.push({ target: m.target, i: m.i, seed: m.seed, kind: m.message.startsWith('took ') ? 'slow' : 'throw', message: m.message, ops: m.ops, base: m.base });
      } else if (m.type === 'target-done') {
        res.targets.push(m.stats);
      } else if (m.type === 'done') {
        Object.assign(res, { inputs: m.inputs, maxMs: m.maxMs, totalMs: m.totalMs, bytes: m.bytes });
      }
    });
    w.on('error', (e) => res.failures.push({ target: current.target, i: current.i, seed: job.seed, kind: 'worker', message: e.stack ?? String(e) }));
    w.on('exit', end);
  });
}
