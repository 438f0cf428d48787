#!/usr/bin/env node
// Entry point installed as `kml`; the TypeScript sources are compiled to dist/ by `npm run build`.
// A closed pipe on stdout (`kml devices | head`) is a normal end for a CLI, not a crash.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err && err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}
const { main } = await import('../dist/host/cli.js');
await main(process.argv);
