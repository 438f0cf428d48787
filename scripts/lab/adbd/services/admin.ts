// `root:` and `reboot:[target]`.
import { spawn } from 'node:child_process';
import type { DaemonContext } from '../config.js';
import type { AdbStream, CloseReason, Service } from '../stream.js';

/** We always run as the lab's root already; the text is adbd's (daemon/restart_service.cpp). */
export class RootService implements Service {
  constructor(stream: AdbStream) {
    stream.write(Buffer.from('adbd is already running as root\n'));
    stream.end();
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
