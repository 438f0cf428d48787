// JSON: the source of truth (schemaVersion, kind 'kml-analysis'); every other format renders from it,
// and `kml report analysis.json --format html` re-renders a saved analysis.
import { ANALYSIS_SCHEMA_VERSION, type AnalyzedRun } from '../analyze/model.js';
import { ExitCode, KmlError } from '../errors.js';

export function renderJson(run: AnalyzedRun): string {
  return JSON.stringify(run, null, 2) + '\n';
}

/** True when a parsed JSON value claims to be a kml analysis (whatever its version). */
export function looksLikeAnalysis(x: unknown): boolean {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'kml-analysis';
}

/** Accept a saved analysis, refusing versions this kml does not know. */
export function parseAnalysisJson(text: string, origin: string): AnalyzedRun {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (e) {
    throw new KmlError(ExitCode.IO, `${origin}: not valid JSON (${(e as Error).message})`);
  }
  if (!looksLikeAnalysis(x)) throw new KmlError(ExitCode.IO, `${origin}: not a kml analysis (no "kind": "kml-analysis")`);
  const v = (x as { schemaVersion?: unknown }).schemaVersion;
  if (v !== ANALYSIS_SCHEMA_VERSION) {
    throw new KmlError(ExitCode.IO, `${origin}: analysis schemaVersion ${JSON.stringify(v)} is not supported (this kml reads ${ANALYSIS_SCHEMA_VERSION})`, {
      hint: 'rerun `kml report` on the run directory with this kml version',
    });
  }
  const run = x as AnalyzedRun;
  if (!Array.isArray(run.groups) || !Array.isArray(run.snapshots)) throw new KmlError(ExitCode.IO, `${origin}: analysis is missing groups or snapshots`);
  return run;
}
