// The lab's build artifacts: the kernel (scripts/lab/build-kernel) and the guest initramfs
// (scripts/lab/make-initramfs). Both scripts cache their outputs and print the path on stdout;
// this module runs them, building only when the cache misses.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ExitCode, KmlError } from '../errors.js';
import { BUILD_KERNEL_SCRIPT, MAKE_INITRAMFS_SCRIPT } from './paths.js';

export interface KernelArtifacts {
  dir: string;
  bzImage: string;
  release: string;
  /** key=value lines of build.env (timings of the build that produced this output). */
  buildInfo: Record<string, string>;
}

export interface BuildOptions {
  env?: NodeJS.ProcessEnv;
  /** Where the scripts' progress (stderr) goes; default: discarded, kept for the error message. */
  progress?: NodeJS.WritableStream;
  /** Called once when a real (uncached) kernel build starts. */
  onBuildStart?: () => void;
}

interface ScriptResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runScript(script: string, args: string[], opts: BuildOptions): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const env = { ...(opts.env ?? process.env), ...(opts.progress ? { KML_LAB_PROGRESS: '1' } : {}) };
    const child = spawn('bash', [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
      if (stderr.length > 64 * 1024) stderr = stderr.slice(-32 * 1024);
      opts.progress?.write(d);
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1]?.trim() ?? '';
}

export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

export function readKernelDir(dir: string): KernelArtifacts {
  const bzImage = path.join(dir, 'bzImage');
  if (!existsSync(path.join(dir, '.complete')) || !existsSync(bzImage)) {
    throw new KmlError(ExitCode.LAB, `lab kernel output ${dir} is incomplete`, { hint: 'run scripts/lab/build-kernel' });
  }
  const release = readFileSync(path.join(dir, 'kernelrelease'), 'utf8').trim();
  let buildInfo: Record<string, string> = {};
  try {
    buildInfo = parseKeyValues(readFileSync(path.join(dir, 'build.env'), 'utf8'));
  } catch {
    // build.env is informational only
  }
  return { dir, bzImage, release, buildInfo };
}

/** The cached kernel's directory, or undefined when it still has to be built. */
export async function cachedKernel(opts: BuildOptions = {}): Promise<KernelArtifacts | undefined> {
  const r = await runScript(BUILD_KERNEL_SCRIPT, ['--status'], { env: opts.env });
  if (r.code === 0) return readKernelDir(lastLine(r.stdout));
  if (r.code === 1 && r.stdout.trim()) return undefined;
  throw new KmlError(ExitCode.LAB, `cannot build the lab kernel: ${lastLine(r.stderr) || `build-kernel exited ${r.code}`}`, {
    hint: 'run scripts/setup (installs linux-source-6.1 and the build tools)',
  });
}

/** Build the kernel unless cached (about 6 minutes on 2 cores the first time). */
export async function ensureKernel(opts: BuildOptions = {}): Promise<KernelArtifacts> {
  const cached = await cachedKernel(opts);
  if (cached) return cached;
  opts.onBuildStart?.();
  const r = await runScript(BUILD_KERNEL_SCRIPT, [], opts);
  if (r.code !== 0) {
    throw new KmlError(ExitCode.LAB, `lab kernel build failed: ${lastLine(r.stderr) || `exit ${r.code}`}`, {
      hint: 'see the build log named above; scripts/setup installs the build dependencies',
    });
  }
  return readKernelDir(lastLine(r.stdout));
}

/** Build (or reuse) the guest initramfs for a kernel. */
export async function ensureInitramfs(kernel: KernelArtifacts, opts: BuildOptions = {}): Promise<string> {
  const r = await runScript(MAKE_INITRAMFS_SCRIPT, [kernel.dir], { env: opts.env });
  const out = lastLine(r.stdout);
  if (r.code !== 0 || !out || !existsSync(out)) {
    throw new KmlError(ExitCode.LAB, `cannot build the lab initramfs: ${lastLine(r.stderr) || `exit ${r.code}`}`, {
      hint: 'scripts/setup installs busybox-static and mksh',
    });
  }
  return out;
}
