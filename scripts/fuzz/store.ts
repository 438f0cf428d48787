// Fuzz target for the readers of kml's own store files, which a crash, a full disk or a hand edit
// can leave in any state: manifest.jsonl (host/store/manifest.ts), run.json (readRunJson),
// skipped.jsonl, the collector lock, and the report's reading of a whole run folder
// (host/analyze/input.ts: run.json, manifest, meta_<N>.json) plus a saved analysis JSON and a
// suppression file. Each input is written into a scratch run folder (every file gets the mutated
// text or its real original); nothing may throw except a KmlError (a clear refusal).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FuzzTarget } from './targets.js';
import { parseManifest, readManifest } from '../../host/store/manifest.js';
import { readRunJson } from '../../host/store/run.js';
import { parseSkippedRecords, readSkippedRecords } from '../../host/store/skipped.js';
import { readLock } from '../../host/store/lock.js';
import { discoverRun } from '../../host/analyze/input.js';
import { parseSuppressionConfig } from '../../host/analyze/suppress.js';
import { parseAnalysisJson } from '../../host/report/json.js';
import { KmlError } from '../../host/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const RUN = 'test/fixtures/runs/store-slab-leak/127.0.0.1_5555/20251124T160000Z-ab12';
const BOOT = 'boot-3f2b8c1e-9d4a-4c71-8e0b-5a6f7c8d9e01';

let scratch: string | undefined;
let originals: Record<string, string> | undefined;

/** A scratch copy of a real run folder, made once per worker. */
function scratchRun(): string {
  if (scratch) return scratch;
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-fuzz-store-'));
  fs.cpSync(path.join(ROOT, RUN), scratch, { recursive: true });
  originals = {
    'run.json': fs.readFileSync(path.join(scratch, 'run.json'), 'utf8'),
    'manifest.jsonl': fs.readFileSync(path.join(scratch, 'manifest.jsonl'), 'utf8'),
    [`${BOOT}/meta_1.json`]: fs.readFileSync(path.join(scratch, BOOT, 'meta_1.json'), 'utf8'),
    'skipped.jsonl': '',
    '.kml-collect.lock.1': JSON.stringify({ pid: 1, hostname: 'fuzz', hostBootId: null, procStart: null, startedAt: '2025-01-01T00:00:00Z', command: 'kml collect' }),
  };
  return scratch;
}

async function refusing<T>(p: Promise<T> | (() => T)): Promise<T | undefined> {
  try {
    return typeof p === 'function' ? p() : await p;
  } catch (e) {
    if (e instanceof KmlError) return undefined;
    throw e;
  }
}

export const STORE_TARGETS: FuzzTarget[] = [
  {
    name: 'store-files',
    corpus: () => {
      const out: string[] = [];
      for (const store of ['store-slab-leak', 'store-half-written']) {
        const walk = (rel: string) => {
          for (const e of fs.readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
            const p = path.join(rel, e.name);
            if (e.isDirectory()) walk(p);
            else if (/^(run\.json|manifest\.jsonl|meta_\d+\.json)$/.test(e.name)) out.push(p);
          }
        };
        walk(path.join('test/fixtures/runs', store));
      }
      return out.sort();
    },
    async run(text, r) {
      const dir = scratchRun();
      for (const [name, original] of Object.entries(originals!)) {
        fs.writeFileSync(path.join(dir, name), r() < 0.6 ? text : original);
      }
      // in memory
      const m = parseManifest(text);
      for (const e of m.entries) if (typeof e.seq !== 'number' || !Array.isArray(e.files)) throw new Error('manifest entry not validated');
      parseSkippedRecords(text);
      // from the scratch run folder, as kml collect / kml report read them
      await refusing(readRunJson(dir));
      await readManifest(path.join(dir, 'manifest.jsonl'));
      await readSkippedRecords(dir);
      await readLock(path.join(dir, '.kml-collect.lock.1'));
      const input = await refusing(discoverRun(dir));
      if (input && input.snapshots.some((s) => s.kmemleakPath && !path.resolve(s.kmemleakPath).startsWith(dir + path.sep))) {
        throw new Error('a snapshot path points outside the run folder');
      }
      // a saved analysis and a suppression file (user files, same rule)
      await refusing(() => parseAnalysisJson(text, 'fuzz.json'));
      let doc: unknown;
      try { doc = JSON.parse(text); } catch { doc = undefined; }
      if (doc !== undefined) await refusing(() => parseSuppressionConfig(doc, 'fuzz.json'));
    },
    teardown() {
      if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
      scratch = undefined;
    },
  },
];
