// Throughput and peak memory of `kml report --format json` on large realistic corpora, next to
// `grep -c 'unreferenced object'` on the same files (the baseline, measured in the same run).
// Targets (issue 4): parse + group ≥ 1/10 of grep's throughput; peak RSS ≤ 150 MB whatever the
// input size. parse + group is kml's own measure of its analysis phase (`kml report --timings`:
// read, parse, deduplicate, fingerprint, group, trend); the whole command's throughput (node
// start, memory samples, render, write included) is printed beside it.
//
//   npm run build && node dist/scripts/bench/report.js             # both corpora, 200 MB each, temp dir
//   node dist/scripts/bench/report.js --size 400 --keep            # bigger, keep the corpora
//   node dist/scripts/bench/report.js --dir /tmp/kml-corpus --keep # build once, reuse with the same --dir
//   node dist/scripts/bench/report.js --only file                  # one corpus (store | file)
//   node dist/scripts/bench/report.js --node-options='--max-old-space-size=64'   # NODE_OPTIONS for kml only
//   ... --json                                                     # one JSON object on stdout
//
// kml runs as bin/kml.js through its shebang, as `kml` does for a user (the shebang sets V8's
// young generation size). Wall time, CPU time (user + sys) and peak RSS come from GNU time; on a
// shared machine wall time includes waiting for a CPU, so MB per CPU second is printed too.
// The corpus description is written to bench-corpus.json beside each corpus and printed.
//
// Two corpora, both built from the golden captures of every report era (test/fixtures/kmemleak:
// raw 32-bit pointers with terminator, hashed, ptrval, %pK zeros, crc, bare 6.13 frames, percpu,
// unresolved module addresses, dmesg and kmsg copies, symbolized syzkaller output, CRLF):
// - store: a kml store run like `kml collect` writes (run.json, manifest.jsonl with sha256 per file,
//   boot-<id>/kmemleak_log_<N>.txt + meta_<N>.json + mem_<N>/*.txt), --snapshots files (default
//   144: a day at the seed's 10-minute interval), each snapshot in one era's format, eras in turn;
// - file: one big kmemleak file (`kml report big.txt`), every era's records interleaved: the case
//   where one snapshot holds every record, so nothing per snapshot can be dropped early.
// Each record gets a unique address and its caller frames renamed to one of --variants stack
// variants per captured record (default 100, some 4800 distinct stacks): a fifth of them leak in
// every snapshot of their era (growing groups), the rest form a long tail of one-shots.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const KML_BIN = path.join(ROOT, 'bin', 'kml.js');
const TARGET_RATIO = 0.1;
const TARGET_RSS_MB = 150;

const USAGE = `Usage: node dist/scripts/bench/report.js [--size MB] [--snapshots N] [--variants N] [--only store|file]
       [--dir DIR] [--keep] [--runs N] [--node-options STR] [--json]

Builds (or reuses, in --dir) a kml store of --snapshots files and one big file, each about --size MB
(default 200), then times grep -c 'unreferenced object' and kml report --format json on each.
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
    } else if (cur && !/^\[section rc=/.test(l) && !/^=====/.test(l) && l !== '') {
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
  const dir = path.join(ROOT, 'test', 'fixtures', 'kmemleak');
  const eras: Era[] = [];
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.txt')).sort()) {
    // The seed's capture was copied from a web page, which turned indentation into no-break
    // spaces; the kernel prints spaces, and a store holds what the device printed.
    const text = fs.readFileSync(path.join(dir, f), 'utf8').replace(/\u00a0/g, ' ');
    const records = recordsOf(text);
    if (records.length) eras.push({ name: f.replace(/\.txt$/, ''), records, crlf: text.includes('\r\n') });
  }
  if (!eras.length) throw new Error('no kmemleak fixtures found under test/fixtures/kmemleak');
  return eras;
}

const ALLOCATOR = /^_*(k|kv|kmem|vm|v|slab|pcpu|alloc|create_object|kmemleak|krealloc|kstrdup|kasprintf|kmalloc|mempool|dma_alloc)/;
const FRAME_SYMBOL = /(\]\s+|^\s+|kmemleak:\s+)([A-Za-z_][A-Za-z0-9_]*)((?:\.[a-z]+\.\d+|\.cold)*\+0x[0-9a-f]+\/0x[0-9a-f]+)/gm;

/** The record with a unique address and its non-allocator frames renamed to stack variant k. */
function variant(record: string, k: number, serial: number): string {
  const r = record.replace(/(unreferenced object (?:\((?:percpu|phys)\) )?0x)([0-9a-f]+)/, (_m, head: string, addr: string) => {
    const width = addr.length;
    const uniq = (BigInt(`0x${addr}`) ^ BigInt(serial * 64)).toString(16).padStart(width, '0').slice(-width);
    return head + uniq;
  });
  const bt = r.search(/backtrace/);
  if (bt < 0) return r;
  return r.slice(0, bt) + r.slice(bt).replace(FRAME_SYMBOL, (m, pre: string, sym: string, suf: string) => (ALLOCATOR.test(sym) ? m : `${pre}${sym}_v${k}${suf}`));
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

interface Corpus {
  kind: 'store' | 'file';
  /** What `kml report` is given. */
  target: string;
  /** The kmemleak files (what grep reads). */
  files: string[];
  bytes: number;
  records: number;
  eras: number;
  stacks: number;
  description: string;
}

class RecordMaker {
  readonly eras = loadEras();
  private readonly rnd = mulberry(20251127);
  private serial = 0;
  readonly used = new Set<string>();
  records = 0;
  constructor(private readonly variants: number) {}

  /** One record of `era`: a growing stack (every snapshot) 70% of the time, else a long-tail one. */
  make(era: Era): string {
    const growing = Math.max(1, Math.floor(this.variants / 5));
    const ti = Math.floor(this.rnd() * era.records.length);
    const k = this.rnd() < 0.7 ? Math.floor(this.rnd() * growing) : growing + Math.floor(this.rnd() * (this.variants - growing));
    this.used.add(`${era.name}/${ti}/${k}`);
    this.records++;
    return variant(era.records[ti], k, ++this.serial) + '\n';
  }

  random(): number {
    return this.rnd();
  }
}

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

function buildStore(dir: string, sizeMb: number, snapshots: number, variants: number): Corpus {
  const maker = new RecordMaker(variants);
  const serial = 'bench-device-01';
  const runId = '20251127T000000Z-bench';
  const bootId = '6d0c2a47-1b9e-4f3a-9c55-0e8f2b7a4d10';
  const runDir = path.join(dir, serial, runId);
  const bootDir = path.join(runDir, `boot-${bootId}`);
  fs.mkdirSync(bootDir, { recursive: true });
  const procDir = path.join(ROOT, 'test', 'fixtures', 'shared', 'proc');
  const mem: Record<string, string> = {
    meminfo: 'proc-meminfo.txt', vmstat: 'proc-vmstat-head.txt', buddyinfo: 'proc-buddyinfo.txt',
    zoneinfo: 'proc-zoneinfo-head.txt', slabinfo: 'proc-slabinfo-head.txt',
  };
  const memTexts = Object.fromEntries(Object.entries(mem).filter(([, f]) => fs.existsSync(path.join(procDir, f))).map(([k, f]) => [k, fs.readFileSync(path.join(procDir, f), 'utf8')]));
  const perFile = Math.ceil((sizeMb * 1024 * 1024) / snapshots);
  const t0 = 1_764_201_600;
  const manifest: string[] = [];
  const files: string[] = [];
  let bytes = 0;
  for (let n = 0; n < snapshots; n++) {
    const seq = n + 1;
    const era = maker.eras[n % maker.eras.length];
    const parts: string[] = [];
    let size = 0;
    while (size < perFile) {
      const rec = maker.make(era);
      parts.push(rec);
      size += rec.length;
    }
    let text = parts.join('');
    if (era.crlf) text = text.replace(/\n/g, '\r\n');
    const buf = Buffer.from(text);
    const wallTime = t0 + n * 600;
    const uptimeS = 900 + n * 600;
    const entryFiles: Array<{ name: string; path: string; bytes: number; sha256: string }> = [];
    const put = (name: string, rel: string, content: Buffer | string): void => {
      fs.mkdirSync(path.dirname(path.join(runDir, rel)), { recursive: true });
      fs.writeFileSync(path.join(runDir, rel), content);
      entryFiles.push({ name, path: rel, bytes: Buffer.byteLength(content), sha256: sha256(content) });
    };
    const kfile = `boot-${bootId}/kmemleak_log_${seq}.txt`;
    put('kmemleak.txt', kfile, buf);
    put('meta.txt', `boot-${bootId}/meta_${seq}.json`, JSON.stringify({ schemaVersion: 1, seq, bootId, uptimeS, wallTime, protocol: 'scan,sleep5,scan,cat,clear', leakCount: parts.length }) + '\n');
    for (const [name, t] of Object.entries(memTexts)) put(`${name}.txt`, `boot-${bootId}/mem_${seq}/${name}.txt`, t);
    const digest = sha256(entryFiles.map((f) => `${f.name}\0${f.sha256}\n`).sort().join(''));
    manifest.push(JSON.stringify({ schemaVersion: 1, serial, bootId, seq, wallTime, uptimeS, files: entryFiles, pulledAt: new Date((wallTime + 20) * 1000).toISOString(), digest, runId, leakCount: parts.length }));
    files.push(path.join(runDir, kfile));
    bytes += buf.length;
  }
  fs.writeFileSync(path.join(runDir, 'manifest.jsonl'), manifest.join('\n') + '\n');
  fs.writeFileSync(path.join(runDir, 'run.json'), JSON.stringify({
    schemaVersion: 1, runId, serial, kmlVersion: '0.1.0', started: new Date((t0 - 60) * 1000).toISOString(), intervalS: 600,
    scanProtocol: 'scan,sleep5,scan,cat,clear', device: { props: { 'ro.product.model': 'bench' }, kernel: { release: '6.1.0-bench', hz: 250 } },
    boots: [{ bootId, firstSeen: new Date(t0 * 1000).toISOString() }],
  }, null, 2) + '\n');
  const c: Corpus = { kind: 'store', target: runDir, files, bytes, records: maker.records, eras: maker.eras.length, stacks: maker.used.size, description: '' };
  writeInfo(dir, c);
  return c;
}

function buildFile(dir: string, sizeMb: number, variants: number): Corpus {
  const maker = new RecordMaker(variants);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'kmemleak_big.txt');
  const fd = fs.openSync(file, 'w');
  const want = sizeMb * 1024 * 1024;
  let bytes = 0;
  try {
    while (bytes < want) {
      const parts: string[] = [];
      for (let i = 0; i < 2000; i++) {
        const era = maker.eras[Math.floor(maker.random() * maker.eras.length)];
        const rec = maker.make(era);
        parts.push(era.crlf ? rec.replace(/\n/g, '\r\n') : rec);
      }
      const buf = Buffer.from(parts.join(''));
      fs.writeSync(fd, buf);
      bytes += buf.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  const c: Corpus = { kind: 'file', target: file, files: [file], bytes, records: maker.records, eras: maker.eras.length, stacks: maker.used.size, description: '' };
  writeInfo(dir, c);
  return c;
}

const INFO = 'bench-corpus.json';

function writeInfo(dir: string, c: Corpus): void {
  fs.writeFileSync(path.join(dir, INFO), JSON.stringify({ ...c, target: path.relative(dir, c.target), files: c.files.map((f) => path.relative(dir, f)) }));
}

function readInfo(dir: string): Corpus | null {
  try {
    const c = JSON.parse(fs.readFileSync(path.join(dir, INFO), 'utf8')) as Corpus;
    return { ...c, target: path.join(dir, c.target), files: c.files.map((f) => path.join(dir, f)) };
  } catch {
    return null;
  }
}

function describe(c: Corpus): string {
  const mb = c.bytes / 1048576;
  return c.kind === 'store'
    ? `kml store run, ${c.files.length} snapshots (one era each, ${c.eras} eras in turn), ${mb.toFixed(1)} MB, ${c.records} records, ${c.stacks} distinct stacks, sha256 manifest, meta + 5 /proc samples per snapshot`
    : `one file, ${mb.toFixed(1)} MB, ${c.records} records from ${c.eras} eras interleaved, ${c.stacks} distinct stacks`;
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface Run { wallS: number; cpuS: number; maxRssMb: number; stdout: string; status: number | null; stderr: string }

const HAVE_TIME = fs.existsSync('/usr/bin/time');

/** Run a command, measuring wall time, CPU time and the child's peak RSS (GNU time, else a node exit hook). */
function measure(cmd: string, args: string[], node: boolean, env: NodeJS.ProcessEnv = process.env): Run {
  const rssFile = path.join(os.tmpdir(), `kml-bench-rss-${process.pid}-${Date.now()}`);
  let argv: string[];
  if (HAVE_TIME) {
    argv = ['/usr/bin/time', '-f', '%M %U %S', '-o', rssFile, cmd, ...args];
  } else if (node) {
    // maxRSS is in kB, like GNU time's %M. `cmd` is a node script run through its shebang.
    const hook = `import{writeFileSync}from'node:fs';process.on('exit',()=>{const u=process.resourceUsage();writeFileSync(${JSON.stringify(rssFile)},u.maxRSS+' '+u.userCPUTime/1e6+' '+u.systemCPUTime/1e6)})`;
    env = { ...env, NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --import data:text/javascript,${encodeURIComponent(hook)}`.trim() };
    argv = [cmd, ...args];
  } else {
    argv = [cmd, ...args];
  }
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024, env });
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  let maxRssMb = NaN;
  let cpuS = NaN;
  try {
    const [rss, user, sys] = fs.readFileSync(rssFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    maxRssMb = rss / 1024;
    cpuS = user + sys;
  } catch { /* no measurement */ }
  fs.rmSync(rssFile, { force: true });
  return { wallS, cpuS, maxRssMb, stdout: r.stdout ?? '', status: r.status, stderr: r.stderr ?? '' };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

interface Result {
  corpus: string;
  description: string;
  MB: number;
  grep: { seconds: number; MBps: number; count: number };
  kml: { seconds: number; cpuSeconds: number; MBps: number; records: number; groups: number; unparsedLines: number; maxRssMB: number };
  /** Medians of kml's own phase times (`--timings`), seconds. */
  phases: { start: number; parseAndGroup: number; memoryAndVerdict: number; renderAndWrite: number };
  /** parse + group throughput (the issue's target) over grep's. */
  parseGroupRatio: number;
  /** Whole-command throughput over grep's. */
  ratio: number;
  pass: { ratio: boolean; rss: boolean };
}

function bench(c: Corpus, runs: number, nodeOptions: string | undefined, log: (s: string) => void): Result {
  const mb = c.bytes / 1048576;
  // Warm the page cache so both tools read from memory.
  spawnSync('cat', c.files, { stdio: 'ignore' });
  // grep and kml take turns (grep first, then kml, runs times): on a shared machine whose speed
  // drifts, both are then measured under the same conditions.
  const grepRuns: Run[] = [];
  const out = path.join(os.tmpdir(), `kml-bench-report-${process.pid}.json`);
  const env = nodeOptions !== undefined ? { ...process.env, NODE_OPTIONS: nodeOptions } : process.env;
  const kmlRuns: Run[] = [];
  for (let i = 0; i < Math.max(runs, 3); i++) {
    grepRuns.push(measure('grep', ['-c', 'unreferenced object', ...c.files], false));
    if (i >= runs) continue;
    // bin/kml.js run as a user runs `kml`: through its shebang (which sets V8 flags).
    const r = measure(KML_BIN, ['report', c.target, '--format', 'json', '--out', out, '--timings'], true, env);
    if (r.status !== 0) throw new Error(`kml report exited ${r.status}: ${r.stderr.slice(-2000)}`);
    kmlRuns.push(r);
  }
  const grepCount = grepRuns[0].stdout.split('\n').filter(Boolean).reduce((s, l) => s + Number(l.split(':').pop()), 0);
  const grepS = median(grepRuns.map((r) => r.wallS));
  const timings = kmlRuns.map((r) => {
    const line = r.stderr.split('\n').reverse().find((l) => l.startsWith('{"timings"'));
    if (!line) throw new Error(`kml report --timings printed no timings: ${r.stderr.slice(-500)}`);
    return (JSON.parse(line) as { timings: Record<string, number> }).timings;
  });
  const phase = (f: (t: Record<string, number>) => number): number => +median(timings.map(f)).toFixed(3);
  const phases = {
    start: phase((t) => t.start), parseAndGroup: phase((t) => t.parseAndGroup),
    memoryAndVerdict: phase((t) => t.memoryAndVerdict), renderAndWrite: phase((t) => t.renderAndWrite ?? t.render + t.write), // one phase since the JSON is written as it is made
  };
  const analysis = JSON.parse(fs.readFileSync(out, 'utf8')) as { parseStats: { records: number; unparsedLines: number }; totals: { groups: number; suppressedGroups: number } };
  fs.rmSync(out, { force: true });
  const kmlS = median(kmlRuns.map((r) => r.wallS));
  const cpuS = median(kmlRuns.map((r) => r.cpuS));
  const rss = Math.max(...kmlRuns.map((r) => r.maxRssMb));
  const grepMBs = mb / grepS;
  const kmlMBs = mb / kmlS;
  const ratio = kmlMBs / grepMBs;
  const parseGroupMBs = mb / phases.parseAndGroup;
  const parseGroupRatio = parseGroupMBs / grepMBs;
  const res: Result = {
    corpus: c.kind, description: describe(c), MB: +mb.toFixed(1),
    grep: { seconds: +grepS.toFixed(3), MBps: +grepMBs.toFixed(1), count: grepCount },
    kml: {
      seconds: +kmlS.toFixed(3), cpuSeconds: +cpuS.toFixed(2), MBps: +kmlMBs.toFixed(1), records: analysis.parseStats.records,
      groups: analysis.totals.groups + analysis.totals.suppressedGroups, unparsedLines: analysis.parseStats.unparsedLines, maxRssMB: +rss.toFixed(1),
    },
    phases,
    parseGroupRatio: +parseGroupRatio.toFixed(3),
    ratio: +ratio.toFixed(3),
    pass: { ratio: parseGroupRatio >= TARGET_RATIO, rss: rss <= TARGET_RSS_MB },
  };
  log(`\n[${c.kind}] ${res.description}`);
  log(`  grep -c 'unreferenced object': ${grepS.toFixed(3)} s, ${grepMBs.toFixed(0)} MB/s, ${grepCount} records (median of ${grepRuns.length}, warm cache, in turns with kml)`);
  const fastest = Math.min(...kmlRuns.map((r) => r.wallS));
  log(`  kml report --format json:      ${kmlS.toFixed(3)} s (CPU ${cpuS.toFixed(2)} s), ${kmlMBs.toFixed(1)} MB/s, ${res.kml.records} records, ${res.kml.groups} groups, peak RSS ${rss.toFixed(0)} MB${runs > 1 ? ` (times: median of ${runs}, fastest ${fastest.toFixed(3)} s; RSS: highest)` : ''}`);
  log(`  of which (kml --timings, medians): start ${phases.start} s, parse + group ${phases.parseAndGroup} s (${parseGroupMBs.toFixed(1)} MB/s), memory samples + verdict ${phases.memoryAndVerdict} s, render + write ${phases.renderAndWrite} s`);
  log(`  whole command kml/grep: ${ratio.toFixed(3)} = 1/${(1 / ratio).toFixed(1)}`);
  log(`  parse + group kml/grep: ${parseGroupRatio.toFixed(3)} = 1/${(1 / parseGroupRatio).toFixed(1)} (target ≥ ${TARGET_RATIO}): ${res.pass.ratio ? 'PASS' : 'FAIL'}`);
  log(`  (kml per CPU second: ${(mb / cpuS).toFixed(1)} MB/s; load average now ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs: wall time includes waiting for a CPU)`);
  log(`  peak RSS: ${rss.toFixed(0)} MB (target ≤ ${TARGET_RSS_MB} MB): ${res.pass.rss ? 'PASS' : 'FAIL'}`);
  if (res.kml.records !== grepCount) log(`  note: kml parsed ${res.kml.records} records, grep counted ${grepCount} lines`);
  return res;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '200' }, snapshots: { type: 'string', default: '144' }, variants: { type: 'string', default: '100' },
      only: { type: 'string' }, dir: { type: 'string' }, keep: { type: 'boolean', default: false }, runs: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false }, 'node-options': { type: 'string' }, help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) { console.log(USAGE); return; }
  const sizeMb = Number(values.size);
  const snapshots = Number(values.snapshots);
  const variants = Number(values.variants);
  const runs = Math.max(1, Number(values.runs));
  if (!(sizeMb > 0) || !(snapshots >= 1) || !(variants >= 5)) throw new Error('--size, --snapshots and --variants must be positive (--variants ≥ 5)');
  const kinds = (values.only ? [values.only] : ['store', 'file']) as Array<'store' | 'file'>;
  if (kinds.some((k) => k !== 'store' && k !== 'file')) throw new Error('--only takes store or file');
  const log = (s: string): void => { if (!values.json) console.log(s); };

  const base = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kml-bench-report-'));
  const results: Result[] = [];
  try {
    for (const kind of kinds) {
      const dir = path.join(base, kind);
      let c = readInfo(dir);
      const reused = c !== null && c.files.every((f) => fs.existsSync(f));
      if (!reused) {
        fs.rmSync(dir, { recursive: true, force: true });
        const t0 = Date.now();
        c = kind === 'store' ? buildStore(dir, sizeMb, snapshots, variants) : buildFile(dir, sizeMb, variants);
        log(`built ${kind} corpus in ${dir} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } else {
        log(`reusing ${kind} corpus in ${dir}`);
      }
      results.push(bench(c!, runs, values['node-options'], log));
    }
  } finally {
    if (!values.keep && !values.dir) fs.rmSync(base, { recursive: true, force: true });
    else log(`\ncorpora kept in ${base}`);
  }
  const pass = results.every((r) => r.pass.ratio && r.pass.rss);
  const machine = `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}, node ${process.version}`;
  if (values.json) console.log(JSON.stringify({ machine, targets: { ratio: TARGET_RATIO, maxRssMB: TARGET_RSS_MB }, results, pass }));
  else log(`\n${machine}\noverall: ${pass ? 'PASS' : 'FAIL'} (every corpus: ratio ≥ ${TARGET_RATIO} and peak RSS ≤ ${TARGET_RSS_MB} MB)`);
  if (!pass) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(`bench report: ${(e as Error)?.stack ?? String(e)}`);
  process.exit(1);
});
