// Fuzz the text parsers with seeded mutations of the real captures (≥10k inputs by default).
//   npm run build && node dist/scripts/fuzz/parsers.js [--iterations N] [--seed S] [--target kmemleak] [--per-input-ms MS]
// Exit 0 when no input threw, hung or exceeded the per-input bound; 1 otherwise, with the
// (target, seed, index) that reproduces each failure: rerun with --seed S --only I.
import { runFuzz } from './run-fuzz.js';
import { mutatedInput } from './mutate.js';
import { TARGETS, REPO_ROOT } from './targets.js';
import fs from 'node:fs';
import path from 'node:path';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const iterations = Number(arg('--iterations', '10000'));
const seed = Number(arg('--seed', String(Date.now() % 1_000_000)));
const perInputMs = Number(arg('--per-input-ms', '2000'));
const hangMs = Number(arg('--hang-ms', '30000'));
const target = arg('--target', '');
const only = arg('--only', '');

if (only !== '') {
  // Write the input that failed to a file, to debug it by hand.
  const t = TARGETS.find((x) => x.name === (target || 'kmemleak'))!;
  const corpus = t.corpus().map((f) => fs.readFileSync(path.join(REPO_ROOT, f), 'utf8'));
  const m = mutatedInput(corpus, seed, Number(only));
  const out = path.resolve(`fuzz-${t.name}-${seed}-${only}.txt`);
  fs.writeFileSync(out, m.text);
  console.log(`wrote ${out} (${m.text.length} chars; base ${t.corpus()[m.base]}; ops ${m.ops.join(',')})`);
  process.exit(0);
}

const t0 = Date.now();
let lastPrint = 0;
const res = await runFuzz({ targets: target ? [target] : [], iterations, seed, perInputMs }, hangMs, (m) => {
  if (process.stdout.isTTY && m.type === 'ok' && Date.now() - lastPrint > 1000) {
    lastPrint = Date.now();
    process.stdout.write(`\r${m.target} ${m.i}/${iterations}   `);
  }
});
if (process.stdout.isTTY) process.stdout.write('\r');
const secs = (Date.now() - t0) / 1000;
console.log(`fuzz: targets=${target || TARGETS.map((x) => x.name).join(',')} seed=${seed} inputs=${res.inputs} ` +
  `chars=${(res.bytes / 1e6).toFixed(1)}M wall=${secs.toFixed(1)}s max-per-input=${res.maxMs.toFixed(1)}ms failures=${res.failures.length}`);
for (const f of res.failures.slice(0, 20)) {
  console.log(`FAIL ${f.kind} target=${f.target} seed=${f.seed} i=${f.i} base=${f.base ?? '?'} ops=${(f.ops ?? []).join(',')}\n  ${f.message.split('\n').slice(0, 4).join('\n  ')}`);
}
process.exit(res.failures.length ? 1 : 0);
