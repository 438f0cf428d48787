// The HTML report loads in a real browser (headless Chromium) as one self-contained file and its
// charts are in the rendered DOM. Network is disabled for the browser: a report that needed any
// external resource would show up as missing content, and the DOM check below would fail.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIXTURES, KML_BIN } from '../helpers/paths.js';

const CHROMIUM = '/usr/bin/chromium';
const STORE = path.join(FIXTURES, 'runs', 'store-slab-leak', '127.0.0.1_5555', '20251124T160000Z-ab12');
const CHARTS = ['chart-memory', 'chart-kernel', 'chart-buddy', 'chart-groups', 'chart-events', 'chart-slab'];

function chromium(args: string[], profile: string): { code: number | null; out: string; err: string } {
  const r = spawnSync(CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`,
    '--host-resolver-rules=MAP * ~NOTFOUND', '--proxy-server=127.0.0.1:9', ...args,
  ], { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

test('HTML report renders in headless Chromium with every chart', { timeout: 180_000, skip: !fs.existsSync(CHROMIUM) && 'chromium not installed' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-report-html-'));
  try {
    const html = path.join(dir, 'report.html');
    const r = spawnSync(process.execPath, [KML_BIN, 'report', STORE, '--format', 'html', '--out', html], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);

    const dom = chromium(['--dump-dom', `file://${html}`], path.join(dir, 'profile-dom'));
    assert.equal(dom.code, 0, dom.err.slice(-2000));
    for (const id of CHARTS) {
      const m = new RegExp(`<svg id="${id}"[^>]*>([\\s\\S]*?)</svg>`).exec(dom.out);
      assert.ok(m, `${id} is in the rendered DOM`);
      assert.doesNotMatch(m[0], /data-empty="true"/, `${id} has data`);
      assert.match(m[1], /<(path|rect|circle)[ >]/, `${id} draws something`);
    }
    assert.match(dom.out, /<path class="series" data-name="SUnreclaim"/);
    assert.match(dom.out, /<line class="marker"/, 'the LMK kill is marked on the memory charts');
    assert.match(dom.out, /Kernel slab leak/);
    assert.match(dom.out, /memory leak in kml_leak_work \[kml_leaky\]/);

    const png = path.join(dir, 'report.png');
    const shot = chromium([`--screenshot=${png}`, '--window-size=1280,2600', '--hide-scrollbars', `file://${html}`], path.join(dir, 'profile-shot'));
    assert.equal(shot.code, 0, shot.err.slice(-2000));
    const buf = fs.readFileSync(png);
    assert.equal(buf.subarray(1, 4).toString('latin1'), 'PNG');
    assert.equal(buf.readUInt32BE(16), 1280, 'screenshot width');
    assert.ok(buf.length > 40_000, `a page with charts is not a blank image (${buf.length} bytes)`);
    if (process.env.KML_KEEP_SCREENSHOT) fs.copyFileSync(png, process.env.KML_KEEP_SCREENSHOT);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
