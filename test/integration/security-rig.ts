// Shared pieces of the security tests (security-*.test.ts): run the real CLI as a subprocess (with
// a chosen umask, cwd and HOME), fingerprint a folder tree before/after, check a store holds only
// what the store layout allows, and check that a failure is a clear message, not a stack trace.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { KML_BIN } from '../helpers/paths.js';

export interface CliResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Exit codes host/errors.ts documents (70 = internal error is deliberately not in the list). */
export const DOCUMENTED_EXIT_CODES = [0, 1, 2, 3, 4, 5, 6, 7];

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Octal text, e.g. '077': kml runs under `sh -c 'umask 077; exec node …'`. */
  umask?: string;
  timeoutMs?: number;
}

/** `node bin/kml.js ARGS` (through `sh -c 'umask U; exec "$0" "$@"'` when a umask is given; args stay argv words). */
export function runKml(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const argv = [KML_BIN, ...args];
    const child = opts.umask !== undefined
      ? spawn('/bin/sh', ['-c', `umask ${opts.umask} && exec "$0" "$@"`, process.execPath, ...argv], { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, argv, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString('utf8'); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** No stack trace, no "internal error", and a documented exit code. */
export function assertClearOutcome(r: CliResult, what: string, allowed: readonly number[] = DOCUMENTED_EXIT_CODES): void {
  const all = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.signal, null, `${what}: killed by ${r.signal} (hung?)\n${all.slice(-2000)}`);
  assert.ok(allowed.includes(r.code ?? -1), `${what}: exit ${r.code} not in ${allowed.join(',')}\n${all.slice(-2000)}`);
  assert.doesNotMatch(all, /^\s+at .+:\d+:\d+\)?$/m, `${what}: stack trace\n${all.slice(-2000)}`);
  assert.doesNotMatch(all, /internal error|this is a bug in kml/i, `${what}: internal error\n${all.slice(-2000)}`);
}

/** rel path → "type mode size sha256" for every entry under root (symlinks not followed). */
export async function treeState(root: string, skip: (rel: string) => boolean = () => false): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(dir: string): Promise<void> {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const abs = path.join(dir, n);
      const rel = path.relative(root, abs);
      if (skip(rel)) continue;
      try {
        const st = await fs.lstat(abs);
        const mode = (st.mode & 0o7777).toString(8);
        if (st.isSymbolicLink()) out.set(rel, `link ${mode} ${await fs.readlink(abs)}`);
        else if (st.isDirectory()) {
          out.set(rel, `dir ${mode}`);
          await walk(abs);
        } else if (st.isFile()) {
          // big (sparse) files: size + mtime say enough
          const digest = st.size > 64 * 1024 * 1024 ? '-' : createHash('sha256').update(await fs.readFile(abs)).digest('hex');
          out.set(rel, `file ${mode} ${st.size} ${digest} ${st.mtimeMs}`);
        } else out.set(rel, `other ${mode} ${st.mtimeMs}`);
      } catch (e) {
        // Gone between readdir and here: a live writer's temp file renamed into place (the
        // agent's heartbeat.tmp). Not part of the tree's state.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        out.delete(rel);
      }
    }
  }
  await walk(root);
  return out;
}

/** What changed between two treeState() maps: "+path", "-path", "~path". */
export function treeDiff(before: Map<string, string>, after: Map<string, string>): string[] {
  const d: string[] = [];
  for (const [k, v] of after) if (!before.has(k)) d.push(`+${k}`); else if (before.get(k) !== v) d.push(`~${k}`);
  for (const k of before.keys()) if (!after.has(k)) d.push(`-${k}`);
  return d.sort();
}

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const RUN_ID = '\\d{8}T\\d{6}Z-[0-9a-f]{4,16}';
const MEM = '(meminfo|vmstat|buddyinfo|zoneinfo|slabinfo|pagetypeinfo)\\.txt';
const SNAP = `(kmemleak_log_\\d+\\.txt|meta_\\d+\\.json|kmsg_\\d+\\.txt|mem_\\d+|mem_\\d+/${MEM})`;
/** Every path the store layout (host/store/layout.ts, README "Store layout") allows under <out>. */
const STORE_PATH = new RegExp(
  `^[A-Za-z0-9._-]+(/\\.kml-collect\\.lock\\.\\d+|/${RUN_ID}(/(run\\.json|manifest\\.jsonl|kml\\.log|boot-${UUID}(/(${SNAP}|conflict-[0-9a-f]{6,64}(/${SNAP})?))?))?)?$`,
);

/** Paths under `out` that the layout does not allow, plus any symlink or non-regular file. */
export async function storeViolations(out: string): Promise<string[]> {
  const bad: string[] = [];
  for (const [rel, desc] of await treeState(out)) {
    const p = rel.split(path.sep).join('/');
    if (!STORE_PATH.test(p)) bad.push(`unexpected path ${JSON.stringify(p)}`);
    if (!desc.startsWith('file ') && !desc.startsWith('dir ')) bad.push(`not a plain file or folder: ${p} (${desc})`);
  }
  return bad;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
