// What a pty in its default (cooked) mode does, for sessions that asked for a pty: node cannot
// allocate one without native code, so the shell runs on pipes and this class plays the line
// discipline. `adb shell` from a terminal puts the local terminal in raw mode and expects the
// device to echo, edit lines, turn Enter (CR) into a newline, ^C into SIGINT and ^D into EOF,
// and output LF into CR LF. Full-screen programs (vi, top) still need a real pty.

const CR = 0x0d;
const LF = 0x0a;
const BS = 0x08;
const DEL = 0x7f;
const ETX = 0x03; // ^C
const EOT = 0x04; // ^D
const NAK = 0x15; // ^U
const TAB = 0x09;

const ERASE = Buffer.from('\b \b');

export interface CookedTtyHooks {
  /** A finished line (or a ^D-flushed partial one) for the child's stdin. */
  toChild(data: Buffer): Promise<void>;
  /** Bytes for the user's screen (echo). */
  echo(data: Buffer): void;
  /** ^C: interrupt the foreground job. */
  interrupt(): void;
  /** ^D on an empty line: end of input. */
  endOfInput(): void;
}

export class CookedTty {
  private line: number[] = [];

  constructor(private readonly hooks: CookedTtyHooks) {}

  /** Keystrokes from the host. */
  async input(data: Buffer): Promise<void> {
    const echo: number[] = [];
    const flushEcho = () => {
      if (echo.length > 0) this.hooks.echo(Buffer.from(echo.splice(0)));
    };
    for (const b of data) {
      if (b === CR || b === LF) {
        echo.push(CR, LF);
        flushEcho();
        const line = Buffer.from([...this.line.splice(0), LF]);
        await this.hooks.toChild(line);
      } else if (b === DEL || b === BS) {
        if (this.line.length === 0) continue;
        // Drop a whole UTF-8 character (continuation bytes are 10xxxxxx).
        while (this.line.length > 0 && (this.line[this.line.length - 1]! & 0xc0) === 0x80) this.line.pop();
        const last = this.line.pop()!;
        for (const x of ERASE) echo.push(x);
        if (last < 0x20 && last !== TAB) for (const x of ERASE) echo.push(x); // "^X" took two columns
      } else if (b === NAK) {
        while (this.line.length > 0) {
          const last = this.line.pop()!;
          if ((last & 0xc0) === 0x80) continue;
          for (const x of ERASE) echo.push(x);
        }
      } else if (b === ETX) {
        this.line = [];
        echo.push(0x5e, 0x43, CR, LF); // ^C
        flushEcho();
        this.hooks.interrupt();
      } else if (b === EOT) {
        flushEcho();
        if (this.line.length === 0) this.hooks.endOfInput();
        else await this.hooks.toChild(Buffer.from(this.line.splice(0)));
      } else {
        this.line.push(b);
        if (b < 0x20 && b !== TAB) echo.push(0x5e, b + 0x40); // ECHOCTL: ESC shows as ^[
        else echo.push(b);
      }
    }
    flushEcho();
  }

  /** Program output on its way to the screen: LF → CR LF (ONLCR). */
  static output(data: Buffer): Buffer {
    let count = 0;
    for (const b of data) if (b === LF) count++;
    if (count === 0) return data;
    const out = Buffer.allocUnsafe(data.length + count);
    let j = 0;
    for (const b of data) {
      if (b === LF) out[j++] = CR;
      out[j++] = b;
    }
    return out;
  }
}
