// `kml collect` / `pull` / `status` / `stop` as a user runs them (the CLI as a subprocess),
// through Debian's real adb server, against our adbd running on the host, with the real agent
// script. The host has no kmemleak, so the agent reads a regular file (--test-kmemleak-path)
// and doctor is skipped (--test-skip-doctor): these tests cover the puller's mechanics and its
// faults (kill -9, second collector, frozen/restarted adbd, adb server restart, full host disk).
// Real kmemleak end-to-end is collect-lab.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KML_BIN, SHARED_FIXTURES } from '../helpers/paths.js';
import { runAdb, startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { spawnHostAdbd, type SpawnedAdbd } from '../helpers/host-adbd.js';
import { readManifest, type ManifestEntry } from '../../host/store/manifest.js';
import { listRuns, readRunJson } from '../../host/store/run.js';
import { serialSafe } from '../../host/store/layout.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

describe('kml collect against our adbd on the host', { timeout: 10 * 60_000 }, () => {
  let server: AdbServer;
  let adbd: SpawnedAdbd;
  let serial: string;
  let root: string;
  const children = new Set<ChildProcess>();

  async function connectAdbd(port?: number): Promise<void> {
    adbd = await spawnHostAdbd({ args: port ? ['--port', String(port), '--reboot-cmd', ''] : ['--reboot-cmd', ''] });
    serial = `127.0.0.1:${adbd.port}`;
    const c = await server.adb(['connect', serial], { timeoutMs: 15_000 });
    assert.match(c.stdout, /connected to/);
  }

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-collect-host-'));
    server = await startAdbServer();
    await connectAdbd();
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await adbd?.stop();
    // kml may have restarted the server after a test killed it: stop whatever listens on the port
    if (server) await runAdb(['-P', String(server.port), 'kill-server'], server.env, { timeoutMs: 15_000 }).catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  /** A fresh agent dir + fake kmemleak file + store dir for one test. */
  async function scene(name: string) {
    const dir = path.join(root, name);
    await fs.mkdir(dir, { recursive: true });
    const kmemleak = path.join(dir, 'kmemleak');
    await fs.copyFile(path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-rmmod.txt'), kmemleak);
    const args = (extra: string[] = []) => [
      '-s', serial, '--out', path.join(dir, 'out'), '--agent-dir', path.join(dir, 'agent'),
      '--test-kmemleak-path', kmemleak, '--test-skip-doctor', '--test-poll-ms', '200', ...extra,
    ];
    return { dir, out: path.join(dir, 'out'), agentDir: path.join(dir, 'agent'), args };
  }

  function kml(args: string[], opts: { timeoutMs?: number } = {}): Promise<Result> {
    return new Promise((resolve) => {
      const c = spawn(process.execPath, [KML_BIN, ...args], { env: { ...server.env, KML_DEBUG: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(c);
      let stdout = '';
      let stderr = '';
      c.stdout!.on('data', (d) => (stdout += d));
      c.stderr!.on('data', (d) => (stderr += d));
      const t = setTimeout(() => c.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
      c.on('close', (code, signal) => {
        clearTimeout(t);
        children.delete(c);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }

  /** A long-running collector in the background (no end condition). */
  function background(args: string[]): { child: ChildProcess; done: Promise<Result>; stderr: () => string } {
    const c = spawn(process.execPath, [KML_BIN, 'collect', ...args], { env: server.env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    let stdout = '';
    let stderr = '';
    c.stdout!.on('data', (d) => (stdout += d));
    c.stderr!.on('data', (d) => (stderr += d));
    const done = new Promise<Result>((resolve) => c.on('close', (code, signal) => { children.delete(c); resolve({ code, signal, stdout, stderr }); }));
    return { child: c, done, stderr: () => stderr };
  }

  async function runDirOf(out: string): Promise<string> {
    const runs = await listRuns(out, serial);
    assert.ok(runs.length >= 1, 'a run folder exists');
    return path.join(out, serialSafe(serial), runs[runs.length - 1]);
  }

  async function manifestOf(out: string): Promise<ManifestEntry[]> {
    return (await readManifest(path.join(await runDirOf(out), 'manifest.jsonl'))).entries;
  }

  async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn().catch(() => undefined);
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  /** Seqs the agent says it published (its own log), the device-side truth for the accounting. */
  async function publishedByAgent(agentDir: string): Promise<number[]> {
    const text = await fs.readFile(path.join(agentDir, 'agent.log'), 'utf8');
    return [...text.matchAll(/snapshot (\d+) published/g)].map((m) => Number(m[1]));
  }

  async function remainingOnDevice(agentDir: string): Promise<string[]> {
    return (await fs.readdir(path.join(agentDir, 'snapshots')).catch(() => [] as string[])).filter((n) => /^\d+$/.test(n));
  }

  /** Every published snapshot stored exactly once, byte-identical to what the agent hashed. */
  async function assertExactlyOnce(s: Awaited<ReturnType<typeof scene>>): Promise<ManifestEntry[]> {
    const entries = await manifestOf(s.out);
    const seqs = entries.map((e) => e.seq);
    assert.equal(new Set(seqs.map((q, i) => `${entries[i].bootId}#${q}`)).size, seqs.length, `no duplicates: ${seqs.join(',')}`);
    const published = await publishedByAgent(s.agentDir);
    assert.deepEqual([...seqs].sort((a, b) => a - b), [...published].sort((a, b) => a - b), 'stored = published by the agent');
    const runDir = await runDirOf(s.out);
    for (const e of entries) {
      const meta = JSON.parse(await fs.readFile(path.join(runDir, e.files.find((f) => f.name === 'meta.txt')!.path), 'utf8'));
      for (const f of e.files.filter((x) => x.name !== 'meta.txt')) {
        const bytes = await fs.readFile(path.join(runDir, f.path));
        assert.equal(sha(bytes), meta.sha256[f.name], `${f.path} = the agent's sha256`);
        assert.equal(bytes.length, meta.size[f.name]);
      }
    }
    assert.deepEqual(await remainingOnDevice(s.agentDir), [], 'nothing left on the device');
    return entries;
  }

  test('collect --count 4: verified snapshots, consistent manifest, device emptied, run closed', async () => {
    const s = await scene('count');
    const t0 = Date.now();
    const r = await kml(['collect', ...s.args(['--interval', '1', '--protocol', 'seed', '--count', '4'])]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /4 snapshot\(s\) stored in .*run closed/);
    const entries = await assertExactlyOnce(s);
    assert.deepEqual(entries.map((e) => e.seq), [1, 2, 3, 4]);
    const json = await readRunJson(await runDirOf(s.out));
    assert.equal(json.ended?.clean, true);
    assert.equal(json.ended?.reason, 'count');
    assert.equal(json.intervalS, 1);
    assert.equal(json.scanProtocol, 'seed');
    // the first report is the fixture (22 leaks); later ones are the fake file after "clear"
    const first = entries[0];
    assert.equal(first.leakCount, 22);
    const log = await fs.readFile(path.join(await runDirOf(s.out), 'kml.log'), 'utf8');
    assert.match(log, /"msg":"snapshot stored"/);
    // no progress output when stdout is not a TTY, logs as JSON lines on stderr
    assert.doesNotMatch(r.stdout, /\x1b\[/);
    assert.ok(r.stderr.split('\n').filter(Boolean).every((l) => l.startsWith('{')), 'stderr holds JSON log lines only');
    process.stdout.write(`# collect --count 4 at --interval 1: ${Date.now() - t0} ms\n`);
  });

  test('a second collector on the same device and store is refused (exit 6), kml stop ends the first', async () => {
    const s = await scene('second');
    const first = background(s.args(['--interval', '1', '--protocol', 'seed']));
    await waitFor('first snapshot', async () => ((await manifestOf(s.out)).length >= 1 ? true : undefined));
    const second = await kml(['collect', ...s.args(['--interval', '1', '--protocol', 'seed'])]);
    assert.equal(second.code, 6, second.stderr);
    assert.match(second.stderr, /another kml collector already drives device 127\.0\.0\.1:\d+ .*: pid \d+/);
    assert.match(second.stderr, /hint: stop it first \(kml stop/);
    assert.doesNotMatch(second.stderr, /at .*\.js:\d+/, 'no stack trace');
    const pull = await kml(['pull', ...s.args()]);
    assert.equal(pull.code, 6, 'kml pull is refused too while the collector runs');
    const status = await kml(['status', ...s.args(['--json'])]);
    assert.equal(status.code, 0, status.stderr);
    const st = JSON.parse(status.stdout);
    assert.equal(st.collector.running, true);
    assert.equal(st.collector.pid, first.child.pid);
    assert.equal(st.device.agent.alive, true);
    const stop = await kml(['stop', ...s.args()]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /the running collector \(pid \d+\) stopped/);
    const r = await first.done;
    assert.equal(r.code, 0, r.stderr);
    await assertExactlyOnce(s);
    const json = await readRunJson(await runDirOf(s.out));
    assert.equal(json.ended?.clean, true);
    assert.equal(json.ended?.reason, 'signal');
  });

  test('kill -9 of kml at random moments, rerun each time: exactly once, one run folder', async () => {
    const s = await scene('kill9');
    const args = s.args(['--interval', '1', '--protocol', 'seed']);
    let kills = 0;
    for (let i = 0; i < 6; i++) {
      const c = background(args);
      await waitFor('collector working', async () => (/snapshot stored|already stored|agent started/.test(c.stderr()) ? true : undefined), 30_000);
      await sleep(150 + Math.floor(Math.random() * 900));
      c.child.kill('SIGKILL');
      await c.done;
      kills++;
    }
    // the agent kept publishing while no collector ran; stop does the final pull
    const stop = await kml(['stop', ...s.args()]);
    assert.equal(stop.code, 0, stop.stderr + stop.stdout);
    const entries = await assertExactlyOnce(s);
    assert.equal((await listRuns(s.out, serial)).length, 1, 'every rerun continued the same run');
    const json = await readRunJson(await runDirOf(s.out));
    assert.equal(json.sessions.length, kills + 1);
    assert.equal(json.ended?.clean, true);
    process.stdout.write(`# kill -9 x${kills}: ${entries.length} snapshots, 0 lost, 0 duplicated\n`);
  });

  test('adbd frozen, then restarted on the same port: the collector waits and carries on', async () => {
    const s = await scene('adbd');
    const c = background(s.args(['--interval', '1', '--protocol', 'seed']));
    await waitFor('2 snapshots', async () => ((await manifestOf(s.out)).length >= 2 ? true : undefined));
    // a stalled link: sockets stay open, nothing answers (deadlines must fire)
    process.kill(adbd.pid, 'SIGSTOP');
    await sleep(4_000);
    process.kill(adbd.pid, 'SIGCONT');
    const n1 = (await manifestOf(s.out)).length;
    await waitFor('progress after the stall', async () => ((await manifestOf(s.out)).length > n1 + 1 ? true : undefined), 90_000);
    // adbd dies and comes back on the same port (the agent survives on the host)
    const port = adbd.port;
    await adbd.stop();
    await sleep(1_000);
    adbd = await spawnHostAdbd({ args: ['--port', String(port), '--reboot-cmd', ''] });
    const n2 = (await manifestOf(s.out)).length;
    await waitFor('progress after the adbd restart', async () => ((await manifestOf(s.out)).length > n2 + 1 ? true : undefined), 120_000);
    assert.match(c.stderr(), /device unreachable: waiting for it to come back/);
    assert.match(c.stderr(), /device connection re-established/);
    c.child.kill('SIGTERM');
    const r = await c.done;
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    await assertExactlyOnce(s);
  });

  test('adb server killed mid-run: kml starts it again, reconnects the TCP device, nothing lost', async () => {
    const s = await scene('server');
    const c = background(s.args(['--interval', '1', '--protocol', 'seed']));
    await waitFor('2 snapshots', async () => ((await manifestOf(s.out)).length >= 2 ? true : undefined));
    const k = await runAdb(['-P', String(server.port), 'kill-server'], server.env, { timeoutMs: 15_000 });
    assert.equal(k.code, 0);
    const n = (await manifestOf(s.out)).length;
    await waitFor('progress after the server restart', async () => ((await manifestOf(s.out)).length > n + 1 ? true : undefined), 120_000);
    c.child.kill('SIGINT');
    const r = await c.done;
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    await assertExactlyOnce(s);
  });

  test('a second collector with ANOTHER --out is refused too (host-wide device lock)', async () => {
    const s = await scene('otherout');
    const first = background(s.args(['--interval', '1', '--protocol', 'seed']));
    await waitFor('first snapshot', async () => ((await manifestOf(s.out)).length >= 1 ? true : undefined));
    const otherOut = (extra: string[] = []) => s.args(extra).map((a) => (a === s.out ? path.join(s.dir, 'other-out') : a));
    const second = await kml(['collect', ...otherOut(['--interval', '1', '--protocol', 'seed'])]);
    assert.equal(second.code, 6, second.stderr);
    assert.match(second.stderr, /already drives device 127\.0\.0\.1:\d+ \(adb server port \d+\) on this host: pid \d+/);
    const stop = await kml(['stop', ...otherOut()]); // finds the collector through the host-wide lock
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /the running collector \(pid \d+\) stopped/);
    assert.equal((await first.done).code, 0);
    await assertExactlyOnce(s);
  });

  test('--detach, then status, pull and stop continue the same run', async () => {
    const s = await scene('detach');
    const d = await kml(['collect', ...s.args(['--interval', '1', '--protocol', 'seed', '--detach'])], { timeoutMs: 60_000 });
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /the agent keeps running/);
    await waitFor('2 snapshots waiting on the device', async () => ((await remainingOnDevice(s.agentDir)).length >= 2 ? true : undefined));
    const st = await kml(['status', ...s.args()]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /collector: +not running/);
    assert.match(st.stdout, /agent: +alive \(pid \d+/);
    assert.match(st.stdout, /waiting: +\d+ snapshot\(s\) on the device/);
    const p = await kml(['pull', ...s.args(['--json'])]);
    assert.equal(p.code, 0, p.stderr);
    const pj = JSON.parse(p.stdout);
    assert.ok(pj.stored >= 2);
    const stop = await kml(['stop', ...s.args()]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /run closed/);
    await assertExactlyOnce(s);
    assert.equal((await listRuns(s.out, serial)).length, 1);
    const st2 = await kml(['status', ...s.args(['--json'])]);
    assert.equal(JSON.parse(st2.stdout).device.agent.alive, false);
  });

  test('kml stop while a one-shot kml pull holds the device: the pull is not signalled, stop waits for it, then closes the run', async () => {
    const s = await scene('stop-waits-for-pull');
    const d = await kml(['collect', ...s.args(['--interval', '1', '--protocol', 'seed', '--detach'])], { timeoutMs: 60_000 });
    assert.equal(d.code, 0, d.stderr);
    // A process holding the store's device lock the way `kml pull` does (kind 'pull', the real
    // lock code), for 3 s; then it lets go and exits 0 by itself.
    const openJs = new URL('../../host/store/open.js', import.meta.url).href;
    const holderCode = `const m = await import(${JSON.stringify(openJs)}); const l = await m.lockDevice(${JSON.stringify(s.out)}, ${JSON.stringify(serial)}, 'kml pull (test)', 'pull'); process.stdout.write('locked\\n'); setTimeout(async () => { await l.release(); process.exit(0); }, 3000);`;
    const holder = spawn(process.execPath, ['--input-type=module', '-e', holderCode], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(holder);
    const holderExit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => holder.on('close', (code, signal) => { children.delete(holder); resolve({ code, signal }); }));
    await new Promise<void>((resolve) => holder.stdout!.on('data', (b) => { if (String(b).includes('locked')) resolve(); }));
    const t0 = Date.now();
    const stop = await kml(['stop', ...s.args(['--wait', '30s'])]);
    const took = Date.now() - t0;
    assert.deepEqual(await holderExit, { code: 0, signal: null }, 'the pull-like holder ended by itself, not by a signal');
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /run closed/);
    assert.ok(took >= 1500, `stop waited for the holder (${took} ms)`);
    await assertExactlyOnce(s);
  });

  test('device storage low: the agent skips cycles, kml status reports them', async () => {
    const s = await scene('devfull');
    const d = await kml(['collect', ...s.args(['--interval', '1', '--protocol', 'seed', '--detach', '--min-device-free-mb', '900000'])], { timeoutMs: 60_000 });
    assert.equal(d.code, 0, d.stderr);
    await waitFor('skipped cycles', async () => {
      const st = JSON.parse((await kml(['status', ...s.args(['--json'])])).stdout);
      return st.device.skippedTotal >= 2 ? st : undefined;
    }, 60_000);
    const stop = await kml(['stop', ...s.args()]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.deepEqual(await remainingOnDevice(s.agentDir), []);
  });

  test('bad input gets a clear error and the documented exit code, never a stack trace', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['collect', '-s', serial, '--interval', 'soon'], 2, /--interval: cannot read duration/],
      [['collect', '-s', serial, '--scan-wait', '2'], 2, /--scan-wait must be at least 5/],
      [['collect', '-s', serial, '--count', '0'], 2, /--count must be a positive whole number/],
      [['collect', '-s', serial, '--protocol', 'fast'], 2, /Allowed choices are kml, seed/],
      [['collect', '-s', 'no-such-device', '--out', path.join(root, 'nodev')], 3, /no-such-device/],
      [['collect', '-s', serial, '--min-device-free-mb', '2000000'], 2, /--min-device-free-mb must be at most/],
      // a hostile serial is only ever quoted: it reaches adb as a name that is not attached
      [['collect', '-s', 'x;reboot', '--out', path.join(root, 'evil')], 3, /x;reboot is not attached/],
      [['collect', '-s', '$(id)', '--out', path.join(root, 'evil')], 3, /\$\(id\) is not attached/],
    ];
    for (const [args, code, re] of cases) {
      const r = await kml(args, { timeoutMs: 60_000 });
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.doesNotMatch(r.stderr, /^\s+at .*\(.*\.js:\d+:\d+\)$/m, 'no stack trace');
    }
  });

  test('host disk full: pulling pauses (device keeps its snapshots), resumes when space returns', { skip: process.getuid?.() !== 0 ? 'needs root to mount a small tmpfs' : false }, async () => {
    const s = await scene('hostfull');
    const mnt = path.join(s.dir, 'tiny');
    await fs.mkdir(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    if (m.status !== 0) return; // no mount permission in this container: nothing to test
    try {
      const out = path.join(mnt, 'out');
      const args = s.args(['--interval', '1', '--protocol', 'seed', '--min-host-free-mb', '1']).map((a) => (a === s.out ? out : a));
      const c = background(args);
      const run = await waitFor('a stored snapshot', async () => {
        const runs = await listRuns(out, serial);
        if (!runs.length) return undefined;
        const dir = path.join(out, serialSafe(serial), runs[0]);
        return (await readManifest(path.join(dir, 'manifest.jsonl'))).entries.length >= 1 ? dir : undefined;
      });
      // fill the disk
      const filler = path.join(mnt, 'filler');
      spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' });
      await waitFor('pause', async () => (/host disk nearly full: pulling paused/.test(c.stderr()) ? true : undefined), 60_000);
      const before = (await readManifest(path.join(run, 'manifest.jsonl'))).entries.length;
      await waitFor('snapshots piling up on the device', async () => ((await remainingOnDevice(s.agentDir)).length >= 3 ? true : undefined), 60_000);
      assert.equal(c.child.exitCode, null, 'the collector is still running');
      await fs.rm(filler);
      await waitFor('resume', async () => (/host disk has room again: pulling resumed/.test(c.stderr()) ? true : undefined), 60_000);
      await waitFor('backlog pulled', async () => ((await readManifest(path.join(run, 'manifest.jsonl'))).entries.length >= before + 3 ? true : undefined), 60_000);
      c.child.kill('SIGTERM');
      const r = await c.done;
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      await assertExactlyOnce({ ...s, out });
      const leftovers = (await fs.readdir(run, { recursive: true })).filter((n) => String(n).includes('.kml-tmp-'));
      assert.deepEqual(leftovers, []);
    } finally {
      for (const c of children) c.kill('SIGKILL');
      await sleep(200);
      spawnSync('umount', ['-l', mnt]);
    }
  });
});
