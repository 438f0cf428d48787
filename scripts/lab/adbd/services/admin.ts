// `root:`, `unroot:` and `reboot:[target]`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { DaemonContext } from '../config.js';
import type { AdbStream, CloseReason, Service } from '../stream.js';

/** Are we root (the lab guest and host runs; not after --shell-uid)? */
const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * `root:` / `unroot:`, as daemon/restart_service.cpp: answer, and when service.adb.root changes
 * (a debuggable build, --root-prop), write it and exit once the answer is out: the device's init
 * starts adbd again, as root or not. The host sees the transport drop and come back.
 */
export class RootService implements Service {
  constructor(stream: AdbStream, ctx: DaemonContext, wantRoot: boolean) {
    let answer: string;
    let prop: string | null = null;
    if (wantRoot) {
      if (isRoot()) answer = 'adbd is already running as root\n';
      else if (!ctx.config.rootProp) answer = 'adbd cannot run as root in production builds\n';
      else { prop = '1'; answer = 'restarting adbd as root\n'; }
    } else if (!isRoot()) answer = 'adbd not running as root\n';
    else {
      // Without --root-prop a root adbd is an eng build's: it would come back as root anyway, so
      // it answers and stays (there is no init here to start it again).
      answer = 'restarting adbd as non root\n';
      if (ctx.config.rootProp) prop = '0';
    }
    if (prop !== null && ctx.config.rootProp) {
      try {
        fs.writeFileSync(ctx.config.rootProp, prop); // in place: the file is ours, its folder may not be
      } catch (err) {
        ctx.log.error('cannot set service.adb.root', { file: ctx.config.rootProp, err: String(err) });
        answer = `adbd cannot set service.adb.root: ${err instanceof Error ? err.message : String(err)}\n`;
        prop = null;
      }
    }
    stream.write(Buffer.from(answer));
    stream.end();
    if (prop !== null) {
      ctx.log.info(prop === '1' ? 'restarting as root' : 'restarting as non root', {});
      ctx.restart?.(wantRoot ? 'root:' : 'unroot:');
    }
  }

  onData(): void {}

  onClose(): void {}
}

/**
 * Close the stream (so the host sees the command accepted), then run the configured reboot
 * command through the shell, detached. With no command (host mode) it only closes.
 */
export class RebootService implements Service {
  private launched = false;

  constructor(
    stream: AdbStream,
    private readonly ctx: DaemonContext,
    private readonly target: string,
  ) {
    stream.end();
  }

  onData(): void {}

  onClose(_reason: CloseReason): void {
    if (this.launched) return;
    this.launched = true;
    const command = this.ctx.config.rebootCommand;
    this.ctx.log.info('reboot requested', { target: this.target, command });
    if (!command) return;
    // A short delay lets the CLSE reach the host before the guest goes down.
    setTimeout(() => {
      try {
        const child = spawn(this.ctx.config.shell, ['-c', command], { cwd: '/', detached: true, stdio: 'ignore' });
        child.on('error', (err) => this.ctx.log.error('reboot command failed to start', { err: err.message }));
        child.unref();
      } catch (err) {
        this.ctx.log.error('reboot command failed to start', { err: String(err) });
      }
    }, 200).unref();
  }
}
