// The device agent (agent/kml-agent.sh) run on the host under mksh and busybox sh (the shells of
// Android and of the lab guest), plus dash (/bin/sh here, the host adbd's shell). --kmemleak points
// at a plain file holding real captured kmemleak text; commands go to a FIFO read by `cat`, so every
// write the agent makes is recorded. This tests the script's logic and shell compatibility, not
// kmemleak itself (the lab integration test does that).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AGENT_SCRIPT, SHARED_FIXTURES } from '../helpers/paths.js';
import { toyboxBin } from '../helpers/toybox.js';
import { parseHeartbeat, parseMeta, parseSkipped } from '../../host/device/agent-files.js';

const REPORT = path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-rmmod.txt');
const DMESG = path.join(SHARED_FIXTURES, 'kmemleak', 'dmesg-grep-kmemleak-enabled-run.txt');
const KMSG_RE = /kmemleak|out of memory|oom-kill|oom_reaper|killed process|lowmemorykiller|lmkd/i;

/** A shell, and the PATH its commands come from (default: the host's; toybox's: see helpers/toybox.ts). */
interface Shell { name: string; argv: string[]; path?: string }

const TOYBOX_BIN = toyboxBin() ?? undefined;

const SHELLS: Shell[] = [
  { name: 'mksh', argv: ['/usr/bin/mksh'] },
  { name: 'mksh + toybox (Android)', argv: ['/usr/bin/mksh'], path: TOYBOX_BIN },
  { name: 'busybox sh', argv: ['/usr/bin/busybox', 'sh'] },
  { name: 'dash', argv: ['/bin/dash'] },
].filter((s) => existsSync(s.argv[0]) && (!('path' in s) || s.path !== undefined));

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bootId = () => execFileSync('cat', ['/proc/sys/kernel/random/boot_id']).toString().trim();

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

/** A scratch agent setup: dir, kmemleak file (real text), command FIFO with a recorder. */
class Rig {
  readonly root: string;
  readonly dir: string;
  readonly km: string;
  readonly fifo: string;
  readonly kmsg: string;
  private recorder?: ChildProcess;
  private recorded = '';

  private constructor(root: string) {
    this.root = root;
    this.dir = path.join(root, 'kml');
    this.km = path.join(root, 'kmemleak');
    this.fifo = path.join(root, 'kmemleak.cmd');
    this.kmsg = path.join(root, 'dmesg.txt');
  }

  static async create(): Promise<Rig> {
    const rig = new Rig(await mkdtemp(path.join(os.tmpdir(), 'kml-agent-sh-')));
    await copyFile(REPORT, rig.km);
    await copyFile(DMESG, rig.kmsg);
    execFileSync('mkfifo', [rig.fifo]);
    // O_RDWR on the FIFO: the reader never sees EOF between the agent's open/write/close commands.
    rig.recorder = spawn('/bin/sh', ['-c', 'exec 3<>"$1"; exec cat <&3', 'rec', rig.fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
    rig.recorder.stdout!.on('data', (d: Buffer) => { rig.recorded += d.toString('utf8'); });
    return rig;
  }

  /** Every command the agent wrote, one per line, in order. */
  async commands(): Promise<string[]> {
    await sleep(50);
    return this.recorded.split('\n').filter(Boolean);
  }

  baseArgs(extra: string[] = []): string[] {
    return ['--dir', this.dir, '--kmemleak', this.km, '--kmemleak-cmd', this.fifo, '--kmsg-source', this.kmsg, ...extra];
  }

  spawnAgent(shell: Shell, args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<Run> } {
    const t0 = Date.now();
    const child = spawn(shell.argv[0], [...shell.argv.slice(1), AGENT_SCRIPT, ...args], {
      env: { PATH: shell.path ?? process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString('utf8'); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const done = new Promise<Run>((resolve) => {
      child.once('close', (code, signal) => {
        clearTimeout(killer);
        resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
      });
    });
    return { child, done };
  }

  run(shell: Shell, args: string[], env?: NodeJS.ProcessEnv): Promise<Run> {
    return this.spawnAgent(shell, args, env).done;
  }

  async snapshots(): Promise<string[]> {
    const dir = path.join(this.dir, 'snapshots');
    if (!existsSync(dir)) return [];
    return (await readdir(dir)).sort();
  }

  async heartbeat() {
    return parseHeartbeat(await readFile(path.join(this.dir, 'heartbeat'), 'utf8'));
  }

  async waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }

  async dispose(): Promise<void> {
    this.recorder?.kill('SIGKILL');
    await rm(this.root, { recursive: true, force: true });
  }
}

/** Check a published snapshot dir against its meta.txt: every file's size and sha256. */
async function verifySnapshot(dir: string, n: number): Promise<ReturnType<typeof parseMeta>> {
  const snap = path.join(dir, 'snapshots', String(n));
  const meta = parseMeta(await readFile(path.join(snap, 'meta.txt'), 'utf8'));
  assert.equal(meta.seq, n);
  assert.equal(meta.hash, 'sha256');
  const names = (await readdir(snap)).filter((f) => f !== 'meta.txt').sort();
  assert.deepEqual(meta.files.map((f) => f.name).sort(), names, 'meta lists exactly the files in the dir');
  for (const f of meta.files) {
    const data = await readFile(path.join(snap, f.name));
    assert.equal(f.bytes, data.length, `size of ${f.name}`);
    assert.equal(f.sha256, sha256(data), `sha256 of ${f.name}`);
  }
  return meta;
}

function assertNoOff(cmds: string[]): void {
  for (const c of cmds) assert.ok(!c.startsWith('off'), `a command starting with "off" was written: ${c}`);
}

test('agent script is shellcheck-clean as POSIX sh', { timeout: 60_000 }, () => {
  const r = spawnSync('shellcheck', ['-s', 'sh', AGENT_SCRIPT], { encoding: 'utf8' });
  assert.equal(r.error, undefined, 'shellcheck is installed');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

for (const shell of SHELLS) {
  describe(`kml-agent.sh under ${shell.name}`, { concurrency: true, timeout: 300_000 }, () => {
    const rigs: Rig[] = [];
    const rig = async () => {
      const r = await Rig.create();
      rigs.push(r);
      return r;
    };
    after(async () => {
      await Promise.all(rigs.map((r) => r.dispose()));
    });

    test('seed protocol: numbered snapshots with real report, meta hashes, heartbeat, commands', async () => {
      const r = await rig();
      const res = await r.run(shell, r.baseArgs(['--protocol', 'seed', '--interval', '1', '--count', '3']));
      assert.equal(res.code, 0, res.stdout + res.stderr);
      assert.deepEqual(await r.snapshots(), ['1', '2', '3']);
      const report = await readFile(REPORT);
      const leaks = report.toString().split('\n').filter((l) => l.startsWith('unreferenced object')).length;
      for (const n of [1, 2, 3]) {
        const meta = await verifySnapshot(r.dir, n);
        assert.deepEqual(await readFile(path.join(r.dir, 'snapshots', String(n), 'kmemleak.txt')), report);
        assert.equal(meta.bootId, bootId());
        assert.equal(meta.kmemleakBytes, report.length);
        assert.equal(meta.leakCount, leaks);
        assert.equal(meta.protocol, 'seed');
        assert.deepEqual(meta.errors, []);
        assert.ok(meta.wallTime! > 1_600_000_000 && meta.wallTime! <= Date.now() / 1000 + 1);
        assert.ok(meta.uptimeS! > 0);
        assert.ok(meta.files.some((f) => f.name === 'meminfo.txt'), 'meminfo sampled');
        assert.ok(meta.clockResMs === 1 || meta.clockResMs === 10);
      }
      // The scan ending cycle N is reported as the scan before snapshot N+1's read.
      assert.equal(parseMeta(await readFile(path.join(r.dir, 'snapshots', '1', 'meta.txt'), 'utf8')).scan1Ms, undefined);
      assert.ok((await verifySnapshot(r.dir, 2)).scan1Ms! >= 0);
      // kmsg: the first snapshot has every matching line, later ones only new lines (none here).
      const expected = (await readFile(DMESG, 'utf8')).split('\n').filter((l) => KMSG_RE.test(l));
      assert.deepEqual((await readFile(path.join(r.dir, 'snapshots', '1', 'kmsg.txt'), 'utf8')).split('\n').filter(Boolean), expected);
      assert.equal((await readFile(path.join(r.dir, 'snapshots', '2', 'kmsg.txt'), 'utf8')), '');
      assert.equal((await readFile(path.join(r.dir, 'seq'), 'utf8')).trim(), '3');
      const hb = await r.heartbeat();
      assert.equal(hb.state, 'stopped');
      assert.equal(hb.seq, 3);
      assert.equal(hb.cycles, 3);
      assert.equal(hb.kmemleak, 'ok');
      assert.equal(hb.bootId, bootId());
      assert.ok(!existsSync(path.join(r.dir, 'agent.pid')), 'pidfile removed on clean exit');
      const cmds = await r.commands();
      assert.deepEqual(cmds, ['clear', 'scan', 'clear', 'scan', 'clear', 'scan']);
      assertNoOff(cmds);
      // Nothing the agent creates is group/world-writable.
      for (const f of ['heartbeat', 'seq', 'snapshots', 'snapshots/1', 'snapshots/1/meta.txt', 'snapshots/1/kmemleak.txt']) {
        assert.equal((await stat(path.join(r.dir, f))).mode & 0o022, 0, `${f} is not group/world-writable`);
      }
    });

    test('double protocol: scan=off once, scan/wait/scan/read/clear, no partial ever visible as a number', async () => {
      const r = await rig();
      const { done } = r.spawnAgent(shell, r.baseArgs(['--interval', '1', '--count', '2']));
      let finished = false;
      void done.then(() => { finished = true; });
      const seenPartial = new Set<string>();
      const checked = new Set<string>();
      // Watch the snapshots dir while the agent runs: a numbered dir must be complete the moment it appears.
      while (!finished) {
        for (const name of await r.snapshots()) {
          if (name.startsWith('.partial-')) { seenPartial.add(name); continue; }
          assert.match(name, /^[1-9][0-9]*$/);
          if (!checked.has(name)) {
            await verifySnapshot(r.dir, Number(name));
            checked.add(name);
          }
        }
        await sleep(15);
      }
      const res = await done;
      assert.equal(res.code, 0, res.stdout + res.stderr);
      assert.ok(seenPartial.has('.partial-1'), 'the partial dir existed while the cycle ran');
      assert.deepEqual(await r.snapshots(), ['1', '2']);
      for (const n of [1, 2]) {
        const meta = await verifySnapshot(r.dir, n);
        assert.equal(meta.protocol, 'double');
        assert.equal(meta.kmemleakState, 'ok');
        assert.ok(meta.scan1Ms! >= 0 && meta.scan2Ms! >= 0, 'both scan durations recorded');
      }
      const cmds = await r.commands();
      assert.deepEqual(cmds, ['scan=off', 'scan', 'scan', 'clear', 'scan', 'scan', 'clear']);
      assertNoOff(cmds);
      // Two cycles, each waiting >= 5 s between its scans.
      assert.ok(res.ms >= 10_000, `two double-scan cycles took ${res.ms} ms`);
    });

    test('agent.log past its cap becomes agent.log.1 and the agent goes on in a fresh agent.log (only when it is the output)', async () => {
      const r = await rig();
      const log = path.join(r.dir, 'agent.log');
      await mkdir(r.dir, { recursive: true });
      await writeFile(log, 'old line\n'.repeat(20_000)); // 180 kB of earlier lines
      // as kml's launch line runs it: output appended to agent.log; a 64 kB cap for the test
      const child = spawn('/bin/sh', ['-c', 'exec "$@" >>"$KML_TEST_LOG" 2>&1', 'sh', ...shell.argv, AGENT_SCRIPT, ...r.baseArgs(['--protocol', 'seed', '--interval', '1', '--count', '2'])], {
        env: { PATH: process.env.PATH, KML_TEST_LOG: log, KML_AGENT_LOG_MAX_KB: '64' }, stdio: 'ignore',
      });
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      assert.equal(code, 0);
      const old = await readFile(`${log}.1`, 'utf8');
      assert.ok(old.startsWith('old line\n') && /started: version=/.test(old), 'the earlier lines and the start line moved to agent.log.1');
      const fresh = await readFile(log, 'utf8');
      assert.match(fresh, /agent\.log was \d+ kB: the older lines are in agent\.log\.1/);
      assert.match(fresh, /stopped after 2 cycle\(s\)/, 'the agent kept logging into the new file');
      assert.ok(!fresh.includes('old line'));
      // run with its output elsewhere (a terminal, a test pipe): agent.log is not touched
      await writeFile(log, 'x\n'.repeat(100_000));
      const res = await r.run(shell, r.baseArgs(['--protocol', 'seed', '--once']), { KML_AGENT_LOG_MAX_KB: '64' });
      assert.equal(res.code, 0, res.stderr);
      assert.equal((await readFile(log, 'utf8')).length, 200_000);
    });

    test('sequence survives restarts; stale partials removed; kmsg marker only passes new lines', async () => {
      const r = await rig();
      const args = r.baseArgs(['--protocol', 'seed', '--interval', '1']);
      assert.equal((await r.run(shell, [...args, '--count', '2'])).code, 0);
      // A crash left a partial behind: never published, so removed at start.
      await mkdir(path.join(r.dir, 'snapshots', '.partial-3'));
      await writeFile(path.join(r.dir, 'snapshots', '.partial-3', 'kmemleak.txt'), 'half');
      const oomLines = '[ 9998.000001] kworker/0:1: page allocation failure: order:4, mode:0x40cc0(GFP_KERNEL|__GFP_COMP), nodemask=(null)\n'
        + '[ 9998.000002] Unreclaimable slab info:\n'
        + '[ 9998.000003] Name                      Used          Total\n'
        + '[ 9998.000004] kml_leaky_a             40960KB      40964KB\n'
        + '[ 9998.000005] kmalloc-64                 1234KB       1300KB\n'
        + '[ 9999.000001] Out of memory: Killed process 4242 (leaker) total-vm:1kB\n'
        + "[ 9999.100000] lowmemorykiller: Killing 'com.example' (4243), adj 900,\n"
        + "[ 9999.100000]    to free 5000kB on behalf of 'kswapd0' (42) because\n"
        + '[ 9999.100000]    cache 12345kB is below limit 23456kB for oom_score_adj 900\n'
        + '[ 9999.100000]    Free memory is 1234kB above reserved\n';
      await appendFile(r.kmsg, oomLines.replace('[ 9999.000001]', '[ 9998.500000] unrelated 12KB\n[ 9999.000001]') + '[ 9999.000002] unrelated line\n');
      const second = await r.run(shell, [...args, '--once']);
      assert.equal(second.code, 0, second.stdout + second.stderr);
      assert.deepEqual(await r.snapshots(), ['1', '2', '3']);
      assert.equal((await verifySnapshot(r.dir, 3)).seq, 3);
      // the allocation failure, the slab table's title and rows, the kill; not the header row or unrelated lines
      assert.equal(await readFile(path.join(r.dir, 'snapshots', '3', 'kmsg.txt'), 'utf8'), oomLines.replace(/^.*Name {2,}Used.*\n/m, ''));
      // seq lost: the agent still never goes below a published snapshot.
      await rm(path.join(r.dir, 'seq'));
      assert.equal((await r.run(shell, [...args, '--once'])).code, 0);
      assert.deepEqual(await r.snapshots(), ['1', '2', '3', '4']);
      // A corrupt seq file is refused (exit 5), nothing published.
      await writeFile(path.join(r.dir, 'seq'), 'garbage\n');
      const bad = await r.run(shell, [...args, '--once']);
      assert.equal(bad.code, 5);
      assert.match(bad.stderr, /corrupt .*seq/);
      assert.deepEqual(await r.snapshots(), ['1', '2', '3', '4']);
      // seq lost after kml pulled and deleted every snapshot: the ledger still knows 4 was used.
      await rm(path.join(r.dir, 'seq'));
      for (const n of ['1', '2', '3', '4']) await rm(path.join(r.dir, 'snapshots', n), { recursive: true });
      assert.equal((await r.run(shell, [...args, '--once'])).code, 0);
      assert.deepEqual(await r.snapshots(), ['5']);
      await rm(path.join(r.dir, 'snapshots', '5'), { recursive: true });
      await rm(path.join(r.dir, 'seq'));
      await appendFile(path.join(r.dir, 'ledger'), 'garbage seq=x\nseq=0012 a\nseq=1234567890123 b\n');
      assert.equal((await r.run(shell, [...args, '--once'])).code, 0);
      assert.deepEqual(await r.snapshots(), ['6'], 'malformed ledger numbers are ignored, the good ones still count');
    });

    test('ledger: a line per published snapshot with meta\'s hashes, a start line per start, a missing line recovered', async () => {
      const r = await rig();
      const args = r.baseArgs(['--protocol', 'seed', '--interval', '1']);
      const ledgerFile = path.join(r.dir, 'ledger');
      const kv = (line: string) => Object.fromEntries(line.split(' ').filter((w) => w.includes('=')).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
      assert.equal((await r.run(shell, [...args, '--count', '3'])).code, 0);
      // The agent died between the publish rename of 3 and its ledger append: the line is missing.
      const before = (await readFile(ledgerFile, 'utf8')).split('\n').filter(Boolean);
      assert.match(before[before.length - 1], /^seq=3 /);
      await writeFile(ledgerFile, before.slice(0, -1).join('\n') + '\n');
      assert.equal((await r.run(shell, [...args, '--once'])).code, 0);
      const lines = (await readFile(ledgerFile, 'utf8')).split('\n').filter(Boolean);
      assert.deepEqual(lines.map((l) => l.replace(/ .*/, '') + (/^start /.test(l) ? ` ${kv(l).seq}` : '') + (/ recovered=1$/.test(l) ? ' recovered' : '')),
        ['start 0', 'seq=1', 'seq=2', 'seq=3 recovered', 'start 3', 'seq=4']);
      for (const line of lines.filter((l) => l.startsWith('seq='))) {
        const k = kv(line);
        const meta = await verifySnapshot(r.dir, Number(k.seq));
        assert.equal(k.boot_id, bootId());
        assert.equal(Number(k.wall_time), meta.wallTime);
        const hashes = Object.fromEntries(Object.entries(k).filter(([key]) => key.startsWith('sha256.')).map(([key, v]) => [key.slice(7), v]));
        assert.deepEqual(hashes, Object.fromEntries(meta.files.map((f) => [f.name, f.sha256])), `ledger hashes of ${k.seq} = meta's`);
      }
      assert.match(kv(lines[4]).pid, /^[1-9]\d*$/, 'start line names the pid');
    });

    test('ledger: a line that cannot be written waits and goes out with the next one', async () => {
      const r = await rig();
      await mkdir(path.join(r.dir, 'ledger'), { recursive: true }); // appending to a directory fails
      const a = r.spawnAgent(shell, r.baseArgs(['--protocol', 'seed', '--interval', '1', '--count', '3']));
      await r.waitFor(() => existsSync(path.join(r.dir, 'snapshots', '1')), 15_000, 'snapshot 1');
      await rm(path.join(r.dir, 'ledger'), { recursive: true });
      const res = await a.done;
      assert.equal(res.code, 0, res.stdout + res.stderr);
      const lines = (await readFile(path.join(r.dir, 'ledger'), 'utf8')).split('\n').filter(Boolean);
      assert.deepEqual(lines.map((l) => l.replace(/ .*/, '')), ['start', 'seq=1', 'seq=2', 'seq=3']);
      assert.match(res.stdout, /ledger line kept for later/);
    });

    test('a second agent is refused; SIGTERM during the interval sleep exits at once and cleanly', async () => {
      const r = await rig();
      const first = r.spawnAgent(shell, r.baseArgs(['--protocol', 'seed', '--interval', '300']));
      await r.waitFor(async () => existsSync(path.join(r.dir, 'snapshots', '1')) && (await r.heartbeat()).nextCycleWall !== undefined, 15_000, 'first snapshot');
      const second = await r.run(shell, r.baseArgs(['--protocol', 'seed', '--once']));
      assert.equal(second.code, 6);
      assert.match(second.stderr, /another agent \(pid \d+\) is already running/);
      assert.equal((await readFile(path.join(r.dir, 'agent.pid'), 'utf8')).trim(), String(first.child.pid));
      const t0 = Date.now();
      first.child.kill('SIGTERM');
      const res = await first.done;
      assert.equal(res.code, 0, res.stdout + res.stderr);
      assert.ok(Date.now() - t0 < 3_000, `stopped ${Date.now() - t0} ms after SIGTERM (mid-sleep)`);
      const hb = await r.heartbeat();
      assert.equal(hb.state, 'stopped');
      assert.equal(hb.pid, first.child.pid);
      assert.ok(!existsSync(path.join(r.dir, 'agent.pid')));
      assert.deepEqual(await r.snapshots(), ['1']);
    });

    test('SIGTERM in the middle of a double-scan cycle finishes and publishes that cycle', async () => {
      const r = await rig();
      const a = r.spawnAgent(shell, r.baseArgs(['--interval', '300']));
      await r.waitFor(async () => (await r.snapshots()).includes('.partial-1'), 15_000, 'cycle 1 to start');
      await sleep(300);
      a.child.kill('SIGTERM');
      const res = await a.done;
      assert.equal(res.code, 0, res.stdout + res.stderr);
      assert.deepEqual(await r.snapshots(), ['1']);
      const meta = await verifySnapshot(r.dir, 1);
      assert.ok(meta.scan2Ms !== undefined, 'the second scan still ran');
      assert.deepEqual(await r.commands(), ['scan=off', 'scan', 'scan', 'clear']);
      assert.equal((await r.heartbeat()).state, 'stopped');
    });

    test('stale pidfile (dead pid, or a live process that is not an agent) is taken over', async () => {
      const r = await rig();
      await mkdir(r.dir, { recursive: true });
      const dead = spawnSync('/bin/sh', ['-c', 'echo $$']).stdout.toString().trim();
      for (const stale of [dead, String(process.pid)]) {
        await writeFile(path.join(r.dir, 'agent.pid'), `${stale}\n`);
        const res = await r.run(shell, r.baseArgs(['--protocol', 'seed', '--once']));
        assert.equal(res.code, 0, res.stdout + res.stderr);
        assert.match(res.stdout, /taking over stale pidfile/);
      }
      assert.deepEqual(await r.snapshots(), ['1', '2']);
    });

    test('low free space: cycles skipped and logged, nothing published, no clear, heartbeat says so', async () => {
      const r = await rig();
      const res = await r.run(shell, r.baseArgs(['--protocol', 'seed', '--interval', '1', '--count', '2', '--min-free-kb', '999999999']));
      assert.equal(res.code, 0, res.stdout + res.stderr);
      assert.deepEqual(await r.snapshots(), []);
      const skipped = parseSkipped(await readFile(path.join(r.dir, 'skipped.log'), 'utf8'));
      assert.deepEqual(skipped.map((s) => [s.seq, s.reason, s.bootId]), [[1, 'low_space', bootId()], [2, 'low_space', bootId()]]);
      assert.match(await readFile(path.join(r.dir, 'skipped.log'), 'utf8'), /^seq=1 boot_id=[0-9a-f-]+ wall_time=\d+ reason=low_space\n/);
      const hb = await r.heartbeat();
      assert.equal(hb.skippedTotal, 2);
      assert.deepEqual(hb.lastError, ['low_space']);
      assert.equal(hb.seq, 2);
      assert.deepEqual(await r.commands(), [], 'nothing read, so nothing cleared');
    });

    test('kmemleak writes refused with EPERM: recorded as disabled, report still published, never cleared', async (t) => {
      const r = await rig();
      const imm = path.join(r.root, 'immutable');
      await writeFile(imm, '');
      if (spawnSync('chattr', ['+i', imm]).status !== 0) {
        t.skip('chattr +i not possible here (needs CAP_LINUX_IMMUTABLE on ext4)');
        return;
      }
      try {
        const res = await r.run(shell, ['--dir', r.dir, '--kmemleak', r.km, '--kmemleak-cmd', imm, '--kmsg-source', r.kmsg, '--once']);
        assert.equal(res.code, 0, res.stdout + res.stderr);
        const meta = await verifySnapshot(r.dir, 1);
        assert.deepEqual(meta.errors, ['scan_off:EPERM', 'scan1:EPERM']);
        assert.equal(meta.kmemleakState, 'disabled');
        assert.equal(meta.leakCount, 22, 'records kept by a disabled kmemleak are still read');
        const hb = await r.heartbeat();
        assert.equal(hb.kmemleak, 'disabled');
        assert.ok(hb.lastError.includes('scan1:EPERM'));
        assert.ok(res.ms < 4_000, 'no 5 s scan wait after a failed first scan');
        assert.doesNotMatch(res.stdout, /write 'clear'/, 'clear is not attempted on a disabled kmemleak');
      } finally {
        spawnSync('chattr', ['-i', imm]);
      }
    });

    test('disk full while writing a snapshot: not published, no clear, logged as no_space', async (t) => {
      const r = await rig();
      // A private mount namespace with a tiny tmpfs as the agent dir; copied out before it vanishes.
      const probe = spawnSync('unshare', ['-m', '/bin/sh', '-c', `mount -t tmpfs -o size=8k tmpfs ${r.root}`]);
      if (probe.status !== 0) {
        t.skip('cannot mount a tmpfs in a private mount namespace here');
        return;
      }
      for (const [size, failing] of [['20k', 'kmemleak.txt'], ['64k', 'a /proc sample']] as const) {
        const mnt = path.join(r.root, `mnt-${size}`);
        const out = path.join(r.root, `out-${size}`);
        await mkdir(mnt);
        const script = 'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; mnt=$2; out=$3; shift 3; "$@"; rc=$?; cp -a "$mnt" "$out"; exit $rc';
        const res = spawnSync('unshare', ['-m', '/bin/sh', '-c', script, 'x', size, mnt, out,
          ...(shell.path ? ['env', `PATH=${shell.path}`] : []), ...shell.argv, AGENT_SCRIPT, '--dir', mnt, '--kmemleak', r.km, '--kmemleak-cmd', r.fifo, '--kmsg-source', r.kmsg,
          '--protocol', 'seed', '--once', '--min-free-kb', '0'], { encoding: 'utf8', timeout: 30_000 });
        assert.equal(res.status, 0, `${size}: ${res.stdout}${res.stderr}`);
        assert.deepEqual((await readdir(path.join(out, 'snapshots'))), [], `${size}: nothing published when ${failing} did not fit`);
        const skipped = parseSkipped(await readFile(path.join(out, 'skipped.log'), 'utf8'));
        assert.deepEqual(skipped.map((s) => [s.seq, s.reason]), [[1, 'no_space']]);
        assert.equal((await readFile(path.join(out, 'seq'), 'utf8')).trim(), '1');
        assert.deepEqual(parseHeartbeat(await readFile(path.join(out, 'heartbeat'), 'utf8')).lastError, ['no_space']);
      }
      assert.deepEqual(await r.commands(), [], 'leaks that were not saved are never cleared');
    });

    test('an unreadable kernel log is noted, not an error; the snapshot still publishes', async () => {
      const r = await rig();
      const res = await r.run(shell, ['--dir', r.dir, '--kmemleak', r.km, '--kmemleak-cmd', r.fifo, '--kmsg-source', path.join(r.root, 'no-such-log'), '--protocol', 'seed', '--once']);
      assert.equal(res.code, 0, res.stdout + res.stderr);
      const meta = await verifySnapshot(r.dir, 1);
      assert.deepEqual(meta.unreadable, ['kmsg']);
      assert.deepEqual(meta.errors, []);
      assert.ok(!existsSync(path.join(r.dir, 'snapshots', '1', 'kmsg.txt')));
      assert.ok(!existsSync(path.join(r.dir, 'kmsg.marker')), 'the marker does not move');
    });

    test('bad options are usage errors (exit 2) with a clear message', async () => {
      const r = await rig();
      const cases: Array<[string[], RegExp]> = [
        [['--scan-wait', '4'], /--scan-wait must be .* >= 5/],
        [['--protocol', 'triple'], /--protocol must be double or seed/],
        [['--interval', '0'], /--interval must be/],
        [['--interval', '1e3'], /--interval must be/],
        [['--bogus'], /unknown option: --bogus/],
        [['--dir'], /--dir needs a value/],
        [['--once=1'], /--once takes no value/],
      ];
      for (const [extra, re] of cases) {
        const res = await r.run(shell, [...r.baseArgs(), ...extra]);
        assert.equal(res.code, 2, `${extra.join(' ')}: ${res.stderr}`);
        assert.match(res.stderr, re);
      }
      assert.equal(existsSync(path.join(r.dir, 'agent.pid')), false, 'usage errors touch nothing');
      const help = await r.run(shell, ['--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /--scan-wait S/);
      // Flags also take --name=value, and env supplies defaults.
      const eq = await r.run(shell, [`--dir=${r.dir}`, `--kmemleak=${r.km}`, `--kmemleak-cmd=${r.fifo}`, `--kmsg-source=${r.kmsg}`, '--protocol=seed'], { KML_COUNT: '1' });
      assert.equal(eq.code, 0, eq.stderr);
      assert.deepEqual(await r.snapshots(), ['1']);
    });

    test('library functions: errno mapping, the "off" guard, kernel log timestamps, the clock', async () => {
      const r = await rig();
      const lib = (body: string, ...args: string[]) => {
        const res = spawnSync(shell.argv[0], [...shell.argv.slice(1), '-c', `. "$1"; shift; ${body}`, 'lib', AGENT_SCRIPT, ...args], {
          env: { PATH: shell.path ?? process.env.PATH, KML_AGENT_LIB: '1' }, encoding: 'utf8', timeout: 10_000,
        });
        assert.equal(res.status, 0, res.stderr);
        return res.stdout.trim();
      };
      const errno = (msg: string) => lib('errno_of "$1"; echo "$errno_word"', msg);
      assert.equal(errno('/system/bin/sh: echo: write: Operation not permitted'), 'EPERM');
      assert.equal(errno('sh: write error: Device or resource busy'), 'EBUSY');
      assert.equal(errno('sh: write error: Interrupted system call'), 'EINTR');
      assert.equal(errno("sh: can't create /x/y: nonexistent directory"), 'ENOENT');
      assert.equal(errno('cat: /sys/kernel/debug/kmemleak: Permission denied'), 'EACCES');
      assert.equal(errno('cat: write error: No space left on device'), 'ENOSPC');
      assert.equal(errno('something else'), 'EUNKNOWN');
      // The guard refuses any command starting with "off", and writes nothing.
      const target = path.join(r.root, 'guard');
      await writeFile(target, 'untouched');
      assert.equal(lib('tmp_err=$1.err; kmemleak_cmd=$1; kml_write offset; echo "rc=$? errno=$kw_errno"', target).split('\n').pop(), 'rc=1 errno=EREFUSED');
      assert.equal(await readFile(target, 'utf8'), 'untouched');
      assert.equal(lib('kmsg_ts "$1"; echo "$ts_s $ts_u"', '[   12.034567] kmemleak: 3 new suspected memory leaks'), '12 1034567');
      assert.equal(lib('kmsg_ts "$1"; echo "$ts_s $ts_u"', '<6>[ 0.000100] x'), '0 1000100');
      assert.equal(lib('kmsg_ts "$1"; echo "$ts_s $ts_u"', 'no timestamp'), '0 0');
      assert.equal(lib('strip0 0009; echo $s0_v; strip0 000; echo $s0_v'), '9\n0');
      const clock = lib('clock_init; now_ms; a=$now_ms_v; sleep 1; now_ms; ms_between "$a" "$now_ms_v"; echo "$clock_res_ms $ms_v"').split(' ');
      assert.ok(clock[0] === '1' || clock[0] === '10', `clock resolution ${clock[0]} ms`);
      const ms = Number(clock[1]);
      assert.ok(ms >= 950 && ms < 3_000, `1 s sleep measured as ${ms} ms`);
      assert.equal(lib('ms_between 99999990 5; echo $ms_v'), '15', 'one wrap of the 1e8 ms clock is undone');
    });
  });
}

describe('shell availability', () => {
  test('mksh, toybox and busybox are installed (the agent is tested under each)', () => {
    assert.ok(SHELLS.some((s) => s.name === 'mksh'), '/usr/bin/mksh missing');
    assert.ok(SHELLS.some((s) => s.path !== undefined), '/usr/bin/toybox missing');
    assert.ok(SHELLS.some((s) => s.name === 'busybox sh'), '/usr/bin/busybox missing');
  });
});
