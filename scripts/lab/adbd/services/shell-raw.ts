// `shell:CMD` (protocol v1) and `exec:CMD`: raw bytes both ways, stdout and stderr merged,
// no exit status; the stream closes when the command is done. Real adbd runs these on a raw
// pty; we use one pipe for both outputs, so output is binary-safe. `shell:` without a command
// gets a cooked pty on a real device; CookedTty plays that part. When the host closes the
// stream the whole process group gets SIGHUP, as a pty hangup delivers it.
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { DaemonContext } from '../config.js';
import type { AdbStream, CloseReason, Service } from '../stream.js';
import { CookedTty } from './cooked-tty.js';
import { hangUp, signalChild, spawnErrorText, spawnShell, writeAndDrain } from './subprocess.js';

export class RawShellService implements Service {
  private readonly child: ChildProcess;
  private exited = false;
  private closed = false;
  private readonly tty: CookedTty | null;

  constructor(
    private readonly stream: AdbStream,
    private readonly ctx: DaemonContext,
    spec: { command: string; interactive: boolean; term?: string; tty: boolean },
  ) {
    this.child = spawnShell(ctx, { ...spec, mergeStderr: true });
    const child = this.child;
    this.tty = spec.tty
      ? new CookedTty({
          toChild: (d) => writeAndDrain(child.stdin, d),
          echo: (d) => this.stream.write(d),
          interrupt: () => signalChild(child, 'SIGINT', true),
          endOfInput: () => child.stdin?.end(),
        })
      : null;
    const outputs = [this.child.stdout, this.child.stderr].filter((s): s is Readable => s !== null);
    for (const out of outputs) {
      out.on('data', (chunk: Buffer) => {
        if (!this.stream.write(this.tty ? CookedTty.output(chunk) : chunk)) {
          // Host is slow: stop reading so the child blocks on its pipe.
          for (const o of outputs) o.pause();
          void this.stream.waitDrain().then(() => {
            if (!this.closed) for (const o of outputs) o.resume();
          });
        }
      });
      out.on('error', () => {});
    }
    this.child.once('error', (err) => {
      this.exited = true;
      this.stream.write(Buffer.from(spawnErrorText(ctx.config.shell, err)));
      this.stream.end();
    });
    this.child.once('close', () => {
      this.exited = true;
      this.stream.end();
    });
  }

  onData(data: Buffer): Promise<void> {
    return this.tty ? this.tty.input(data) : writeAndDrain(this.child.stdin, data);
  }

  onClose(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.exited) {
      hangUp(this.child, true);
      this.ctx.log.info('shell hung up', { pid: this.child.pid, reason });
    }
    // Like closing the pty master: our ends go away, a child ignoring SIGHUP gets EPIPE/EOF.
    this.child.stdin?.destroy();
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
  }
}
