// scripts/lab/prune-cache.sh, run by bash as build-kernel and make-initramfs run it (set -euo
// pipefail): the newest entries stay, the one just made stays, entries a lab device's state names
// or a running process has on its command line stay, the rest go (a kernel's build log with it).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';
import { tempDirSync } from '../helpers/tmp.js';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'lab', 'prune-cache.sh');
/** KML_STATE_DIR for the script: lab device state lives in <it>/lab/dev-N/. */
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-prune-state-'));

function prune(cache: string, glob: string, keep: number, current: string): { code: number | null; err: string } {
  const env = { ...process.env, KML_STATE_DIR: stateDir };
  const r = spawnSync('bash', ['-c', 'set -euo pipefail; . "$1"; prune_cache "$2" "$3" "$4" "$5"', 'prune', SCRIPT, cache, glob, String(keep), current], { encoding: 'utf8', env });
  return { code: r.status, err: r.stderr };
}

function entry(cache: string, name: string, ageS: number, dir: boolean): string {
  const p = path.join(cache, name);
  if (dir) { fs.mkdirSync(p); fs.writeFileSync(path.join(p, 'bzImage'), 'k'); } else fs.writeFileSync(p, 'i');
  const t = Date.now() / 1000 - ageS;
  fs.utimesSync(p, t, t);
  return p;
}

test('prune_cache keeps the newest, the current, and those in use; removes the rest', async () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-prune-'));
  const k = (i: number): string => `kernel-${String(i).padStart(16, '0')}`;
  const kernels = [0, 1, 2, 3, 4, 5, 6].map((i) => entry(cache, k(i), 100 * i, true)); // k(0) newest
  for (let i = 0; i < 7; i++) fs.writeFileSync(path.join(cache, `build-${String(i).padStart(16, '0')}.log`), 'log');
  fs.mkdirSync(`${kernels[4]}.tmp.123`); // a build in progress: never touched
  // Lab device states (one in the cache, one in the state folder) name kernels 5 and 1; a running
  // process has kernel 6 on its command line.
  fs.mkdirSync(path.join(cache, 'dev-1'));
  fs.writeFileSync(path.join(cache, 'dev-1', 'state.json'), JSON.stringify({ bzImage: path.join(kernels[5], 'bzImage') }));
  fs.mkdirSync(path.join(stateDir, 'lab', 'dev-2'), { recursive: true });
  fs.writeFileSync(path.join(stateDir, 'lab', 'dev-2', 'state.json'), JSON.stringify({ bzImage: path.join(kernels[2], 'bzImage') }));
  const holderWithPath = spawn('bash', ['-c', 'sleep 30; :', path.join(kernels[6], 'bzImage')], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 200));
    const r = prune(cache, 'kernel-*', 2, kernels[3]);
    assert.equal(r.code, 0, r.err);
    const left = fs.readdirSync(cache).filter((n) => n.startsWith('kernel-')).sort();
    assert.deepEqual(left, [k(0), k(1), k(2), k(3), `${k(4)}.tmp.123`, k(5), k(6)], r.err);
    assert.ok(!fs.existsSync(path.join(kernels[4])), 'kernel 4 (old, unused) is gone');
    assert.ok(!fs.existsSync(path.join(cache, `build-${String(4).padStart(16, '0')}.log`)), 'the removed kernel\'s build log goes too');
    assert.ok(fs.existsSync(path.join(cache, `build-${String(0).padStart(16, '0')}.log`)));
    assert.match(r.err, /removing old .*kernel-0+4\n/);
    assert.equal(r.err.split('\n').filter(Boolean).length, 1, r.err);
    // initramfs files: plain files, same rules.
    const imgs = [0, 1, 2, 3].map((i) => entry(cache, `initramfs-${String(i).padStart(16, '0')}.cpio.gz`, 100 * i, false));
    const r2 = prune(cache, 'initramfs-*.cpio.gz', 1, imgs[0]);
    assert.equal(r2.code, 0, r2.err);
    assert.deepEqual(fs.readdirSync(cache).filter((n) => n.startsWith('initramfs-')), [path.basename(imgs[0])]);
    // Nothing to prune: still fine.
    assert.equal(prune(tempDirSync('kml-prune-empty-'), 'kernel-*', 3, '/nowhere').code, 0);
  } finally {
    holderWithPath.kill();
    fs.rmSync(cache, { recursive: true, force: true });
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});
