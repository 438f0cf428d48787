// Security: serials, paths and options never reach a device or host shell unquoted (issue 5,
// item 5). The real CLI runs with hostile serials (`x;touch …`, `$(touch …)`, backticks, quotes,
// pipes, path characters, adb host-protocol colons) for doctor, collect, pull, status, stop and the
// lab fault commands, and — against our adbd on the host, whose shell commands run on this very
// machine — with an --out folder and a kmemleak path full of spaces, quotes, `$()` and backticks.
// A successful injection would create a canary file; none may appear. Every run must end with a
// documented exit code and a clear message (never a stack trace), change nothing outside its
// store, and the store must hold only layout paths.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SHARED_FIXTURES } from '../helpers/paths.js';
import { runAdb, startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { startHostAdbd, type ConnectedAdbd } from '../helpers/host-adbd.js';
import { readManifest } from '../../host/store/manifest.js';
import { listRuns } from '../../host/store/run.js';
import { serialSafe } from '../../host/store/layout.js';
import { assertClearOutcome, runKml, storeViolations, treeDiff, treeState, type CliResult } from './security-rig.js';

const REPORT = path.join(SHARED_FIXTURES, 'kmemleak', 'kmemleak-report-after-rmmod.txt');

describe('hostile serials, paths and options never reach a shell', { timeout: 15 * 60_000 }, () => {
  let server: AdbServer;
  let adbd: ConnectedAdbd;
  let serial: string;
  let root: string;
  let env: NodeJS.ProcessEnv;
  const canary = (tag: string) => path.join(root, `canary-${tag}`);
  const canaries = async () => (await fs.readdir(root)).filter((n) => n.startsWith('canary-'));

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-sec-inject-'));
    await fs.mkdir(path.join(root, 'cwd'));
    await fs.mkdir(path.join(root, 'home'));
    server = await startAdbServer();
    adbd = await startHostAdbd(server, { args: ['--reboot-cmd', ''] });
    serial = adbd.serial;
    // HOME and the lab state folder are the test's: the lab commands see no lab device of anyone else
    env = { ...server.env, HOME: path.join(root, 'home'), KML_STATE_DIR: path.join(root, 'home', 'state'), KML_CACHE_DIR: path.join(root, 'home', 'cache') };
  });

  after(async () => {
    await adbd?.stop();
    await server?.kill();
    // `kml doctor -s -P1 --json` is parsed by commander as port 1 and serial "--json": kml then
    // asks for an adb server on port 1 and adbkit starts one (as adb itself would). It is this
    // test's: stop it.
    if (server) await runAdb(['-P', '1', 'kill-server'], server.env, { timeoutMs: 15_000 }).catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  /** Serials a user (or a script fed bad data) could pass. */
  function hostileSerials(): { serial: string; usage: boolean }[] {
    const t = (tag: string) => `touch\${IFS}${canary(tag)}`;
    return [
      { serial: `x;${t('semi')}`, usage: false },
      { serial: `$(${t('dollar')})`, usage: false },
      { serial: `\`${t('bt')}\``, usage: false },
      { serial: `a|${t('pipe')}&&${t('and')}`, usage: false },
      { serial: `'$(${t('sq')})'"$(${t('dq')})"`, usage: false },
      { serial: `127.0.0.1:1;${t('tcp')}`, usage: false },
      { serial: '../../../../../tmp/kml-escape', usage: false },
      { serial: `${serial}:reconnect`, usage: false },
      { serial: `x:forward:tcp:1;tcp:2`, usage: false },
      { serial: '-P1', usage: false },
      { serial: `x; touch ${canary('space')}`, usage: true },
      { serial: `x\ntouch ${canary('nl')}`, usage: true },
    ];
  }

  test('doctor, collect, pull, status, stop and the lab fault commands with hostile serials', async () => {
    const out = path.join(root, 'serial-out');
    const commands = (s: string): string[][] => [
      ['doctor', '-s', s],
      ['doctor', '-s', s, '--json', '--out', out],
      ['collect', '-s', s, '--out', out, '--interval', '5', '--count', '1'],
      ['pull', '-s', s, '--out', out],
      ['status', '-s', s, '--out', out, '--json'],
      ['stop', '-s', s, '--out', out, '--wait', '5s'],
      ['lab', 'reboot', '-s', s],
      ['lab', 'unplug', s],
      ['lab', 'replug', '-s', s],
      ['lab', 'kill-adbd', '-s', s],
      ['lab', 'leak', '-s', s, '--rate', '1'],
      ['lab', 'down', s],
    ];
    const outside = () => treeState(root, (rel) => rel === 'serial-out' || rel.startsWith(`serial-out${path.sep}`));
    const before = await outside();
    const jobs: { what: string; args: string[]; usage: boolean; envSerial?: string }[] = [];
    for (const h of hostileSerials()) {
      for (const args of commands(h.serial)) jobs.push({ what: `kml ${args.join(' ')}`, args, usage: h.usage });
      // the same through ANDROID_SERIAL
      jobs.push({ what: `ANDROID_SERIAL=${h.serial} kml pull`, args: ['pull', '--out', out], usage: h.usage, envSerial: h.serial });
    }
    const results: { job: (typeof jobs)[number]; r: CliResult }[] = [];
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const job = jobs[next++];
        const serialEnv = job.envSerial !== undefined ? { ANDROID_SERIAL: job.envSerial } : {};
        const r = await runKml(job.args, { env: { ...env, ...serialEnv }, cwd: path.join(root, 'cwd'), timeoutMs: 60_000 });
        results.push({ job, r });
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    for (const { job, r } of results) {
      // a malformed serial is a usage error; the lab commands look it up among their devices (3)
      assertClearOutcome(r, job.what, job.usage ? (job.args[0] === 'lab' ? [2, 3] : [2]) : [0, 1, 2, 3, 4, 5, 6, 7]);
      // an unknown device: never "ok" for the commands that need one
      if (!job.args.includes('down') && !job.args.includes('status')) assert.notEqual(r.code, 0, `${job.what} succeeded on a device that does not exist`);
    }
    assert.deepEqual(await canaries(), [], 'no injected command ran');
    assert.deepEqual(treeDiff(before, await outside()).filter((d) => !d.startsWith(`+home${path.sep}`) && d !== '+home'), [], 'nothing outside --out changed');
    assert.deepEqual(await storeViolations(out).catch(() => []), [], 'serial folders follow the layout');
    // a serial with path characters became one flattened folder name inside --out
    const names = await fs.readdir(out).catch(() => [] as string[]);
    assert.ok(names.every((n) => /^[A-Za-z0-9._-]+$/.test(n) && n !== '.' && n !== '..'), names.join(', '));
    await assert.rejects(fs.access('/tmp/kml-escape'));
    // the adb server was not talked into a forward or a reconnect
    const fwd = await server.adb(['forward', '--list']);
    assert.equal(fwd.stdout.trim(), '');
    const st = await server.adb(['-s', serial, 'get-state']);
    assert.equal(st.stdout.trim(), 'device');
  });

  test('--out and the kmemleak path full of quotes, $() and backticks: stored where asked, nothing injected', async () => {
    const payload = (tag: string) => `'"$(touch ${canary(tag)})\`touch ${canary(`${tag}-bt`)}\`;touch ${canary(`${tag}-semi`)};x`;
    const out = path.join(root, 'o u t', payload('out'));
    const kmDir = path.join(root, 'k m', payload('km'));
    await fs.mkdir(kmDir, { recursive: true });
    const km = path.join(kmDir, 'kmemleak \'q\' "dq" $HOME `id` ;|&');
    await fs.copyFile(REPORT, km);
    const agentDir = path.join(root, 'dev', 'kml');
    const outside = () => treeState(root, (rel) => rel === 'o u t' || rel.startsWith(`o u t${path.sep}`) || rel.startsWith(`dev${path.sep}`) || rel === 'dev'
      || rel.startsWith(`home${path.sep}`) || rel.startsWith('serial-out'));
    const before = await outside();
    const common = ['-s', serial, '--out', out, '--agent-dir', agentDir, '--test-skip-doctor', '--test-poll-ms', '200', '--test-kmemleak-path', km];
    const opts = { env, cwd: path.join(root, 'cwd'), timeoutMs: 120_000 };

    const collect = await runKml(['collect', ...common, '--interval', '1', '--protocol', 'seed', '--count', '2'], opts);
    assertClearOutcome(collect, 'kml collect', [0]);
    const runs = await listRuns(out, serial);
    assert.equal(runs.length, 1, `one run under the literal --out path\n${collect.stderr.slice(-2000)}`);
    const runDir = path.join(out, serialSafe(serial), runs[0]);
    const entries = (await readManifest(path.join(runDir, 'manifest.jsonl'))).entries;
    assert.equal(entries.length, 2);
    // the agent read the hostile kmemleak path itself: the first report is the fixture's 22 leaks
    assert.equal(entries.find((e) => e.seq === 1)?.leakCount, 22);
    const first = entries.find((e) => e.seq === 1)!;
    assert.deepEqual(await fs.readFile(path.join(runDir, first.files.find((f) => f.name === 'kmemleak.txt')!.path)), await fs.readFile(REPORT));

    for (const args of [['status', '--json'], ['pull'], ['stop', '--wait', '20s']]) {
      const r = await runKml([...args, ...common], opts);
      assertClearOutcome(r, `kml ${args[0]}`, [0]);
      if (args[0] === 'status') assert.equal(JSON.parse(r.stdout).run.dir, runDir);
    }
    const doctor = await runKml(['doctor', '-s', serial, '--out', out, '--json'], opts);
    assertClearOutcome(doctor, 'kml doctor', [0, 1]);
    assert.equal(JSON.parse(doctor.stdout).space.hostDir, out, 'doctor checked the literal --out folder');
    // an agent folder that is not a plain absolute path is refused before anything runs
    for (const bad of [`/tmp/kml $(touch ${canary('agentdir')})`, `/tmp/kml;touch\${IFS}${canary('agentdir2')}`, '/tmp/../etc']) {
      const r = await runKml(['pull', '-s', serial, '--out', out, '--agent-dir', bad, '--test-skip-doctor'], opts);
      assertClearOutcome(r, `kml pull --agent-dir ${bad}`, [2]);
      assert.match(r.stderr, /invalid agent directory/);
    }

    assert.deepEqual(await canaries(), [], 'no injected command ran');
    // (the kmemleak file itself is the device's: the agent writes its commands into it)
    assert.deepEqual(treeDiff(before, await outside()).filter((d) => d !== `~${path.relative(root, km)}`), [], 'nothing outside --out and the agent folder changed');
    assert.deepEqual(await storeViolations(out), []);
    const agentLog = await fs.readFile(path.join(agentDir, 'agent.log'), 'utf8');
    assert.ok(agentLog.includes(`kmemleak=${km}`), 'the agent got the path as one argument');
  });
});
