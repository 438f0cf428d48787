// JSON: the source of truth (schemaVersion, kind 'kml-analysis'); every other format renders from it,
// and `kml report analysis.json --format html` re-renders a saved analysis.
import { ANALYSIS_SCHEMA_VERSION, type AnalyzedRun } from '../analyze/model.js';
import { ExitCode, KmlError } from '../errors.js';

export function renderJson(run: AnalyzedRun): string {
  const parts: string[] = [];
  writeJson(run, (p) => parts.push(p));
  return parts.join('');
}

/**
 * The JSON report in pieces, top-level member by member and big arrays element by element:
 * exactly the text of `JSON.stringify(run, null, 2) + '\n'`, never held whole. On a 200 MB run
 * the whole text is ~11 MB, twice that as UTF-16 when any character is not Latin-1, plus its
 * UTF-8 copy for the write: that was `kml report`'s peak memory (+32 MB), not the analysis.
 */
export function writeJson(run: AnalyzedRun, write: (piece: string) => void): void {
  const value = toJsonValue(run, '');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    write(JSON.stringify(value, null, 2) + '\n');
    return;
  }
  write('{');
  let first = true;
  for (const key of Object.keys(value)) {
    const v = toJsonValue((value as Record<string, unknown>)[key], key);
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue; // JSON.stringify leaves these members out
    write(`${first ? '' : ','}\n  ${JSON.stringify(key)}: `);
    first = false;
    if (Array.isArray(v) && v.length > 0) {
      write('[');
      for (let i = 0; i < v.length; i++) {
        const text = JSON.stringify(toJsonValue(v[i], String(i)), null, 2) ?? 'null'; // as JSON.stringify does in arrays
        write(`${i === 0 ? '' : ','}\n    ${indentLines(text, '    ')}`);
      }
      write('\n  ]');
    } else {
      write(indentLines(JSON.stringify(v, null, 2), '  '));
    }
  }
  write(first ? '}\n' : '\n}\n');
}

/** What JSON.stringify serialises for a value: its toJSON(key) result when it has one. */
function toJsonValue(v: unknown, key: string): unknown {
  return v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function' ? (v as { toJSON(k: string): unknown }).toJSON(key) : v;
}

/** Text of a nested JSON value, its lines after the first indented one level deeper (JSON strings hold no raw newline). */
function indentLines(text: string, pad: string): string {
  return text.includes('\n') ? text.replace(/\n/g, '\n' + pad) : text;
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
