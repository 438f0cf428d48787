// `npm run bench`: run every benchmark script in scripts/bench/ (compiled to dist/scripts/bench/*.js),
// one after the other (the machine is shared: never two heavy jobs at once), and summarise.
//   npm run bench                      # all
//   npm run bench -- report adbd       # only these
//   npm run bench -- --skip lab        # all but these
// Exit 1 when any benchmark failed or missed its target (each script sets its own exit code).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const skip = new Set<string>();
const only = new Set<string>();
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--skip' && args[i + 1]) skip.add(args[++i]);
  else only.add(args[i]);
}
const benches = fs.readdirSync(here)
  .filter((f) => f.endsWith('.js') && f !== 'run.js')
  .map((f) => f.slice(0, -3))
  .filter((n) => (only.size === 0 || only.has(n)) && !skip.has(n))
  .sort();

const results: Array<{ name: string; code: number | null; seconds: number }> = [];
for (const name of benches) {
  console.log(`\n=== bench ${name} ===`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [path.join(here, `${name}.js`)], { stdio: 'inherit' });
  results.push({ name, code: r.status, seconds: (Date.now() - t0) / 1000 });
}
console.log('\n=== bench summary ===');
for (const r of results) console.log(`${r.code === 0 ? 'ok  ' : 'FAIL'} ${r.name.padEnd(12)} exit ${r.code} in ${r.seconds.toFixed(1)} s`);
process.exitCode = results.every((r) => r.code === 0) ? 0 : 1;
