// Fuzz targets for the memory-state side: every /proc parser and the kernel-log parser on any text,
// then the whole memory pipeline (series → verdict → renderers) on samples made of that text.
// Registered in targets.ts; run with `node dist/scripts/fuzz/parsers.js --target memstate`.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FuzzTarget } from './targets.js';
import {
  parseMeminfo, parseVmstat, parseBuddyinfo, parseZoneinfo, parseSlabinfo, parsePagetypeinfo, parseKernelLog,
  zoneReclaimablePages, reclaimableKb, unaccountedKb, freePagesOf, type Unparsed,
} from '../../host/memstate/index.js';
import { analyzeMemory, type SampleInput } from '../../host/analyze/memory.js';
import { MEM_FILES } from '../../host/analyze/memory-model.js';
import { computeVerdict } from '../../host/analyze/verdict.js';
import { renderText, renderHtml, renderMarkdown, renderJunit, renderJson } from '../../host/report/index.js';
import type { AnalyzedRun } from '../../host/analyze/model.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function filesIn(rel: string): string[] {
  const dir = path.join(ROOT, rel);
  return fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort().map((f) => path.join(rel, f));
}

function checkUnparsed(u: Unparsed, where: string): void {
  if (!(u.count >= 0) || u.samples.length > 3 || u.samples.some((s) => s.length > 200)) throw new Error(`${where}: bad unparsed counters`);
}

function checkNumbers(x: unknown, where: string, depth = 0): void {
  if (depth > 6 || x === null || x === undefined) return;
  if (typeof x === 'number') { if (Number.isNaN(x)) throw new Error(`${where}: NaN`); return; }
  if (typeof x === 'object') for (const [k, v] of Object.entries(x)) checkNumbers(v, `${where}.${k}`, depth + 1);
}

/** A minimal analysis shell so the renderers run over the fuzzed memory analysis. */
function shell(): AnalyzedRun {
  return {
    schemaVersion: 1, kind: 'kml-analysis', generatedAt: '2025-01-01T00:00:00Z', kmlVersion: 'fuzz', source: { type: 'folder', path: '/fuzz' },
    run: { serial: null, runId: null, kernelVersion: null, cmdline: null, intervalS: null, scanProtocol: null, startedAt: null, deviceProps: {}, bootIds: [], hz: { value: 250, source: 'assumed' }, pointerBits: null, formats: {}, snapshotMode: 'unknown' },
    options: { framesInKey: 5, bootWindowS: 60, builtinSuppressions: true, suppressFile: null, extraSkipFrames: [], sinceSeq: null, recentSnapshots: 2 },
    snapshots: [], groups: [], suppressed: [], suppressionsUsed: [],
    totals: { groups: 0, objects: 0, bytes: 0, suppressedGroups: 0, suppressedObjects: 0, suppressedBytes: 0 },
    assumptions: [], parseStats: { files: 0, lines: 0, bytes: 0, records: 0, truncatedRecords: 0, duplicateRecords: 0, unparsedLines: 0, overlongLines: 0, ignoredLines: {}, unparsedSamples: [] },
    inputStats: { snapshotsFound: 0, partialSkipped: [], conflictsSkipped: [], missingMeta: 0, missingFiles: [], badManifestLines: 0, hashMismatches: 0, unreadable: 0, runJson: 'missing' },
  };
}

export const MEMSTATE_TARGETS: FuzzTarget[] = [
  {
    name: 'memstate',
    corpus: () => [...filesIn('test/fixtures/shared/proc'), ...filesIn('test/fixtures/memstate/host-6.18'), ...filesIn('test/fixtures/memstate'), ...filesIn('test/fixtures/memstate/lmk')],
    run(text, r) {
      const mi = parseMeminfo(text); checkUnparsed(mi.unparsed, 'meminfo');
      reclaimableKb(mi); unaccountedKb(mi);
      checkUnparsed(parseVmstat(text).unparsed, 'vmstat');
      const bi = parseBuddyinfo(text); checkUnparsed(bi.unparsed, 'buddyinfo');
      for (const z of bi.zones) if (!Number.isFinite(freePagesOf(z.freeBlocks))) throw new Error('buddy free pages not finite');
      const zi = parseZoneinfo(text); checkUnparsed(zi.unparsed, 'zoneinfo');
      for (const z of zi.zones) { zoneReclaimablePages(z, true); zoneReclaimablePages(z, false); }
      checkUnparsed(parseSlabinfo(text).unparsed, 'slabinfo');
      const pt = parsePagetypeinfo(text); checkUnparsed(pt.unparsed, 'pagetypeinfo');
      for (const f of pt.free) if (f.counts.length !== f.capped.length) throw new Error('capped flags out of step');
      const log = parseKernelLog(text); checkUnparsed(log.unparsed, 'kmsg');
      if (log.events.some((e) => e.text.length > 300)) throw new Error('event text not capped');

      // The pipeline: three samples whose files are this text (or a random subset of them), cut to
      // 256 kB (real /proc files are far smaller) so one input stays well inside the time bound.
      const sampleText = text.length > 262144 ? text.slice(0, 262144) : text;
      const samples: SampleInput[] = [0, 1, 2].map((k) => {
        const texts: SampleInput['texts'] = {};
        for (const f of [...MEM_FILES, 'kmsg'] as const) if (r() < 0.7) texts[f] = sampleText;
        return { snapshot: k, seq: k, bootId: r() < 0.9 ? 'b' : null, t: r() < 0.9 ? 1000 + k * 600 : null, uptimeS: r() < 0.8 ? 50 + k * 600 : null, texts };
      });
      const mem = analyzeMemory(samples, 3);
      const v = computeVerdict(mem, { snapshots: 3, groups: 1, growingGroups: r() < 0.5 ? 1 : 0, bytesPerHour: r() * 1000, ratesKnown: r() < 0.5, bytes: 100, topTitle: 'memory leak in x' });
      if (v.rows.length !== 5) throw new Error('verdict must have five rows');
      checkNumbers(mem, 'memory');
      const run = shell();
      run.memory = mem;
      run.verdict = v;
      renderText(run); renderHtml(run); renderMarkdown(run); renderJunit(run); renderJson(run);
    },
  },
];
