// Starting and stopping the shell children of shell:/shell,v2:/exec: services.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import type { Writable } from 'node:stream';
import type { DaemonContext } from '../config.js';

export interface ShellSpec {
  /** '' = no command: a shell reading commands from stdin. */
  command: string;
  /** With no command: ask the shell to be interactive (prompts), as a pty session would be. */
  interactive: boolean;
  term?: string;
  /** stdout and stderr through one pipe, as the single pty of shell v1 / exec gives. */
  mergeStderr: boolean;
}

function childEnv(ctx: DaemonContext, term: string | undefined): NodeJS.ProcessEnv {
  // The launcher's environment wins (the lab guest sets Android's: HOME=/, TMPDIR, PATH);
  // like adbd, fill in the user's identity where it is missing.
  const env: NodeJS.ProcessEnv = { ...process.env };
  try {
    const me = os.userInfo();
    env.HOME ??= me.homedir || '/';
    env.USER ??= me.username;
    env.LOGNAME ??= me.username;
  } catch {
    // no passwd entry (minimal guest): keep what we have
  }
  env.SHELL = ctx.config.shell;
  // adbd sets TMPDIR=/data/local/tmp; only where that exists (not on a plain host).
  if (fs.existsSync('/data/local/tmp')) env.TMPDIR = '/data/local/tmp';
  if (term) env.TERM = term;
  return env;
}

/**
 * `shell -c CMD` (or a shell reading stdin) in its own session (setsid, like adbd's child),
 * cwd /. When stderr is merged, a tiny wrapper execs the real shell with 2>&1 so that both go
 * through one pipe in order; the wrapper's exec keeps the pid.
 */
export function spawnShell(ctx: DaemonContext, spec: ShellSpec): ChildProcess {
  const shell = ctx.config.shell;
  const inner = spec.command !== '' ? ['-c', spec.command] : spec.interactive ? ['-i'] : [];
  const argv = spec.mergeStderr ? ['-c', 'exec "$0" "$@" 2>&1', shell, ...inner] : inner;
  const child = spawn(shell, argv, {
    cwd: '/',
    env: childEnv(ctx, spec.term),
    detached: true, // setsid(): own session and process group, as adbd's fork child does
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  ctx.children.add(child);
  child.once('close', () => ctx.children.delete(child));
  child.once('error', () => ctx.children.delete(child));
  // Writes to a dead child's stdin fail with EPIPE; that is not our error.
  child.stdin?.on('error', () => {});
  return child;
}

/** Send a signal to the child, or to its whole process group (it is a session leader). */
export function signalChild(child: ChildProcess, signal: NodeJS.Signals, wholeGroup: boolean): void {
  if (child.pid === undefined) return;
  // The group may outlive its leader (background jobs), so only the single-process case checks exit.
  if (!wholeGroup && (child.exitCode !== null || child.signalCode !== null)) return;
  try {
    process.kill(wholeGroup ? -child.pid : child.pid, signal);
  } catch {
    // already gone
  }
}

/** SIGHUP the child (v2: the direct child only) or its whole process group (v1/exec: a pty hangup). */
export function hangUp(child: ChildProcess, wholeGroup: boolean): void {
  signalChild(child, 'SIGHUP', wholeGroup);
}

/** Exit status as adbd reports it: the exit code, or 0x80|signal number when killed by a signal. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code & 0xff;
  if (signal) {
    const n = (os.constants.signals as Record<string, number>)[signal];
    if (typeof n === 'number') return 0x80 | n;
  }
  return 1;
}

/** Write to a child's stdin and wait until the pipe accepted it (or the pipe is gone). */
export function writeAndDrain(stdin: Writable | null, data: Buffer): Promise<void> {
  if (!stdin || stdin.destroyed || stdin.writableEnded || data.length === 0) return Promise.resolve();
  if (stdin.write(data)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stdin.off('drain', done);
      stdin.off('close', done);
      stdin.off('error', done);
      resolve();
    };
    stdin.on('drain', done);
    stdin.on('close', done);
    stdin.on('error', done);
  });
}

/** Text adbd sends when it cannot start the shell (shell_service.cpp ReportError). */
export function spawnErrorText(shell: string, err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return `error: exec '${shell}' failed: ${msg}\n`;
}
