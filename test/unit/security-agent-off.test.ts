// Security: nothing kml writes to kmemleak starts with "off" (issue 5, item 5). kmemleak_write()
// compares prefixes (strncmp(buf, "off", 3)): any write starting with "off" disables kmemleak until
// the next reboot, losing the whole overnight run.
//   1. Dynamic: the real agent runs under mksh, busybox sh and dash with its command file being a
//      FIFO whose reader records every byte written, through both protocols, the options and env
//      settings, a stop mid-cycle, refused writes (EISDIR) and a missing kmemleak file; every
//      recorded command is one kml uses (scan=off, scan, clear) and none starts with "off".
//   2. The agent's own guard: kml_write refuses anything starting with "off" (and writes nothing).
//   3. Static: in agent/kml-agent.sh the only write to a kmemleak path is kml_write's, every
//      kml_write call passes a fixed command that does not start with "off"; in host/ and scripts/,
//      every `echo/printf … > …kmemleak` writes an allowed command, and doctor's probe is dump=0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AGENT_SCRIPT, REPO_ROOT, SHARED_FIXTURES } from '../helpers/paths.js';
import { KMEMLEAK_PROBE_COMMAND } from '../../host/device/doctor-checks.js';

const REPORT = path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-rmmod.txt');
const SHELLS = [
  { name: 'mksh', argv: ['/usr/bin/mksh'] },
  { name: 'busybox sh', argv: ['/usr/bin/busybox', 'sh'] },
  { name: 'dash', argv: ['/bin/dash'] },
].filter((s) => existsSync(s.argv[0]));
/** Commands kml sends to kmemleak (agent) — anything else recorded is a finding. */
const AGENT_COMMANDS = new Set(['scan=off', 'scan', 'clear']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A FIFO with a reader that keeps every byte written to it (O_RDWR: no EOF between writers). */
class Recorder {
  private child?: ChildProcess;
  private data = '';
  constructor(readonly fifo: string) {}
  start(): void {
    execFileSync('mkfifo', [this.fifo]);
    this.child = spawn('/bin/sh', ['-c', 'exec 3<>"$1"; exec cat <&3', 'rec', this.fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
    RECORDERS.add(this);
    this.child.stdout!.on('data', (d: Buffer) => { this.data += d.toString('latin1'); });
  }
  async lines(): Promise<string[]> {
    await sleep(100);
    return this.data.split('\n').filter((l) => l !== '');
  }
  stop(): void {
    this.child?.kill('SIGKILL');
    RECORDERS.delete(this);
  }
}
/** Every recorder still running (a failed assertion must not leave a reader keeping the test alive). */
const RECORDERS = new Set<Recorder>();

function assertNoOff(lines: string[], what: string): void {
  for (const l of lines) {
    assert.ok(!l.startsWith('off'), `${what}: wrote ${JSON.stringify(l)} (starts with "off": disables kmemleak until reboot)`);
    assert.ok(AGENT_COMMANDS.has(l), `${what}: wrote an unexpected command ${JSON.stringify(l)}`);
  }
}

let root: string;
before(async () => { root = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-sec-off-')); });
after(async () => {
  for (const r of [...RECORDERS]) r.stop();
  await fs.rm(root, { recursive: true, force: true });
});

// the shells run side by side (the agent mostly sleeps: scan waits, intervals)
describe('the agent writes only scan=off, scan and clear', { concurrency: SHELLS.length }, () => {
for (const shell of SHELLS) {
  describe(`agent under ${shell.name}: every kmemleak write recorded`, { timeout: 300_000 }, () => {
    let n = 0;
    /** Run the agent to completion (or SIGTERM after `termAfterMs`) with a fresh dir + recorder. */
    async function run(args: string[], opts: { env?: NodeJS.ProcessEnv; termAfterMs?: number; kmemleak?: string; cmdFile?: string } = {}) {
      const dir = path.join(root, `${shell.name.replace(/\W/g, '')}-${n++}`);
      await fs.mkdir(dir, { recursive: true });
      const km = opts.kmemleak ?? path.join(dir, 'kmemleak');
      if (!opts.kmemleak) await fs.copyFile(REPORT, km);
      const rec = new Recorder(path.join(dir, 'kmemleak.cmd'));
      rec.start();
      const kmsg = path.join(dir, 'dmesg.txt');
      await fs.writeFile(kmsg, '[    1.000000] kmemleak: Kernel memory leak detector initialized\n');
      const child = spawn(shell.argv[0], [...shell.argv.slice(1), AGENT_SCRIPT, '--dir', path.join(dir, 'kml'), '--kmemleak', km,
        '--kmemleak-cmd', opts.cmdFile ?? rec.fifo, '--kmsg-source', kmsg, ...args], { env: { PATH: process.env.PATH, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
      const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      if (opts.termAfterMs !== undefined) setTimeout(() => child.kill('SIGTERM'), opts.termAfterMs);
      const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
      clearTimeout(killer);
      const lines = await rec.lines();
      rec.stop();
      return { code, stderr, lines, dir };
    }

    test('double protocol (default): scan=off once, then scan, wait, scan, read, clear', async () => {
      const r = await run(['--interval', '1', '--count', '1']);
      assert.equal(r.code, 0, r.stderr);
      assertNoOff(r.lines, 'double');
      assert.deepEqual(r.lines, ['scan=off', 'scan', 'scan', 'clear']);
    });

    test('seed protocol and --once; settings from the environment', async () => {
      const seed = await run(['--protocol', 'seed', '--interval', '1', '--count', '3']);
      assert.equal(seed.code, 0, seed.stderr);
      assertNoOff(seed.lines, 'seed');
      assert.deepEqual(seed.lines, ['clear', 'scan', 'clear', 'scan', 'clear', 'scan']);
      const once = await run(['--once', '--protocol=seed']);
      assert.equal(once.code, 0, once.stderr);
      assertNoOff(once.lines, 'once');
      const env = await run([], { env: { KML_PROTOCOL: 'seed', KML_INTERVAL: '1', KML_COUNT: '2', KML_SCAN_WAIT: '6' } });
      assert.equal(env.code, 0, env.stderr);
      assertNoOff(env.lines, 'env');
      assert.equal(env.lines.length, 4);
    });

    test('SIGTERM during the scan wait: the cycle finishes, still nothing but scan/clear', async () => {
      const r = await run(['--interval', '1', '--scan-wait', '5'], { termAfterMs: 1_500 });
      assert.equal(r.code, 0, r.stderr);
      assertNoOff(r.lines, 'sigterm');
      assert.ok(r.lines.includes('scan=off') && r.lines.filter((l) => l === 'scan').length >= 2, r.lines.join(','));
    });

    test('writes refused (the command file is a folder) and kmemleak missing: no retry turns into "off"', async () => {
      const dirCmd = path.join(root, `cmd-dir-${shell.name.replace(/\W/g, '')}`);
      await fs.mkdir(dirCmd, { recursive: true });
      const refused = await run(['--protocol', 'seed', '--interval', '1', '--count', '2'], { cmdFile: dirCmd });
      assert.equal(refused.code, 0, refused.stderr);
      assert.deepEqual(refused.lines, [], 'nothing reached the recorder');
      assert.deepEqual(readdirSync(dirCmd), [], 'nothing was created in place of kmemleak');
      const missing = await run(['--protocol', 'seed', '--interval', '1', '--count', '2'], { kmemleak: path.join(root, 'no-such-kmemleak') });
      assert.equal(missing.code, 0, missing.stderr);
      assertNoOff(missing.lines, 'missing');
    });

    test('the agent\'s own guard: kml_write refuses anything starting with "off" and writes nothing', async () => {
      const dir = path.join(root, `guard-${shell.name.replace(/\W/g, '')}`);
      await fs.mkdir(dir, { recursive: true });
      const rec = new Recorder(path.join(dir, 'cmd'));
      rec.start();
      const script = [
        `. ${JSON.stringify(AGENT_SCRIPT)}`,
        `kmemleak_cmd=${JSON.stringify(rec.fifo)}`,
        'clock_init',
        'for c in off offline "off " off=1 "off\nscan"; do if kml_write "$c"; then echo "WROTE $c"; else echo "REFUSED $kw_errno"; fi; done',
        'kml_write scan && echo "WROTE scan"',
      ].join('\n');
      const r = spawnSync(shell.argv[0], [...shell.argv.slice(1), '-c', script], { env: { PATH: process.env.PATH, KML_AGENT_LIB: '1' }, timeout: 30_000 });
      const out = r.stdout.toString();
      assert.equal((out.match(/^REFUSED EREFUSED$/gm) ?? []).length, 5, out + r.stderr.toString());
      assert.match(out, /^WROTE scan$/m);
      assert.deepEqual(await rec.lines(), ['scan']);
      rec.stop();
    });
  });
}
});

test('static: in the agent only kml_write writes to kmemleak, and only fixed commands that do not start with "off"', () => {
  const src = readFileSync(AGENT_SCRIPT, 'utf8');
  const code = src.split('\n').filter((l) => !/^\s*#/.test(l));
  // every redirection into a kmemleak variable
  const writes = code.map((l, i) => ({ l, i: i + 1 })).filter(({ l }) => /[^2&]>>?\s*"?\$\{?kmemleak(_cmd)?\b/.test(l));
  assert.equal(writes.length, 1, `one write site: ${writes.map((w) => `${w.i}: ${w.l.trim()}`).join(' | ')}`);
  assert.match(writes[0].l, /echo "\$1" >"\$kmemleak_cmd"/);
  // …inside kml_write
  const fnStart = code.findIndex((l) => /^kml_write\(\)/.test(l));
  const fnEnd = code.findIndex((l, i) => i > fnStart && /^}/.test(l));
  assert.ok(writes[0].i - 1 > fnStart && writes[0].i - 1 < fnEnd, 'the write is inside kml_write');
  // the guard precedes it
  const body = code.slice(fnStart, fnEnd).join('\n');
  assert.match(body, /case \$1 in\s+off\*\)[\s\S]*return 1/);
  assert.ok(body.indexOf('off*)') < body.indexOf('>"$kmemleak_cmd"'), 'guard before the write');
  // every call passes a literal command, none starting with off
  const calls = [...src.matchAll(/kml_write\s+([^\s;)]+)/g)].map((m) => m[1]).filter((a) => a !== 'CMD');
  assert.ok(calls.length >= 4, calls.join(','));
  for (const a of calls) {
    assert.match(a, /^[a-z=]+$/, `kml_write ${a}: not a fixed word`);
    assert.ok(AGENT_COMMANDS.has(a), `kml_write ${a}: not a command kml uses`);
  }
  // no other echo/printf of an off command anywhere in the script
  assert.doesNotMatch(code.join('\n'), /(echo|printf)\s+['"]?off/);
});

test('static: host and script code writes only allowed commands to kmemleak; doctor\'s probe is dump=0', () => {
  assert.equal(KMEMLEAK_PROBE_COMMAND, 'dump=0');
  const files: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(REPO_ROOT, rel), { withFileTypes: true })) {
      const p = path.posix.join(rel, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|sh)$|^[a-z-]+$/.test(e.name)) files.push(p);
    }
  };
  for (const d of ['host', 'scripts']) walk(d);
  const allowed = new Set(['${KMEMLEAK_PROBE_COMMAND}', 'dump=0', 'scan', 'clear', 'scan=off', '"$1"']);
  const found: string[] = [];
  for (const f of files) {
    const text = readFileSync(path.join(REPO_ROOT, f), 'utf8');
    for (const m of text.matchAll(/\b(?:echo|printf)\s+(['"]?)([^\s'"]+)\1\s*>>?\s*[^;|&\n]*kmemleak/gi)) {
      const word = m[2];
      found.push(`${f}: ${word}`);
      assert.ok(!word.replace(/^['"]/, '').startsWith('off'), `${f}: writes ${word} to kmemleak`);
      assert.ok(allowed.has(word), `${f}: writes ${word} to kmemleak (not a command kml uses)`);
    }
    // no other way to write it: no push, no fs write to a kmemleak path
    text.split('\n').forEach((l, i) => {
      const bad = /(adb\.push\(|writeFile(Sync)?\(|appendFile(Sync)?\()[^)\n]*(debug\/kmemleak\b|KMEMLEAK_PATH)/.test(l);
      assert.ok(!bad, `${f}:${i + 1}: writes a kmemleak path another way: ${l.trim()}`);
    });
  }
  assert.ok(found.some((x) => x.startsWith('host/device/doctor.ts: ${KMEMLEAK_PROBE_COMMAND}')), found.join('\n'));
});
