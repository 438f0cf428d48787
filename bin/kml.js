#!/usr/bin/env -S node --max-semi-space-size=4
// Entry point installed as `kml`; the TypeScript sources are compiled to dist/ by `npm run build`.
// --max-semi-space-size=4 (MB): `kml report` allocates fast enough that V8 grows its young
// generation to 2 x 16 MB; capped at 2 x 4 MB the peak RSS of a 200 MB report drops by ~14 MB
// (store run 153-155 -> 138-141 MB, one file 134-144 -> 125-128 MB) with no measurable CPU cost
// (scripts/bench/report.ts). It must be given at startup: set later, V8 ignores it.
// A closed pipe on stdout (`kml devices | head`) is a normal end for a CLI, not a crash.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err && err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}
const { main } = await import('../dist/host/cli.js');
await main(process.argv);
