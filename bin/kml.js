#!/usr/bin/env node
// Entry point installed as `kml`; the TypeScript sources are compiled to dist/ by `npm run build`.
import { main } from '../dist/host/cli.js';
main(process.argv);
