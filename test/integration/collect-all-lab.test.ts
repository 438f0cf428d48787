// `kml collect --all` on two LAB devices behind one real adb server: one is online when the
// collector starts, the other boots while it runs (a phone plugged in mid-soak, a lab VM started
// by a script). The collector picks the second up, both runs store exactly what their agents
// published, and one SIGTERM closes both.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KML_BIN } from '../helpers/paths.js';
import { startAdbServer, type AdbServer } from '../helpers/adb-server.js';
import { ensureLabArtifacts, startLabDevice, type LabDeviceHandle } from '../helpers/lab.js';
import { serialSafe } from '../../host/store/layout.js';
import { readManifest, type ManifestEntry } from '../../host/store/manifest.js';
import { listRuns, readRunJson } from '../../host/store/run.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const AGENT_DIR = '/data/local/tmp/kml-all';

describe('kml collect --all follows devices that come later (lab)', { timeout: 20 * 60_000 }, () => {
  let server: AdbServer;
  let first: LabDeviceHandle | undefined;
  let second: LabDeviceHandle | undefined;
  let root: string;
  const children = new Set<ChildProcess>();

  before(async () => {
    await ensureLabArtifacts();
    server = await startAdbServer();
    first = await startLabDevice({ kmemleak: true, server });
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'kml-collect-all-'));
  }, { timeout: 45 * 60_000 });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await second?.stop();
    await first?.stop();
    await server?.kill();
    if (root) await fs.rm(root, { recursive: true, force: true });
  }, { timeout: 180_000 });

  async function runDirOf(out: string, serial: string): Promise<string | undefined> {
    const runs = await listRuns(out, serial).catch(() => [] as string[]);
    return runs.length ? path.join(out, serialSafe(serial), runs[runs.length - 1]) : undefined;
  }

  async function entries(out: string, serial: string): Promise<ManifestEntry[]> {
    const dir = await runDirOf(out, serial);
    return dir ? (await readManifest(path.join(dir, 'manifest.jsonl'))).entries : [];
  }

  async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 240_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await fn().catch(() => false))) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(500);
    }
  }

  test('a device booted mid-run joins; SIGTERM closes both runs, each snapshot stored once', async () => {
    const a = first!;
    const out = path.join(root, 'out');
    const c = spawn(process.execPath, [KML_BIN, 'collect', '--all', '--interval', '5', '--out', out, '--agent-dir', AGENT_DIR, '--json'],
      { env: server.env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    let stdout = '';
    let stderr = '';
    c.stdout!.on('data', (d) => (stdout += d));
    c.stderr!.on('data', (d) => (stderr += d));
    const done = new Promise<number | null>((resolve) => c.on('close', (code) => { children.delete(c); resolve(code); }));

    await waitFor('the first device to store a snapshot', async () => (await entries(out, a.serial)).length >= 1);
    const b = (second = await startLabDevice({ kmemleak: true, server }));
    await waitFor('the second device to join and store a snapshot', async () => (await entries(out, b.serial)).length >= 1);
    assert.match(stderr, new RegExp(`device joined: collecting from it too.*${b.serial.replace(/[.]/g, '\\.')}|${b.serial.replace(/[.]/g, '\\.')}.*device joined`));

    c.kill('SIGTERM');
    assert.equal(await done, 0, stderr.slice(-3000));
    const result = JSON.parse(stdout) as { ok: boolean; devices: Array<{ serial: string; exitCode: number }> };
    assert.equal(result.ok, true);
    assert.deepEqual(result.devices.map((d) => d.serial).sort(), [a.serial, b.serial].sort());
    for (const dev of [a, b]) {
      const dir = (await runDirOf(out, dev.serial))!;
      assert.equal((await readRunJson(dir)).ended?.clean, true, `${dev.serial}: run closed`);
      const es = await entries(out, dev.serial);
      const log = await dev.sh(`cat ${AGENT_DIR}/agent.log`);
      const published = [...log.stdout.matchAll(/snapshot (\d+) published/g)].map((m) => Number(m[1]));
      assert.ok(published.length >= 1, `${dev.serial}: the agent published`);
      assert.deepEqual(es.map((e) => e.seq).sort((x, y) => x - y), published.sort((x, y) => x - y), `${dev.serial}: stored = published, once each`);
      assert.equal((await dev.sh(`ls ${AGENT_DIR}/snapshots`)).stdout.trim(), '', `${dev.serial}: nothing left on the device`);
    }
  });
});
