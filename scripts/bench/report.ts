// Throughput and peak memory of `kml report --format json` on a large realistic corpus, next to
// `grep -c 'unreferenced object'` on the same files (the baseline, measured in the same run).
// Targets (issue 4): kml ≥ 1/10 of grep's throughput; peak RSS ≤ 150 MB whatever the input size.
//
//   npm run build && node dist/scripts/bench/report.js             # 200 MB corpus in a temp dir
//   node dist/scripts/bench/report.js --size 400 --keep            # bigger, keep the corpus
//   node dist/scripts/bench/report.js --dir /path/to/corpus        # reuse a kept corpus
//   node dist/scripts/bench/report.js --node-options='--max-semi-space-size=4'   # V8 heap flags for kml
//   ... --json                                                     # one JSON object on stdout
//
// The corpus is a seed-style folder of kmemleak_log_<N>.txt built from the real captures of every
// report era (test/fixtures/kmemleak, test/fixtures/shared/kmemleak): each record keeps its era's
// formatting, gets a unique address, and its caller frames are renamed to one of thousands of
// stack variants (a few hundred that leak in every snapshot, a long tail of one-shots).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const KML_BIN = path.join(ROOT, 'bin', 'kml.js');
const TARGET_RATIO = 0.1;
const TARGET_RSS_MB = 150;

const USAGE = `Usage: node dist/scripts/bench/report.js [--size MB] [--files N] [--dir DIR] [--keep] [--runs N] [--node-options STR] [--json]

Builds a corpus of about --size MB (default 200) in --files files (default 50) unless --dir holds
one already, then times grep -c 'unreferenced object' and kml report --format json on it.
--node-options='...' sets NODE_OPTIONS for kml only (e.g. --node-options='--max-semi-space-size=4').`;

// ---------------------------------------------------------------------------------------------
// Corpus

/** Record blocks of one capture: from an "unreferenced object" line to the next one. */
function recordsOf(text: string): string[] {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const out: string[] = [];
  let cur: string[] | null = null;
  for (const l of lines) {
    if (/unreferenced object/.test(l)) {
      if (cur) out.push(cur.join('\n'));
      cur = [l];
    } else if (cur && !/^\[section rc=/.test(l) && !/^=====/.test(l)) {
      cur.push(l);
    }
  }
  if (cur) out.push(cur.join('\n'));
  return out.filter((r) => /backtrace/.test(r));
}

interface Era {
  name: string;
  records: string[];
  crlf: boolean;
}

function loadEras(): Era[] {
  const dirs = [path.join(ROOT, 'test', 'fixtures', 'kmemleak'), path.join(ROOT, 'test', 'fixtures', 'shared', 'kmemleak')];
  const eras: Era[] = [];
  for (const d of dirs) {
    if (!fs.existsSync(d)) continue;
    for (const f of fs.readdirSync(d).filter((x) => x.endsWith('.txt')).sort()) {
      const text = fs.readFileSync(path.join(d, f), 'utf8');
      const records = recordsOf(text);
      if (records.length) eras.push({ name: f.replace(/\.txt$/, ''), records, crlf: text.includes('\r\n') });
    }
  }
  if (!eras.length) throw new Error('no kmemleak fixtures found under test/fixtures');
  return eras;
}

const ALLOCATOR = /^_*(k|kv|kmem|vm|v|slab|pcpu|alloc|create_object|kmemleak|krealloc|kstrdup|kasprintf|kmalloc|mempool|dma_alloc)/;
const FRAME_SYMBOL = /(\]\s+|^\s+|kmemleak:\s+)([A-Za-z_][A-Za-z0-9_]*)((?:\.[a-z]+\.\d+|\.cold)*\+0x[0-9a-f]+\/0x[0-9a-f]+)/gm;

/** The record with a unique address and its non-allocator frames renamed to stack variant k. */
function variant(record: string, k: number, serial: number): string {
  let r = record.replace(/(unreferenced object (?:\((?:percpu|phys)\) )?0x)([0-9a-f]+)/, (_m, head: string, addr: string) => {
    const width = addr.length;
    const uniq = (BigInt(`0x${addr}`) ^ BigInt(serial * 64)).toString(16).padStart(width, '0').slice(-width);
    return head + uniq;
  });
  const bt = r.search(/backtrace/);
  if (bt < 0) return r;
  const head = r.slice(0, bt);
  const tail = r.slice(bt).replace(FRAME_SYMBOL, (m, pre: string, sym: string, suf: string) => (ALLOCATOR.test(sym) ? m : `${pre}${sym}_v${k}${suf}`));
  r = head + tail;
  return r;
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Corpus { dir: string; files: string[]; bytes: number; records: number; eras: number; variants: number }

function buildCorpus(dir: string, sizeMb: number, nFiles: number): Corpus {
  const eras = loadEras();
  const rnd = mulberry(20251127);
  const perFile = Math.ceil((sizeMb * 1024 * 1024) / nFiles);
  const GROWING = 20, TAIL = 40; // × the ~90 captured records: some 5000 distinct stacks
  const used = new Set<string>();
  let serial = 0, records = 0, bytes = 0;
  const files: string[] = [];
  fs.mkdirSync(dir, { recursive: true });
  for (let n = 0; n < nFiles; n++) {
    const era = eras[n % eras.length];
    const parts: string[] = [];
    let size = 0;
    while (size < perFile) {
      const ti = Math.floor(rnd() * era.records.length);
      const k = rnd() < 0.7 ? Math.floor(rnd() * GROWING) : GROWING + Math.floor(rnd() * TAIL);
      used.add(`${era.name}/${ti}/${k}`);
      const rec = variant(era.records[ti], k, ++serial) + '\n';
      parts.push(rec);
      size += rec.length;
      records++;
    }
    let text = parts.join('');
    if (era.crlf) text = text.replace(/\n/g, '\r\n');
    const file = path.join(dir, `kmemleak_log_${n}.txt`);
    fs.writeFileSync(file, text);
    files.push(file);
    bytes += Buffer.byteLength(text);
  }
  return { dir, files, bytes, records, eras: eras.length, variants: used.size };
}

function existingCorpus(dir: string): Corpus {
  const files = fs.readdirSync(dir).filter((f) => /^kmemleak_log_\d+\.txt$/.test(f)).map((f) => path.join(dir, f));
  if (!files.length) throw new Error(`${dir} holds no kmemleak_log_<N>.txt`);
  const bytes = files.reduce((s, f) => s + fs.statSync(f).size, 0);
  return { dir, files, bytes, records: NaN, eras: NaN, variants: NaN };
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface Run { wallS: number; maxRssMb: number; stdout: string; status: number | null; stderr: string }

const HAVE_TIME = fs.existsSync('/usr/bin/time');

/** Run a command, measuring wall time and the child's peak RSS (GNU time, else a node exit hook). */
function measure(cmd: string, args: string[], node: boolean, env: NodeJS.ProcessEnv = process.env): Run {
  const rssFile = path.join(os.tmpdir(), `kml-bench-rss-${process.pid}-${Date.now()}`);
  let argv: string[];
  if (HAVE_TIME) {
    argv = ['/usr/bin/time', '-f', '%M', '-o', rssFile, cmd, ...args];
  } else if (node) {
    // maxRSS is in kB, like GNU time's %M.
    const hook = `import{writeFileSync}from'node:fs';process.on('exit',()=>writeFileSync(${JSON.stringify(rssFile)},String(process.resourceUsage().maxRSS)))`;
    argv = [cmd, '--import', `data:text/javascript,${encodeURIComponent(hook)}`, ...args];
  } else {
    argv = [cmd, ...args];
  }
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024, env });
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  let maxRssMb = NaN;
  try { maxRssMb = Number(fs.readFileSync(rssFile, 'utf8').trim().split('\n').pop()) / 1024; } catch { /* no measurement */ }
  fs.rmSync(rssFile, { force: true });
  return { wallS, maxRssMb, stdout: r.stdout ?? '', status: r.status, stderr: r.stderr ?? '' };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '200' }, files: { type: 'string', default: '50' }, dir: { type: 'string' },
      keep: { type: 'boolean', default: false }, runs: { type: 'string', default: '1' }, json: { type: 'boolean', default: false },
      'node-options': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) { console.log(USAGE); return; }
  const sizeMb = Number(values.size), nFiles = Number(values.files), runs = Math.max(1, Number(values.runs));
  const log = (s: string) => { if (!values.json) console.log(s); };

  const given = values.dir && fs.existsSync(values.dir) && fs.readdirSync(values.dir).some((f) => f.startsWith('kmemleak_log_'));
  const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kml-bench-report-'));
  const tg = Date.now();
  const corpus = given ? existingCorpus(dir) : buildCorpus(dir, sizeMb, nFiles);
  const mb = corpus.bytes / (1024 * 1024);
  log(`corpus: ${dir}: ${corpus.files.length} files, ${mb.toFixed(1)} MB, ${Number.isNaN(corpus.records) ? '?' : corpus.records} records, ` +
    `${Number.isNaN(corpus.eras) ? '?' : corpus.eras} era captures, ${Number.isNaN(corpus.variants) ? '?' : corpus.variants} distinct stacks` +
    `${given ? ' (reused)' : ` (built in ${((Date.now() - tg) / 1000).toFixed(1)} s)`}`);

  try {
    // Warm the page cache so both tools read from memory.
    measure('cat', corpus.files, false);
    const grepRuns: Run[] = [];
    for (let i = 0; i < 3; i++) grepRuns.push(measure('grep', ['-c', 'unreferenced object', ...corpus.files], false));
    const grepCount = grepRuns[0].stdout.split('\n').filter(Boolean).reduce((s, l) => s + Number(l.split(':').pop()), 0);
    const grepS = median(grepRuns.map((r) => r.wallS));

    const out = path.join(os.tmpdir(), `kml-bench-report-${process.pid}.json`);
    const kmlRuns: Run[] = [];
    for (let i = 0; i < runs; i++) {
      const env = values['node-options'] !== undefined ? { ...process.env, NODE_OPTIONS: values['node-options'] } : process.env;
      const r = measure(process.execPath, [KML_BIN, 'report', dir, '--format', 'json', '--out', out], true, env);
      if (r.status !== 0) throw new Error(`kml report exited ${r.status}: ${r.stderr.slice(-2000)}`);
      kmlRuns.push(r);
    }
    const analysis = JSON.parse(fs.readFileSync(out, 'utf8')) as { parseStats: { records: number; unparsedLines: number }; totals: { groups: number; suppressedGroups: number } };
    fs.rmSync(out, { force: true });
    const kmlS = median(kmlRuns.map((r) => r.wallS));
    const rss = Math.max(...kmlRuns.map((r) => r.maxRssMb));
    const grepMBs = mb / grepS, kmlMBs = mb / kmlS;
    const ratio = kmlMBs / grepMBs;
    const result = {
      corpusMB: +mb.toFixed(1), files: corpus.files.length,
      grep: { seconds: +grepS.toFixed(3), MBps: +grepMBs.toFixed(1), count: grepCount, maxRssMB: +grepRuns[0].maxRssMb.toFixed(1) },
      kml: { seconds: +kmlS.toFixed(3), MBps: +kmlMBs.toFixed(1), records: analysis.parseStats.records, groups: analysis.totals.groups + analysis.totals.suppressedGroups, unparsedLines: analysis.parseStats.unparsedLines, maxRssMB: +rss.toFixed(1) },
      ratio: +ratio.toFixed(3), targets: { ratio: TARGET_RATIO, maxRssMB: TARGET_RSS_MB },
      pass: ratio >= TARGET_RATIO && rss <= TARGET_RSS_MB,
    };
    if (values.json) {
      console.log(JSON.stringify(result));
    } else {
      log(`grep -c 'unreferenced object': ${grepS.toFixed(2)} s, ${grepMBs.toFixed(0)} MB/s, ${grepCount} records (median of 3, warm cache)`);
      log(`kml report --format json:      ${kmlS.toFixed(2)} s, ${kmlMBs.toFixed(1)} MB/s, ${result.kml.records} records, ${result.kml.groups} groups, peak RSS ${rss.toFixed(0)} MB`);
      log(`ratio kml/grep: ${ratio.toFixed(3)} (target ≥ ${TARGET_RATIO}) ${ratio >= TARGET_RATIO ? 'OK' : 'BELOW TARGET'}; peak RSS ${rss.toFixed(0)} MB (target ≤ ${TARGET_RSS_MB}) ${rss <= TARGET_RSS_MB ? 'OK' : 'ABOVE TARGET'}`);
      if (result.kml.records !== grepCount) log(`note: kml parsed ${result.kml.records} records, grep counted ${grepCount} lines`);
    }
    if (!result.pass) process.exitCode = 1;
  } finally {
    if (!values.keep && !given) fs.rmSync(dir, { recursive: true, force: true });
    else log(`corpus kept in ${dir}`);
  }
}

main().catch((e: unknown) => {
  console.error(`bench report: ${(e as Error)?.stack ?? String(e)}`);
  process.exit(1);
});
