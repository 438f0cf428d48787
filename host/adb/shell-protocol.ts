// Pure framing for device shells: shell protocol v2 packets, and the v1 exit-status sentinel used
// when a device does not advertise `shell_v2` (Tradefed's exit-status workaround).
import { randomBytes } from 'node:crypto';

/** shell_protocol.h packet ids. */
export const ShellPacket = { STDIN: 0, STDOUT: 1, STDERR: 2, EXIT: 3, CLOSE_STDIN: 4, WINDOW_SIZE: 5 } as const;

/** Keep stdin packets small: old adbd's shell protocol buffer is a few KiB including the header. */
export const SHELL_V2_MAX_STDIN_CHUNK = 4000;

export function encodeShellPacket(id: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head[0] = id;
  head.writeUInt32LE(data.length, 1);
  return Buffer.concat([head, data]);
}

export interface ShellV2Packet { id: number; data: Buffer }

/** Split as many whole packets as `buf` holds; the remainder waits for more bytes. */
export function decodeShellPackets(buf: Buffer): { packets: ShellV2Packet[]; rest: Buffer } {
  const packets: ShellV2Packet[] = [];
  let off = 0;
  while (buf.length - off >= 5) {
    const len = buf.readUInt32LE(off + 1);
    if (buf.length - off - 5 < len) break;
    packets.push({ id: buf[off], data: buf.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return { packets, rest: buf.subarray(off) };
}

/** Stdin chunks for v2: data packets then close-stdin (so `cat`-like commands see EOF). */
export function encodeShellStdin(stdin: Buffer | undefined): Buffer {
  const parts: Buffer[] = [];
  if (stdin) {
    for (let i = 0; i < stdin.length; i += SHELL_V2_MAX_STDIN_CHUNK) {
      parts.push(encodeShellPacket(ShellPacket.STDIN, stdin.subarray(i, i + SHELL_V2_MAX_STDIN_CHUNK)));
    }
  }
  parts.push(encodeShellPacket(ShellPacket.CLOSE_STDIN));
  return Buffer.concat(parts);
}

export function newSentinelNonce(): string {
  return randomBytes(6).toString('hex');
}

function marker(nonce: string): string {
  return `__KML_RC_${nonce}__`;
}

/**
 * Wrap a command for shell v1 (no exit status on the wire): run it in a subshell — so an `exit N`
 * inside still reaches the marker — then print a newline and a marker carrying `$?`.
 * The newline before `)` keeps a trailing `# comment` in cmd from swallowing the parenthesis.
 */
export function wrapV1Command(cmd: string, nonce: string): string {
  return `(${cmd}\n); printf '\\n${marker(nonce)}%d\\n' "$?"`;
}

/** Take the marker off v1 output: → stdout (exactly what the command printed) + exit code; null if absent. */
export function parseV1Output(out: Buffer, nonce: string): { stdout: Buffer; exitCode: number } | null {
  const text = out.toString('latin1'); // byte-preserving view for the search
  const re = new RegExp(`\\r?\\n${marker(nonce)}(\\d+)\\r?\\n?$`);
  const m = re.exec(text);
  if (!m) return null;
  return { stdout: out.subarray(0, m.index), exitCode: Number(m[1]) };
}
