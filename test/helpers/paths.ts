// Paths tests use: the repository root (tests run from dist/test/..., fixtures stay in test/fixtures).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url)); // <repo>/dist/test/helpers
export const REPO_ROOT = path.resolve(here, '..', '..', '..');
export const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');
export const SHARED_FIXTURES = path.join(FIXTURES, 'shared');
export const KML_BIN = path.join(REPO_ROOT, 'bin', 'kml.js');
export const AGENT_SCRIPT = path.join(REPO_ROOT, 'agent', 'kml-agent.sh');
