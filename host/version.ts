import { createRequire } from 'node:module';
// The version recorded in run.json and reports comes from package.json, the one place it is set.
const require = createRequire(import.meta.url);
export const KML_VERSION: string = (require('../../package.json') as { version: string }).version;
