// Fuzz every parser kml points at device or store text with seeded mutations of real captures:
// ≥10k inputs per target by default, all targets in one command (`npm run fuzz`), each target in a
// fresh worker thread. Bounds: per input (--per-input-ms, a slow input fails), no progress
// (--hang-ms: the worker is killed), the worker's heap (--max-heap-mb: V8 kills a runaway
// allocation), the process's resident memory (--max-rss-mb, sampled), the whole run (--time-limit-s).
//   npm run fuzz
//   node dist/scripts/fuzz/parsers.js [--iterations N] [--seed S] [--target a,b] [--per-input-ms MS]
//        [--hang-ms MS] [--max-heap-mb MB] [--max-rss-mb MB] [--time-limit-s S] [--json]
//   node dist/scripts/fuzz/parsers.js --target T --seed S --only I     (writes input I to a file)
// Prints per target: inputs, failures, chars, wall time, mean and slowest input (index, ms, size,
// base file, mutations), peak RSS. Exit 0 when nothing threw, hung, ran slow or passed a bound;
// 1 otherwise, with the (target, seed, index) that reproduces each failure.
import fs from 'node:fs';
import path from 'node:path';
import { runFuzz, type FuzzFailure } from './run-fuzz.js';
import { mutatedInput } from './mutate.js';
import { TARGETS, REPO_ROOT } from './targets.js';
import type { TargetStats } from './fuzz-worker.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const iterations = Number(arg('--iterations', '10000'));
const seed = Number(arg('--seed', String(Date.now() % 1_000_000)));
// inputs reach 4 MB; every parser is linear, so 10 s (room for a loaded 2-core box) only trips on runaway behaviour
const perInputMs = Number(arg('--per-input-ms', '10000'));
const hangMs = Number(arg('--hang-ms', '30000'));
const maxHeapMb = Number(arg('--max-heap-mb', '1024'));
const maxRssMb = Number(arg('--max-rss-mb', '1536'));
const timeLimitS = Number(arg('--time-limit-s', '3600'));
const only = arg('--only', '');
const json = process.argv.includes('--json');
const wanted = arg('--target', '').split(',').filter(Boolean);
for (const w of wanted) {
  if (!TARGETS.some((t) => t.name === w)) {
    console.error(`fuzz: unknown target ${w} (targets: ${TARGETS.map((t) => t.name).join(', ')})`);
    process.exit(2);
  }
}
const targets = wanted.length ? wanted : TARGETS.map((t) => t.name);

if (only !== '') {
  // Write the input that failed to a file, to debug it by hand.
  const t = TARGETS.find((x) => x.name === (targets[0] ?? 'kmemleak'))!;
  const corpus = t.corpus().map((f) => fs.readFileSync(path.join(REPO_ROOT, f), 'utf8'));
  const m = mutatedInput(corpus, seed, Number(only));
  const out = path.resolve(`fuzz-${t.name}-${seed}-${only}.txt`);
  fs.writeFileSync(out, m.text);
  console.log(`wrote ${out} (${m.text.length} chars; base ${t.corpus()[m.base]}; ops ${m.ops.join(',')})`);
  process.exit(0);
}

const mb = (b: number) => `${(b / 1048576).toFixed(0)} MB`;
const t0 = Date.now();
const rows: Array<TargetStats & { wallMs: number; peakRssBytes: number }> = [];
const failures: FuzzFailure[] = [];
let lastPrint = 0;
console.log(`fuzz: seed=${seed} iterations=${iterations} per target, targets=${targets.join(',')}; bounds: ${perInputMs} ms/input, ` +
  `hang ${hangMs} ms, heap ${maxHeapMb} MB, RSS ${maxRssMb} MB, total ${timeLimitS} s`);
for (const target of targets) {
  const left = timeLimitS * 1000 - (Date.now() - t0);
  const res = await runFuzz({ targets: [target], iterations, seed, perInputMs }, hangMs, (m) => {
    if (process.stdout.isTTY && m.type === 'ok' && Date.now() - lastPrint > 1000) {
      lastPrint = Date.now();
      process.stdout.write(`\r${m.target} ${m.i}/${iterations}   `);
    }
  }, { maxHeapMb, deadlineMs: Math.max(1, left) });
  if (process.stdout.isTTY) process.stdout.write('\r\x1b[K');
  failures.push(...res.failures);
  const stats = res.targets[0] ?? { target, inputs: res.inputs, failures: res.failures.length, totalMs: res.totalMs, maxMs: res.maxMs, bytes: res.bytes };
  rows.push({ ...stats, wallMs: res.wallMs, peakRssBytes: res.peakRssBytes });
  if (!json) console.error(`fuzz: ${target}: ${stats.inputs} inputs, ${res.failures.length} failure(s), ${(res.wallMs / 1000).toFixed(1)} s`);
  if (res.peakRssBytes > maxRssMb * 1048576) {
    failures.push({ target, i: -1, seed, kind: 'worker', message: `peak RSS ${mb(res.peakRssBytes)} above the ${maxRssMb} MB bound` });
  }
  if (stats.inputs + stats.failures < iterations && !res.failures.length) {
    failures.push({ target, i: -1, seed, kind: 'worker', message: `ran ${stats.inputs} of ${iterations} inputs` });
  }
  if (res.failures.some((f) => f.kind === 'time')) break;
}
const maxRssKb = process.resourceUsage().maxRSS;
const wall = (Date.now() - t0) / 1000;

if (json) {
  console.log(JSON.stringify({ seed, iterations, wallS: wall, maxRssBytes: maxRssKb * 1024, targets: rows, failures }, null, 2));
} else {
  const head = ['target', 'inputs', 'fail', 'chars', 'wall', 'mean', 'slowest input', 'peak RSS'];
  const lines = rows.map((r) => [
    r.target, String(r.inputs), String(r.failures), `${(r.bytes / 1e6).toFixed(0)}M`, `${(r.wallMs / 1000).toFixed(1)}s`,
    `${(r.totalMs / Math.max(1, r.inputs)).toFixed(2)}ms`,
    r.slowest ? `${r.slowest.ms.toFixed(0)}ms i=${r.slowest.i} ${(r.slowest.chars / 1000).toFixed(0)}k chars ${path.basename(r.slowest.base)} [${r.slowest.ops.join(',')}]` : '-',
    mb(r.peakRssBytes),
  ]);
  const width = head.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c].length)));
  const fmt = (cols: string[]) => cols.map((x, c) => (c === 0 || c === 6 ? x.padEnd(width[c]) : x.padStart(width[c]))).join('  ').trimEnd();
  console.log(fmt(head));
  for (const l of lines) console.log(fmt(l));
  const total = rows.reduce((a, r) => a + r.inputs, 0);
  console.log(`total: ${total} inputs, ${failures.length} failure(s), ${wall.toFixed(1)} s, process max RSS ${mb(maxRssKb * 1024)}`);
}
for (const f of failures.slice(0, 20)) {
  console.log(`FAIL ${f.kind} target=${f.target} seed=${f.seed} i=${f.i} base=${f.base ?? '?'} ops=${(f.ops ?? []).join(',')}\n  ${f.message.split('\n').slice(0, 4).join('\n  ')}`);
  if (f.i >= 0) console.log(`  reproduce: node dist/scripts/fuzz/parsers.js --target ${f.target} --seed ${f.seed} --only ${f.i}`);
}
process.exit(failures.length ? 1 : 0);
