// What gets fuzzed: each target names its corpus (real captures) and a function that must never
// throw on any input. Add a target here to fuzz another parser (the /proc parsers go here too).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fingerprinter } from '../../host/kmemleak/fingerprint.js';
import { KmemleakParser, parseKmemleakStream, parseKmemleakText } from '../../host/kmemleak/parser.js';
import { StackInterner } from '../../host/kmemleak/stack-table.js';
import { parseInPieces } from './feed.js';
import { HzEstimator, allocUptimeS } from '../../host/kmemleak/jiffies.js';
import type { KmemleakRecord } from '../../host/kmemleak/types.js';
import { MEMSTATE_TARGETS } from './memstate.js'; // /proc parsers + memory pipeline (report side)
import { DEVICE_TARGETS } from './device.js'; // agent files, doctor's readers, adb answers
import { STORE_TARGETS } from './store.js'; // manifest, run.json, skipped.jsonl, lock, report's run reader

// dist/scripts/fuzz/ → repository root (fixtures stay in the source tree).
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface FuzzTarget {
  name: string;
  /** Corpus files, relative to the repository root. */
  corpus: () => string[];
  /** Must not throw (nor reject). `r` gives deterministic randomness (e.g. chunk sizes). */
  run: (text: string, r: () => number) => void | Promise<void>;
  /** Called once after the target's last input (scratch folders). */
  teardown?: () => void;
}

function filesIn(rel: string, ext = '.txt'): string[] {
  const dir = path.join(REPO_ROOT, rel);
  return fs.readdirSync(dir).filter((f) => f.endsWith(ext)).sort().map((f) => path.join(rel, f));
}

function checkRecord(r: KmemleakRecord): void {
  // Invariants any record must keep, whatever the input.
  if (!/^[0-9a-f]+$/.test(r.address)) throw new Error(`bad address ${r.address}`);
  if (!Number.isFinite(r.size) || r.size < 0) throw new Error(`bad size ${r.size}`);
  if (r.frames.length > 64) throw new Error('frame cap exceeded');
  if (r.hex !== null && r.hex.length > 128) throw new Error('hex cap exceeded');
  if (r.comm !== null && r.comm.length > 64) throw new Error('comm cap exceeded');
}

export const TARGETS: FuzzTarget[] = [
  {
    name: 'kmemleak',
    corpus: () => [...filesIn('test/fixtures/kmemleak'), ...filesIn('test/fixtures/shared/kmemleak')],
    async run(text, r) {
      // In memory, and streamed in random chunk sizes: both must agree on the record count.
      const a = parseKmemleakText(text);
      const fp = new Fingerprinter();
      const hz = new HzEstimator();
      let streamed = 0;
      const p = new KmemleakParser({ onRecord: (rec) => { streamed++; checkRecord(rec); fp.identify(rec); if (rec.jiffies !== null) { hz.observe(rec.jiffies, rec.pointerBits, 100, rec.ageMs); allocUptimeS(rec.jiffies, 250, rec.pointerBits, 100); } } });
      const buf = Buffer.from(text, 'utf8');
      parseInPieces(p, buf, () => 1 + Math.floor(r() * 4096), false);
      hz.result();
      for (const rec of a.records) checkRecord(rec);
      if (streamed !== a.records.length) throw new Error(`streamed ${streamed} records, in-memory ${a.records.length}`);
      // the stream entry point (what reads files) over the same chunks
      const chunks: Buffer[] = [];
      for (let i = 0; i < buf.length;) {
        const n = 1 + Math.floor(r() * 65536);
        chunks.push(buf.subarray(i, i + n));
        i += n;
      }
      let fromStream = 0;
      await parseKmemleakStream(chunks, (rec) => { fromStream++; checkRecord(rec); });
      if (fromStream !== a.records.length) throw new Error(`parseKmemleakStream gave ${fromStream} records, in-memory ${a.records.length}`);
      if (p.counters.unparsedLines + p.counters.records > p.counters.lines + 1 && p.counters.lines > 0) throw new Error('counters inconsistent');
      // The byte path with a stack table (the analysis's way: the backtrace block memo is on), on
      // the text twice so that blocks repeat: the records must be those of reading every line.
      const twice = Buffer.concat([buf, buf]);
      const cuts: number[] = [];
      for (let i = 0; i < twice.length;) { const n = 1 + Math.floor(r() * 65536); cuts.push(n); i += n; }
      const viaBytes = (memo: boolean): string => {
        const recs: KmemleakRecord[] = [];
        const pm = new KmemleakParser({ stacks: new StackInterner(), blockMemo: memo, onRecord: (rec) => recs.push(rec) });
        let k = 0;
        const c = parseInPieces(pm, twice, () => cuts[k++]);
        return JSON.stringify({ recs, c });
      };
      if (viaBytes(true) !== viaBytes(false)) throw new Error('the backtrace block memo changed the records or counters');
    },
  },
  ...MEMSTATE_TARGETS,
  ...DEVICE_TARGETS,
  ...STORE_TARGETS,
];
