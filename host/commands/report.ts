// `kml report SOURCE` and `kml diff BASELINE CANDIDATE`: analyse a run (kml store run dir, plain
// folder of kmemleak_log_N.txt, one file, or a saved JSON analysis), add the memory verdict, and
// render it. Exit codes: 0 ok, 1 --fail-on matched, 2 usage, 5 unreadable input or output.
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { ExitCode, KmlError, ioError } from '../errors.js';
import { analyzeRun, type AnalyzeOptions } from '../analyze/index.js';
import type { AnalyzedRun } from '../analyze/model.js';
import { loadMemory } from '../analyze/memory-source.js';
import { isMemoryAnalysis } from '../analyze/memory.js';
import { computeVerdict, kmemleakGrowthOf } from '../analyze/verdict.js';
import { renderTo, REPORT_FORMATS, type ReportFormat } from '../report/index.js';
import { ProgressLine } from '../report/progress.js';
import { isGrowing, isNew, DEFAULT_TOP } from '../report/common.js';
import { looksLikeAnalysis, parseAnalysisJson } from '../report/json.js';
import { diffRuns, renderDiffJson, renderDiffJunit, renderDiffMarkdown, renderDiffText, type RunDiff } from '../report/diff.js';
import { action, parsePositiveInt } from './context.js';

interface ReportCliOptions {
  format: ReportFormat;
  out?: string;
  failOn?: 'new' | 'growing';
  since?: string;
  suppress?: string;
  top?: string;
  timings?: boolean;
}

interface DiffCliOptions {
  format: 'text' | 'json' | 'md' | 'junit';
  out?: string;
  failOn?: 'new' | 'grown';
  suppress?: string;
  threshold?: string;
}

const SOURCE_HINT = 'give a kml run directory (<out>/<serial>/<run-id>), a folder of kmemleak_log_<N>.txt, one kmemleak file, or a JSON analysis';

/** A saved analysis is re-rendered as is; anything else is analysed. */
async function loadRun(source: string, opts: AnalyzeOptions, mark: (phase: string) => void = () => {}): Promise<AnalyzedRun> {
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch (e) {
    throw Object.assign(ioError(`cannot read ${source}`, e), { hint: SOURCE_HINT });
  }
  if (st.isFile() && st.size < 512 * 1024 * 1024 && /\.json$/i.test(source)) {
    const text = readText(source);
    let parsed: unknown;
    try { parsed = JSON.parse(text); } catch { parsed = undefined; }
    if (looksLikeAnalysis(parsed)) {
      if (opts.sinceSeq !== undefined || opts.suppressFile !== undefined) {
        throw new KmlError(ExitCode.USAGE, `${source} is a saved analysis: --since and --suppress apply when a run is analysed`, {
          hint: 'give the run directory instead, or drop those options to re-render the analysis as saved',
        });
      }
      const saved = parseAnalysisJson(text, source);
      mark('loadAnalysis');
      return withMemory(saved, false);
    }
  }
  if (!st.isFile() && !st.isDirectory()) throw new KmlError(ExitCode.IO, `${source} is neither a file nor a directory`, { hint: SOURCE_HINT });
  const run: AnalyzedRun = await analyzeRun(path.resolve(source), opts);
  if (run.snapshots.length === 0) {
    throw new KmlError(ExitCode.IO, `no kmemleak snapshots found in ${source}`, { hint: SOURCE_HINT });
  }
  mark('parseAndGroup');
  withMemory(run, true);
  mark('memoryAndVerdict');
  return run;
}

/** Add the memory analysis and verdict unless a saved analysis already has them. */
function withMemory(run: AnalyzedRun, fresh: boolean): AnalyzedRun {
  if (fresh || (!isMemoryAnalysis(run.memory) && fs.existsSync(run.source.path))) {
    run.memory = loadMemory(run);
  }
  if (fresh || run.verdict === undefined) {
    run.verdict = computeVerdict(isMemoryAnalysis(run.memory) ? run.memory : null, kmemleakGrowthOf(run));
  }
  return run;
}

/**
 * Seconds per phase of `kml report` (--timings): `start` is from process start to the command
 * (node, module loading, argument parsing); the others follow in order. Plus the process's CPU
 * seconds (user + system, all threads) and peak RSS so far.
 */
function phaseClock(): { mark: (phase: string) => void; done: () => Record<string, number> } {
  const out: Record<string, number> = { start: round3(process.uptime()) };
  let last = process.uptime();
  return {
    mark(phase: string): void {
      const now = process.uptime();
      out[phase] = round3(now - last);
      last = now;
    },
    done(): Record<string, number> {
      const cpu = process.cpuUsage();
      return { ...out, total: round3(process.uptime()), cpu: round3((cpu.user + cpu.system) / 1e6), peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) };
    },
  };
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw ioError(`cannot read ${file}`, e);
  }
}

/** Write atomically (temp file + rename) so a half-written report never replaces a good one. */
function writeOut(out: string | undefined, text: string): void {
  writeOutPieces(out, (write) => write(text));
}

/** Pieces passed on in writes of about this many characters. */
const WRITE_BATCH = 1 << 16;

/**
 * writeOut for text made in pieces by `produce` (the JSON report): written as it comes, so the
 * whole text is never in memory.
 */
function writeOutPieces(out: string | undefined, produce: (write: (piece: string) => void) => void): void {
  const toStdout = !out || out === '-';
  const tmp = toStdout ? '' : path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.${process.pid}.tmp`);
  let fd: number | null = null;
  try {
    if (!toStdout) fd = fs.openSync(tmp, 'w');
    let batch: string[] = [];
    let size = 0;
    const flush = (): void => {
      const text = batch.length === 1 ? batch[0] : batch.join('');
      batch = [];
      size = 0;
      if (fd === null) process.stdout.write(text);
      else fs.writeSync(fd, text);
    };
    produce((piece) => {
      batch.push(piece);
      size += piece.length;
      if (size >= WRITE_BATCH) flush();
    });
    if (size > 0) flush();
    if (fd !== null) {
      fs.closeSync(fd);
      fd = null;
      fs.renameSync(tmp, out!);
    }
  } catch (e) {
    if (toStdout) throw e;
    if (fd !== null) try { fs.closeSync(fd); } catch { /* best effort */ }
    try { fs.rmSync(tmp, { force: true }); } catch { /* best effort */ }
    throw ioError(`cannot write ${out}`, e);
  }
}

function parseSince(text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new KmlError(ExitCode.USAGE, `--since must be a snapshot number (0 or more), got ${JSON.stringify(text)}`);
  return Number(text);
}

function checkSuppressFile(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch (e) {
    throw ioError(`cannot read suppression file ${file}`, e);
  }
  return path.resolve(file);
}

export function failOnMatches(run: AnalyzedRun, failOn: 'new' | 'growing' | undefined): number {
  if (!failOn) return 0;
  return run.groups.filter(failOn === 'new' ? isNew : isGrowing).length;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('turn a run into a leak report and a memory verdict (text, json, html, junit, md)')
    .argument('<source>', 'kml run directory, folder of kmemleak_log_<N>.txt, one kmemleak file, or a saved JSON analysis')
    .addOption(new Option('-f, --format <format>', 'output format').choices([...REPORT_FORMATS]).default('text'))
    .option('-o, --out <file>', 'write the report to this file (atomically) instead of stdout')
    .addOption(new Option('--fail-on <what>', 'exit 1 when any unsuppressed group is new (first seen in the last snapshot) or growing (growing or new)').choices(['new', 'growing']))
    .option('--since <N>', 'leave out snapshots with a sequence number below N')
    .option('--suppress <file>', 'user suppression file (JSON) in addition to the built-in list')
    .option('--top <N>', `groups shown in text/md/html (default ${DEFAULT_TOP}; json has all)`)
    .option('--timings', 'print where the time went (start, kmemleak parse + group, memory samples + verdict, render + write, CPU, peak RSS) as one JSON line on stderr')
    .addHelpText('after', `
The JSON format (with "schemaVersion") is the source of truth; the other formats render from it,
and a saved JSON analysis can be given back as SOURCE to render it again.

Examples:
  kml report kml-runs/0123456789ABCDEF/20251126-2301
  kml report /sdcard-copy/log_kmemleak --format html --out leaks.html
  kml report kmemleak_log_12.txt
  kml report RUN_DIR --format junit --out kml-junit.xml --fail-on growing
  kml report RUN_DIR --format json --out run.json && kml report run.json --format md
  kml report RUN_DIR --since 10 --suppress known-leaks.json --top 10

Exit codes: 0 report written, 1 --fail-on matched (the report is still written), 2 usage,
  5 input unreadable or empty (no kmemleak snapshots), or output not writable.`)
    .action(action(async (source: string, o: ReportCliOptions) => {
      const top = o.top !== undefined ? parsePositiveInt('--top', o.top) : undefined;
      const sinceSeq = o.since !== undefined ? parseSince(o.since) : undefined;
      const suppressFile = checkSuppressFile(o.suppress);
      const clock = phaseClock();
      const progress = process.stderr.isTTY ? new ProgressLine(process.stderr) : null;
      let run: AnalyzedRun;
      try {
        run = await loadRun(source, { sinceSeq, suppressFile, onProgress: progress ? (p) => progress.update(p) : undefined }, clock.mark);
      } finally {
        progress?.done();
      }
      // Rendered and written in one pass (the JSON report is written in pieces as it is made).
      writeOutPieces(o.out, (write) => renderTo(run, o.format, { top }, write));
      clock.mark('renderAndWrite');
      if (o.timings) process.stderr.write(JSON.stringify({ timings: clock.done(), bytes: run.parseStats.bytes, records: run.parseStats.records }) + '\n');
      const matched = failOnMatches(run, o.failOn);
      if (matched) {
        process.stderr.write(`kml: --fail-on ${o.failOn}: ${matched} leak group(s) matched\n`);
        return ExitCode.FAIL;
      }
      return ExitCode.OK;
    }));

  program
    .command('diff')
    .description('compare two runs: leak groups new, gone, grown or shrunk (lkp A/B style)')
    .argument('<baseline>', 'baseline run (run dir, folder, file or JSON analysis)')
    .argument('<candidate>', 'candidate run (same kinds)')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['text', 'json', 'md', 'junit']).default('text'))
    .option('-o, --out <file>', 'write to this file (atomically) instead of stdout')
    .addOption(new Option('--fail-on <what>', 'exit 1 when any group is new in the candidate, or new or grown').choices(['new', 'grown']))
    .option('--suppress <file>', 'user suppression file applied to both runs')
    .option('--threshold <pct>', 'percent change of bytes/h (else bytes) that counts as grown or shrunk', '10')
    .addHelpText('after', `
Groups are matched by fingerprint (stable across kernels and address hashing). Runs of different
length are compared on bytes per hour when both runs have a rate, else on total bytes.

Examples:
  kml diff kml-runs/DEV/before kml-runs/DEV/after
  kml diff before.json after.json --format md --out diff.md
  kml diff BASE CAND --fail-on new --format junit --out kml-diff.xml

Exit codes: 0 ok, 1 --fail-on matched, 2 usage, 5 input unreadable or empty.`)
    .action(action(async (baseline: string, candidate: string, o: DiffCliOptions) => {
      const threshold = Number(o.threshold ?? '10');
      if (!(threshold >= 0) || !Number.isFinite(threshold)) throw new KmlError(ExitCode.USAGE, `--threshold must be a percentage, got ${JSON.stringify(o.threshold)}`);
      const suppressFile = checkSuppressFile(o.suppress);
      const a = await loadRun(baseline, { suppressFile });
      const b = await loadRun(candidate, { suppressFile });
      const d: RunDiff = diffRuns(a, b, threshold);
      const text = o.format === 'json' ? renderDiffJson(d) : o.format === 'md' ? renderDiffMarkdown(d) : o.format === 'junit' ? renderDiffJunit(d) : renderDiffText(d);
      writeOut(o.out, text);
      const matched = o.failOn === 'new' ? d.counts.new : o.failOn === 'grown' ? d.counts.new + d.counts.grown : 0;
      if (matched) {
        process.stderr.write(`kml: --fail-on ${o.failOn}: ${matched} leak group(s) matched\n`);
        return ExitCode.FAIL;
      }
      return ExitCode.OK;
    }));
}
