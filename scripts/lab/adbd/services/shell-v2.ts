// `shell,v2,...:CMD`: the shell protocol. Every message both ways is [u8 id][u32le length][data]:
// 0 stdin, 1 stdout, 2 stderr, 3 exit (1 byte), 4 close-stdin, 5 window-size (shell_protocol.h).
// stdout and stderr stay separate and the real exit status is sent before the stream closes.
// With `pty` (adb shell from a terminal) output is merged, as on a pty, and CookedTty echoes and
// edits the input lines.
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { ByteQueue } from '../bytes.js';
import type { DaemonContext } from '../config.js';
import type { AdbStream, CloseReason, Service } from '../stream.js';
import { CookedTty } from './cooked-tty.js';
import { exitStatus, hangUp, signalChild, spawnErrorText, spawnShell, writeAndDrain } from './subprocess.js';

export const ID_STDIN = 0;
export const ID_STDOUT = 1;
export const ID_STDERR = 2;
export const ID_EXIT = 3;
export const ID_CLOSE_STDIN = 4;
export const ID_WINDOW_SIZE = 5;

const HEADER = 5;
/** Window-size payloads are short ASCII ("24x80,0x0"); anything longer is skipped, not buffered. */
const MAX_CONTROL_PAYLOAD = 256;

export function shellPacket(id: number, data: Buffer): Buffer[] {
  const h = Buffer.allocUnsafe(HEADER);
  h.writeUInt8(id, 0);
  h.writeUInt32LE(data.length, 1);
  return data.length > 0 ? [h, data] : [h];
}

export class ShellV2Service implements Service {
  private readonly child: ChildProcess;
  private finished = false;
  private closed = false;
  private readonly inbound = new ByteQueue();
  /** The packet being received: its id and how many payload bytes are still to come. */
  private current: { id: number; left: number } | null = null;
  private readonly tty: CookedTty | null;

  constructor(
    private readonly stream: AdbStream,
    private readonly ctx: DaemonContext,
    spec: { command: string; interactive: boolean; term?: string; tty: boolean },
  ) {
    this.child = spawnShell(ctx, { ...spec, mergeStderr: spec.tty });
    const child = this.child;
    this.tty = spec.tty
      ? new CookedTty({
          toChild: (d) => writeAndDrain(child.stdin, d),
          echo: (d) => {
            for (const part of shellPacket(ID_STDOUT, d)) this.stream.write(part);
          },
          interrupt: () => signalChild(child, 'SIGINT', true),
          endOfInput: () => child.stdin?.end(),
        })
      : null;
    const outputs: Array<[Readable | null, number]> = [
      [this.child.stdout, ID_STDOUT],
      [this.child.stderr, ID_STDERR],
    ];
    const readers = outputs.map(([r]) => r).filter((r): r is Readable => r !== null);
    for (const [out, id] of outputs) {
      if (!out) continue;
      out.on('data', (chunk: Buffer) => {
        let ok = true;
        // On a pty everything the program writes arrives as stdout.
        const packet = this.tty ? shellPacket(ID_STDOUT, CookedTty.output(chunk)) : shellPacket(id, chunk);
        for (const part of packet) ok = this.stream.write(part) && ok;
        if (!ok) {
          for (const r of readers) r.pause();
          void this.stream.waitDrain().then(() => {
            if (!this.closed) for (const r of readers) r.resume();
          });
        }
      });
      out.on('error', () => {});
    }
    this.child.once('error', (err) => {
      // Like adbd's ReportError: the message on stderr, exit status 126.
      this.finish(126, Buffer.from(spawnErrorText(ctx.config.shell, err)));
    });
    this.child.once('close', (code, signal) => this.finish(exitStatus(code, signal)));
  }

  private finish(status: number, stderrText?: Buffer): void {
    if (this.finished) return;
    this.finished = true;
    if (stderrText) for (const part of shellPacket(ID_STDERR, stderrText)) this.stream.write(part);
    for (const part of shellPacket(ID_EXIT, Buffer.from([status & 0xff]))) this.stream.write(part);
    this.stream.end();
  }

  async onData(data: Buffer): Promise<void> {
    this.inbound.push(data);
    while (!this.closed) {
      if (!this.current) {
        if (this.inbound.length < HEADER) return;
        const h = this.inbound.take(HEADER);
        this.current = { id: h.readUInt8(0), left: h.readUInt32LE(1) };
      }
      const cur = this.current;
      if (cur.id === ID_STDIN) {
        // Forward stdin as it arrives; a big packet need not be buffered whole.
        if (cur.left > 0) {
          if (this.inbound.length === 0) return;
          const piece = this.inbound.take(Math.min(cur.left, this.inbound.length));
          cur.left -= piece.length;
          if (this.tty) await this.tty.input(piece);
          else await writeAndDrain(this.child.stdin, piece);
        }
        if (cur.left === 0) this.current = null;
        continue;
      }
      if (cur.left > MAX_CONTROL_PAYLOAD || cur.id !== ID_WINDOW_SIZE) {
        // Not ours to act on (stdout/stderr/exit from the host, unknown ids, huge control data): skip it.
        const n = Math.min(cur.left, this.inbound.length);
        this.inbound.skip(n);
        cur.left -= n;
        if (cur.left > 0) return;
        this.current = null;
        // adbd cannot close just the input of a pty either, so it ignores close-stdin there.
        if (cur.id === ID_CLOSE_STDIN && !this.tty) this.child.stdin?.end();
        continue;
      }
      // Window size: we have no pty to resize; consume it whole.
      if (this.inbound.length < cur.left) return;
      this.inbound.skip(cur.left);
      this.current = null;
    }
  }

  onClose(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    this.inbound.clear();
    if (!this.finished) {
      // adbd: "protocol FD died, sending SIGHUP" to the direct child, then closes the pipes.
      hangUp(this.child, false);
      this.ctx.log.info('shell v2 hung up', { pid: this.child.pid, reason });
    }
    this.child.stdin?.destroy();
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
  }
}
