// Protocol-level tests of our adbd on a raw TCP socket (no adb server in between): flow control,
// buffering, payload negotiation, hang-up of children, and abuse. After every abuse case the
// daemon must still serve a fresh connection AND a stream that was already open on another one.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawnHostAdbd, type SpawnedAdbd } from '../helpers/host-adbd.js';
import { startAdbServer } from '../helpers/adb-server.js';

const T = { timeout: 30_000 };

// An independent little codec (not the daemon's), so the tests do not share its bugs.
const CNXN = 0x4e584e43;
const OPEN = 0x4e45504f;
const OKAY = 0x59414b4f;
const CLSE = 0x45534c43;
const WRTE = 0x45545257;
const VERSION = 0x01000001;

interface Pkt {
  cmd: number;
  arg0: number;
  arg1: number;
  data: Buffer;
}

function packet(cmd: number, arg0: number, arg1: number, data: Buffer = Buffer.alloc(0), override: { magic?: number; length?: number } = {}): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(cmd >>> 0, 0);
  h.writeUInt32LE(arg0 >>> 0, 4);
  h.writeUInt32LE(arg1 >>> 0, 8);
  h.writeUInt32LE(override.length ?? data.length, 12);
  h.writeUInt32LE(0, 16);
  h.writeUInt32LE(override.magic ?? (cmd ^ 0xffffffff) >>> 0, 20);
  return Buffer.concat([h, data]);
}

function syncRequest(id: string, payload: Buffer | string): Buffer {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const h = Buffer.alloc(8);
  h.write(id, 0, 'latin1');
  h.writeUInt32LE(p.length, 4);
  return Buffer.concat([h, p]);
}

function shellPacket(id: number, data: Buffer | string): Buffer {
  const d = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const h = Buffer.alloc(5);
  h[0] = id;
  h.writeUInt32LE(d.length, 1);
  return Buffer.concat([h, d]);
}

/** Split shell v2 output into stdout, stderr and the exit code. */
function parseShellV2(buf: Buffer): { stdout: string; stderr: string; exit: number | null } {
  let stdout = '';
  let stderr = '';
  let exit: number | null = null;
  let off = 0;
  while (off + 5 <= buf.length) {
    const id = buf[off]!;
    const len = buf.readUInt32LE(off + 1);
    const data = buf.subarray(off + 5, off + 5 + len);
    if (id === 1) stdout += data.toString();
    else if (id === 2) stderr += data.toString();
    else if (id === 3) exit = data[0]!;
    off += 5 + len;
  }
  return { stdout, stderr, exit };
}

class RawConn {
  private buf = Buffer.alloc(0);
  private readonly packets: Pkt[] = [];
  private wake: (() => void) | null = null;
  closed = false;
  private nextId = 100;
  maxPayload = 0;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 24) {
        const len = this.buf.readUInt32LE(12);
        if (this.buf.length < 24 + len) break;
        this.packets.push({ cmd: this.buf.readUInt32LE(0), arg0: this.buf.readUInt32LE(4), arg1: this.buf.readUInt32LE(8), data: this.buf.subarray(24, 24 + len) });
        this.buf = this.buf.subarray(24 + len);
      }
      this.wake?.();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  static async connect(port: number): Promise<RawConn> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawConn(socket);
  }

  /** Connect and exchange CNXN; returns the device banner. */
  static async online(port: number, maxPayload = 1024 * 1024): Promise<{ conn: RawConn; banner: string; deviceMax: number }> {
    const conn = await RawConn.connect(port);
    conn.send(packet(CNXN, VERSION, maxPayload, Buffer.from('host::features=shell_v2,stat_v2\0')));
    const reply = await conn.waitFor((p) => p.cmd === CNXN);
    conn.maxPayload = Math.min(maxPayload, reply.arg1);
    return { conn, banner: reply.data.toString(), deviceMax: reply.arg1 };
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The first received packet matching `pred` (removed from the inbox). */
  async waitFor(pred: (p: Pkt) => boolean, timeoutMs = 5000): Promise<Pkt> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.packets.findIndex(pred);
      if (i >= 0) return this.packets.splice(i, 1)[0]!;
      if (this.closed) throw new Error('connection closed while waiting for a packet');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a packet');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** True if a matching packet arrives within ms (it is left in the inbox). */
  async sees(pred: (p: Pkt) => boolean, ms: number): Promise<boolean> {
    try {
      const p = await this.waitFor(pred, ms);
      this.packets.unshift(p);
      return true;
    } catch {
      return false;
    }
  }

  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  /** OPEN a service; resolves with the device's id, or null if it answered CLSE. */
  async open(service: string): Promise<{ local: number; remote: number } | null> {
    const local = this.nextId++;
    this.send(packet(OPEN, local, 0, Buffer.from(service + '\0')));
    const reply = await this.waitFor((p) => (p.cmd === OKAY || p.cmd === CLSE) && p.arg1 === local);
    return reply.cmd === OKAY ? { local, remote: reply.arg0 } : null;
  }

  write(s: { local: number; remote: number }, data: Buffer): void {
    this.send(packet(WRTE, s.local, s.remote, data));
  }

  /** WRTE and wait for its OKAY (honouring flow control). */
  async writeAcked(s: { local: number; remote: number }, data: Buffer): Promise<void> {
    this.write(s, data);
    await this.waitFor((p) => p.cmd === OKAY && p.arg1 === s.local);
  }

  /** Read one WRTE of this stream and acknowledge it. */
  async read(s: { local: number; remote: number }, timeoutMs = 5000): Promise<Buffer> {
    const p = await this.waitFor((x) => x.cmd === WRTE && x.arg1 === s.local, timeoutMs);
    this.send(packet(OKAY, s.local, s.remote));
    return p.data;
  }

  /** Everything the stream sends until the device closes it. */
  async readAll(s: { local: number; remote: number }, timeoutMs = 10_000): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (;;) {
      const p = await this.waitFor((x) => (x.cmd === WRTE || x.cmd === CLSE) && x.arg1 === s.local, timeoutMs);
      if (p.cmd === CLSE) return Buffer.concat(parts);
      parts.push(p.data);
      this.send(packet(OKAY, s.local, s.remote));
    }
  }

  close(s: { local: number; remote: number }): void {
    this.send(packet(CLSE, s.local, s.remote));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    // A zombie still answers kill(0); look at its state too.
    let zombie = false;
    try {
      zombie = /^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch {
      return true;
    }
    if (zombie || !pidAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('adbd wire protocol on a raw socket', () => {
  let adbd: SpawnedAdbd;
  let tmp: string;
  // A stream opened before the abuse, on its own connection: it must keep working throughout.
  let bystander: RawConn;
  let catStream: { local: number; remote: number };
  let pings = 0;

  async function assertHealthy(): Promise<void> {
    assert.equal(adbd.exitCode(), null, `adbd died: ${adbd.output().slice(-2000)}`);
    // 1. a fresh connection is served
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = await conn.open('shell,v2,raw:echo fresh');
      assert.ok(s, 'fresh connection: shell refused');
      const r = parseShellV2(await conn.readAll(s));
      assert.deepEqual(r, { stdout: 'fresh\n', stderr: '', exit: 0 });
    } finally {
      conn.destroy();
    }
    // 2. the stream that was already open on another connection still echoes
    const msg = `ping ${++pings}\n`;
    await bystander.writeAcked(catStream, shellPacket(0, msg));
    let echoed = '';
    while (echoed.length < msg.length) echoed += parseShellV2(await bystander.read(catStream)).stdout;
    assert.equal(echoed, msg);
  }

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kml-adbd-proto-'));
    adbd = await spawnHostAdbd({ args: ['--model', 'proto_test'] });
    ({ conn: bystander } = await RawConn.online(adbd.port));
    const s = await bystander.open('shell,v2,raw:cat');
    assert.ok(s);
    catStream = s;
  });

  after(async () => {
    bystander?.destroy();
    await adbd?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  // ---- handshake and framing ----

  test('CNXN reply: version, our max payload, banner with features', T, async () => {
    const { conn, banner, deviceMax } = await RawConn.online(adbd.port);
    conn.destroy();
    assert.equal(deviceMax, 1024 * 1024);
    assert.match(banner, /^device::ro\.product\.name=kml_lab;ro\.product\.model=proto_test;ro\.product\.device=kml_lab;features=/);
    assert.match(banner, /features=.*shell_v2/);
    assert.doesNotMatch(banner, /\babb\b|\bcmd\b|apex|sendrecv/);
  });

  test('payload size is negotiated down to the host maximum', T, async () => {
    const file = path.join(tmp, 'negotiate.bin');
    fs.writeFileSync(file, Buffer.alloc(100_000, 7));
    const { conn } = await RawConn.online(adbd.port, 4096);
    try {
      const s = (await conn.open(`exec:cat '${file}'`))!;
      let total = 0;
      for (;;) {
        const p = await conn.waitFor((x) => (x.cmd === WRTE || x.cmd === CLSE) && x.arg1 === s.local);
        if (p.cmd === CLSE) break;
        assert.ok(p.data.length <= 4096, `WRTE of ${p.data.length} bytes`);
        total += p.data.length;
        conn.send(packet(OKAY, s.local, s.remote));
      }
      assert.equal(total, 100_000);
    } finally {
      conn.destroy();
    }
  });

  test('only one WRTE per stream is in flight until the host says OKAY', T, async () => {
    const { conn } = await RawConn.online(adbd.port, 4096);
    try {
      const s = (await conn.open('exec:head -c 200000 /dev/zero'))!;
      await conn.waitFor((p) => p.cmd === WRTE && p.arg1 === s.local);
      assert.equal(await conn.sees((p) => p.cmd === WRTE && p.arg1 === s.local, 400), false, 'second WRTE before OKAY');
      conn.send(packet(OKAY, s.local, s.remote));
      const next = await conn.waitFor((p) => p.cmd === WRTE && p.arg1 === s.local);
      assert.ok(next.data.length > 0);
    } finally {
      conn.destroy();
    }
    await assertHealthy();
  });

  test('a child writing faster than the host reads is held back (bounded memory), and gets SIGHUP on CLSE', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('shell:echo $$; exec cat /dev/zero'))!;
      const first = await conn.waitFor((p) => p.cmd === WRTE && p.arg1 === s.local);
      const pid = Number(/^(\d+)/.exec(first.data.toString('latin1'))![1]);
      assert.ok(pid > 0 && pidAlive(pid));
      // No OKAY for a while: the daemon must not buffer cat's endless output.
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(rssKiB(adbd.pid) < 300 * 1024, `adbd RSS ${rssKiB(adbd.pid)} KiB`);
      conn.close(s);
      assert.ok(await waitGone(pid), `shell child ${pid} survived CLSE`);
    } finally {
      conn.destroy();
    }
    await assertHealthy();
  });

  test('shell v2 child gets SIGHUP when the host closes the stream', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('shell,v2,raw:echo $$; exec sleep 600'))!;
      const out = parseShellV2(await conn.read(s));
      const pid = Number(out.stdout.trim());
      assert.ok(pid > 0 && pidAlive(pid));
      conn.close(s);
      assert.ok(await waitGone(pid), `v2 child ${pid} survived CLSE`);
    } finally {
      conn.destroy();
    }
  });

  test('children of a dropped connection get SIGHUP', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    const s = (await conn.open('shell:echo $$; exec sleep 600'))!;
    const pid = Number(/^(\d+)/.exec((await conn.read(s)).toString())![1]);
    assert.ok(pidAlive(pid));
    conn.destroy();
    assert.ok(await waitGone(pid), `child ${pid} survived the connection`);
    await assertHealthy();
  });

  test('shell v2: stdin packets, close-stdin and window-size are honoured', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('shell,v2,raw:cat; echo end >&2; exit 9'))!;
      // stdin split oddly: a packet header in one WRTE, its payload across two more
      const msg = shellPacket(0, 'hello world\n');
      await conn.writeAcked(s, msg.subarray(0, 3));
      await conn.writeAcked(s, msg.subarray(3, 9));
      await conn.writeAcked(s, Buffer.concat([msg.subarray(9), shellPacket(5, '24x80,0x0'), shellPacket(4, '')]));
      const r = parseShellV2(await conn.readAll(s));
      assert.deepEqual(r, { stdout: 'hello world\n', stderr: 'end\n', exit: 9 });
    } finally {
      conn.destroy();
    }
  });

  test('shell: with no command is an interactive shell reading stdin', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('shell:'))!;
      await conn.writeAcked(s, Buffer.from('echo hi-$((40+2))\nexit\n'));
      const out = (await conn.readAll(s)).toString();
      assert.match(out, /hi-42/);
    } finally {
      conn.destroy();
    }
  });

  test('shell,v2,pty: behaves like a cooked terminal (echo, CR -> newline, ^C, erase, LF -> CR LF)', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('shell,v2,TERM=xterm,pty:'))!;
      const screen = async (until: RegExp) => {
        let text = '';
        while (!until.test(text)) {
          const r = parseShellV2(await conn.read(s).catch((e: Error) => Promise.reject(new Error(`${e.message}; screen so far: ${JSON.stringify(text)}`))));
          assert.equal(r.stderr, '', 'a pty has no separate stderr');
          text += r.stdout;
        }
        return text;
      };
      await conn.writeAcked(s, shellPacket(0, 'echo v-$((6*7))\r'));
      const first = await screen(/v-42\r\n/);
      assert.match(first, /echo v-\$\(\(6\*7\)\)\r\n/, 'typed line is echoed');
      // ^C interrupts the foreground command, not the shell
      // (the output, not the echo of the typed line, says the sleep has started)
      await conn.writeAcked(s, shellPacket(0, "sh -c 'echo sl''eeping; exec sleep 30'\r"));
      await screen(/sleeping\r\n/);
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      await conn.writeAcked(s, shellPacket(0, '\x03'));
      await conn.writeAcked(s, shellPacket(0, 'ech\x7f\x7f\x7fecho after\r'));
      const after = await screen(/(?<!echo )after\r\n/);
      assert.ok(Date.now() - t0 < 10_000, 'sleep 30 was interrupted');
      assert.match(after, /\^C/);
      // erase takes whole UTF-8 characters; ^U kills the line
      await conn.writeAcked(s, shellPacket(0, 'echo h\u00e9llo\x7f\x7f\x7fp\r'));
      assert.match(await screen(/h\u00e9p\r\n/), /h\u00e9p\r\n/);
      await conn.writeAcked(s, shellPacket(0, 'printf garbage\x15echo clean\r'));
      // a line of its own saying "clean" comes only from `echo clean` (`printf garbageecho clean` would not print it)
      const killed = await screen(/(?<!echo )clean\r\n/);
      assert.equal(killed.split('\b \b').length - 1, 'printf garbage'.length, 'one erase per killed character');
      await conn.writeAcked(s, shellPacket(0, 'exit 6\r'));
      const rest = parseShellV2(await conn.readAll(s));
      assert.equal(rest.exit, 6);
    } finally {
      conn.destroy();
    }
  });

  test('exec: stdin and stdout are binary-safe', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 131 + 7) & 0xff));
      const s = (await conn.open(`exec:head -c ${bytes.length}`))!;
      for (let off = 0; off < bytes.length; off += 30_000) await conn.writeAcked(s, bytes.subarray(off, off + 30_000));
      const back = await conn.readAll(s);
      assert.equal(back.length, bytes.length);
      assert.ok(back.equals(bytes));
    } finally {
      conn.destroy();
    }
  });

  // ---- sync framing ----

  test('sync: a request split byte by byte across WRTEs is understood', T, async () => {
    const file = path.join(tmp, 'split.txt');
    fs.writeFileSync(file, 'twelve bytes');
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('sync:'))!;
      const req = syncRequest('STAT', file);
      for (let i = 0; i < req.length; i++) await conn.writeAcked(s, req.subarray(i, i + 1));
      const reply = await conn.read(s);
      assert.equal(reply.subarray(0, 4).toString(), 'STAT');
      assert.equal(reply.readUInt32LE(8), 12);
      assert.equal(reply.readUInt32LE(4) & 0o170000, 0o100000);
    } finally {
      conn.destroy();
    }
  });

  test('sync: several requests merged into one WRTE are answered in order', T, async () => {
    const file = path.join(tmp, 'merged.txt');
    fs.writeFileSync(file, 'abc');
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('sync:'))!;
      await conn.writeAcked(s, Buffer.concat([syncRequest('STAT', file), syncRequest('STA2', file), syncRequest('RECV', file), syncRequest('QUIT', '')]));
      const all = await conn.readAll(s);
      assert.equal(all.subarray(0, 4).toString(), 'STAT');
      assert.equal(all.subarray(16, 20).toString(), 'STA2');
      assert.equal(all.readUInt32LE(20), 0, 'STA2 error field');
      assert.equal(Number(all.readBigUInt64LE(16 + 40)), 3, 'STA2 size');
      const recv = all.subarray(16 + 72);
      assert.equal(recv.subarray(0, 4).toString(), 'DATA');
      assert.equal(recv.subarray(8, 8 + recv.readUInt32LE(4)).toString(), 'abc');
      assert.equal(recv.subarray(11, 15).toString(), 'DONE');
      assert.equal(recv.length, 11 + 8, 'nothing after DONE; QUIT closed the stream');
    } finally {
      conn.destroy();
    }
  });

  test('sync: a small RECV and a LIST each come back in one WRTE, ending with DONE', T, async () => {
    // Split replies make the adb server hold the tail behind Nagle (~40 ms per file in `adb pull dir`).
    const dir = path.join(tmp, 'one-wrte');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'f.txt'), 'x'.repeat(5000));
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('sync:'))!;
      await conn.writeAcked(s, syncRequest('RECV', path.join(dir, 'f.txt')));
      const recv = await conn.read(s);
      assert.equal(recv.length, 8 + 5000 + 8);
      assert.equal(recv.subarray(5008, 5012).toString(), 'DONE');
      await conn.writeAcked(s, syncRequest('LIST', dir));
      const list = await conn.read(s);
      assert.equal(list.subarray(0, 4).toString(), 'DENT');
      assert.equal(list.subarray(list.length - 20, list.length - 16).toString(), 'DONE');
      assert.equal(list.length, 3 * 20 + '.'.length + '..'.length + 'f.txt'.length + 20);
    } finally {
      conn.destroy();
    }
  });

  test('sync: STA2 of a missing path carries ENOENT; STAT v1 is all zeros', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('sync:'))!;
      const missing = path.join(tmp, 'no', 'such');
      await conn.writeAcked(s, Buffer.concat([syncRequest('STA2', missing), syncRequest('STAT', missing)]));
      let reply = Buffer.alloc(0);
      while (reply.length < 72 + 16) reply = Buffer.concat([reply, await conn.read(s)]);
      assert.equal(reply.readUInt32LE(4), os.constants.errno.ENOENT);
      assert.deepEqual([...reply.subarray(72 + 4, 72 + 16)], new Array(12).fill(0));
    } finally {
      conn.destroy();
    }
  });

  // ---- abuse ----

  test('bad magic drops that connection only', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    conn.send(packet(WRTE, 1, 1, Buffer.from('x'), { magic: 0x12345678 }));
    assert.ok(await conn.waitClosed(), 'connection should be dropped');
    await assertHealthy();
  });

  test('oversize payload length drops that connection only', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    conn.send(packet(WRTE, 1, 1, Buffer.alloc(0), { length: 64 * 1024 * 1024 }));
    assert.ok(await conn.waitClosed());
    // above the negotiated (4096) but below adb's absolute maximum: also refused
    const small = await RawConn.online(adbd.port, 4096);
    small.conn.send(packet(WRTE, 1, 1, Buffer.alloc(8192)));
    assert.ok(await small.conn.waitClosed());
    await assertHealthy();
  });

  test('unknown command and garbage bytes drop that connection only', T, async () => {
    const a = await RawConn.online(adbd.port);
    a.conn.send(packet(0x4b4e4a55, 0, 0)); // "UJNK" with a valid magic
    assert.ok(await a.conn.waitClosed());
    const b = await RawConn.connect(adbd.port);
    b.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3)));
    assert.ok(await b.waitClosed());
    const c = await RawConn.online(adbd.port);
    c.conn.send(Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7919) & 0xff)));
    assert.ok(await c.conn.waitClosed());
    await assertHealthy();
  });

  test('a truncated packet followed by a hang-up is harmless', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    const s = (await conn.open('sync:'))!;
    conn.send(packet(WRTE, s.local, s.remote, Buffer.alloc(1000)).subarray(0, 500));
    await new Promise((r) => setTimeout(r, 100));
    conn.destroy();
    await assertHealthy();
  });

  test('unknown services get CLSE, the connection stays usable', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      for (const svc of ['jdwp:1', 'host:version', 'shell', 'framebuffer:', 'tcpip:5555', 'x'.repeat(5000), 'sync:extra']) {
        assert.equal(await conn.open(svc), null, `service ${svc.slice(0, 20)} should be refused`);
      }
      const s = (await conn.open('shell,v2,raw:echo same-conn'))!;
      assert.equal(parseShellV2(await conn.readAll(s)).stdout, 'same-conn\n');
    } finally {
      conn.destroy();
    }
    await assertHealthy();
  });

  test('OPEN before CNXN gets CLSE', T, async () => {
    const conn = await RawConn.connect(adbd.port);
    try {
      conn.send(packet(OPEN, 7, 0, Buffer.from('shell:echo no\0')));
      const p = await conn.waitFor((x) => x.arg1 === 7);
      assert.equal(p.cmd, CLSE);
    } finally {
      conn.destroy();
    }
    await assertHealthy();
  });

  test('WRTE to an unknown stream id gets CLSE', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      conn.send(packet(WRTE, 55, 987654, Buffer.from('hello')));
      const p = await conn.waitFor((x) => x.arg1 === 55);
      assert.equal(p.cmd, CLSE);
      // stray OKAY / CLSE for unknown ids are ignored, not fatal
      conn.send(packet(OKAY, 56, 424242));
      conn.send(packet(CLSE, 57, 434343));
      const s = (await conn.open('shell,v2,raw:echo ok'))!;
      assert.equal(parseShellV2(await conn.readAll(s)).stdout, 'ok\n');
    } finally {
      conn.destroy();
    }
    await assertHealthy();
  });

  test('WRTE to a stream that was closed (by either side) gets CLSE', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const done = (await conn.open('shell,v2,raw:true'))!;
      await conn.readAll(done); // device closed it
      conn.write(done, shellPacket(0, 'late'));
      assert.equal((await conn.waitFor((x) => x.arg1 === done.local)).cmd, CLSE);

      const mine = (await conn.open('sync:'))!;
      conn.close(mine); // host closed it
      conn.write(mine, syncRequest('STAT', '/'));
      assert.equal((await conn.waitFor((x) => x.arg1 === mine.local)).cmd, CLSE);
    } finally {
      conn.destroy();
    }
    await assertHealthy();
  });

  test('sync: a huge path gets FAIL "path too long" and CLSE', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('sync:'))!;
      await conn.writeAcked(s, syncRequest('RECV', '/' + 'a'.repeat(5000)));
      const all = await conn.readAll(s);
      assert.equal(all.subarray(0, 4).toString(), 'FAIL');
      assert.equal(all.subarray(8).toString(), 'path too long');
      // a path at the limit is accepted as a request and fails with the kernel's errno
      const s2 = (await conn.open('sync:'))!;
      await conn.writeAcked(s2, syncRequest('RECV', '/' + 'b'.repeat(1023)));
      const all2 = await conn.readAll(s2);
      assert.equal(all2.subarray(8).toString(), 'open failed: File name too long');
    } finally {
      conn.destroy();
    }
    await assertHealthy();
  });

  test('sync: unknown request id and bad SEND framing get FAIL', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const a = (await conn.open('sync:'))!;
      await conn.writeAcked(a, syncRequest('ZZZZ', '/'));
      const ra = await conn.readAll(a);
      assert.equal(ra.subarray(0, 4).toString(), 'FAIL');
      assert.match(ra.subarray(8).toString(), /^unknown command 5a5a5a5a$/);

      const target = path.join(tmp, 'never-written.bin');
      const b = (await conn.open('sync:'))!;
      const oversize = Buffer.alloc(8);
      oversize.write('DATA', 0, 'latin1');
      oversize.writeUInt32LE(1_000_000, 4);
      await conn.writeAcked(b, Buffer.concat([syncRequest('SEND', `${target},33188`), oversize]));
      const rb = await conn.readAll(b);
      assert.equal(rb.subarray(8).toString(), 'oversize data message');
      assert.equal(fs.existsSync(target), false);
      assert.deepEqual(fs.readdirSync(tmp).filter((n) => n.startsWith('.adbd-push')), [], 'temp file left behind');

      const c = (await conn.open('sync:'))!;
      await conn.writeAcked(c, syncRequest('SEND', target)); // no ",mode"
      assert.equal((await conn.readAll(c)).subarray(8).toString(), 'missing , in ID_SEND_V1');
    } finally {
      conn.destroy();
    }
    await assertHealthy();
  });

  test('sync: SEND writes via a temp file, applies mode and mtime, and creates parents', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const target = path.join(tmp, 'made', 'by', 'send.txt');
      const s = (await conn.open('sync:'))!;
      const data = syncRequest('DATA', 'payload-1 ');
      const data2 = syncRequest('DATA', 'payload-2');
      const done = Buffer.alloc(8);
      done.write('DONE', 0, 'latin1');
      done.writeUInt32LE(1_500_000_000, 4);
      await conn.writeAcked(s, Buffer.concat([syncRequest('SEND', `${target},${0o100600}`), data]));
      // before DONE only a temp file exists
      assert.equal(fs.existsSync(target), false);
      await conn.writeAcked(s, Buffer.concat([data2, done]));
      const reply = await conn.read(s);
      assert.equal(reply.subarray(0, 4).toString(), 'OKAY');
      assert.equal(fs.readFileSync(target, 'utf8'), 'payload-1 payload-2');
      const st = fs.statSync(target);
      assert.equal(st.mode & 0o777, 0o666);
      assert.equal(Math.floor(st.mtimeMs / 1000), 1_500_000_000);
      assert.deepEqual(fs.readdirSync(path.dirname(target)), ['send.txt']);
    } finally {
      conn.destroy();
    }
  });

  test('a host that ignores flow control and floods a stream loses that stream only', T, async () => {
    const { conn } = await RawConn.online(adbd.port, 4096);
    try {
      const s = (await conn.open('shell,v2,raw:sleep 30'))!; // never reads stdin
      const chunk = shellPacket(0, Buffer.alloc(4000, 0x61));
      for (let i = 0; i < 200; i++) conn.write(s, chunk);
      assert.ok(await conn.sees((p) => p.cmd === CLSE && p.arg1 === s.local, 5000), 'flooded stream should be closed');
      const ok = (await conn.open('shell,v2,raw:echo after-flood'))!;
      assert.equal(parseShellV2(await conn.readAll(ok)).stdout, 'after-flood\n');
    } finally {
      conn.destroy();
    }
    await assertHealthy();
  });

  test('more than 1024 open streams on one connection: the excess gets CLSE', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      let refused = 0;
      for (let i = 0; i < 1030; i++) {
        if ((await conn.open('sync:')) === null) refused++;
      }
      assert.equal(refused, 6);
    } finally {
      conn.destroy();
    }
    await assertHealthy();
  });

  test('a second CNXN on a live connection resets its streams', T, async () => {
    const { conn } = await RawConn.online(adbd.port);
    try {
      const s = (await conn.open('shell,v2,raw:echo $$; exec sleep 600'))!;
      const pid = Number(parseShellV2(await conn.read(s)).stdout.trim());
      conn.send(packet(CNXN, VERSION, 4096, Buffer.from('host::\0')));
      await conn.waitFor((p) => p.cmd === CNXN);
      assert.ok(await waitGone(pid), 'old stream child should be hung up');
      const t = (await conn.open('shell,v2,raw:echo again'))!;
      assert.equal(parseShellV2(await conn.readAll(t)).stdout, 'again\n');
    } finally {
      conn.destroy();
    }
  });

  test('random well-framed packets from many connections do not hurt the daemon', T, async () => {
    // Deterministic xorshift, so a failure can be replayed.
    let seed = 0x9e3779b9;
    const rnd = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => rnd(256)));
    const KNOWN_SYNC = new Set(['STAT', 'STA2', 'LST2', 'LIST', 'LIS2', 'SEND', 'RECV', 'QUIT', 'DATA', 'DONE']);
    const conns: RawConn[] = [];
    for (let c = 0; c < 8; c++) {
      const { conn } = await RawConn.online(adbd.port, [4096, 65536, 1024 * 1024][rnd(3)]);
      conns.push(conn);
      const opened: Array<{ local: number; remote: number }> = [];
      for (let i = 0; i < 150; i++) {
        const kind = rnd(6);
        if (kind === 0) {
          const s = await conn.open(['sync:', 'root:', 'nope:' + bytes(3).toString('hex')][rnd(3)]!);
          if (s) opened.push(s);
        } else if (kind === 1 && opened.length > 0) {
          // junk for a sync stream, but never a real request id (no SEND to random paths)
          const junk = bytes(1 + rnd(300));
          if (KNOWN_SYNC.has(junk.subarray(0, 4).toString('latin1'))) junk.write('ZZZZ', 0, 'latin1');
          conn.write(opened[rnd(opened.length)]!, junk);
        } else if (kind === 2) {
          conn.send(packet([OKAY, CLSE, WRTE][rnd(3)]!, rnd(3000), rnd(3000), bytes(rnd(64))));
        } else if (kind === 3 && opened.length > 0) {
          conn.close(opened.splice(rnd(opened.length), 1)[0]!);
        } else if (kind === 4) {
          conn.send(packet(OPEN, rnd(5) === 0 ? 0 : 5000 + i, rnd(2), bytes(rnd(40))));
        } else {
          conn.send(packet(OKAY, opened.length ? opened[0]!.local : 1, opened.length ? opened[0]!.remote : 1));
        }
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const c of conns) c.destroy();
    await assertHealthy();
  });

  test('after all that, the real adb server still connects and runs commands', T, async () => {
    await assertHealthy();
    const server = await startAdbServer();
    try {
      const serial = `127.0.0.1:${adbd.port}`;
      const c = await server.adb(['connect', serial]);
      assert.match(c.stdout, /connected to/);
      let state = '';
      for (let i = 0; i < 50 && state !== 'device'; i++) {
        state = (await server.adb(['-s', serial, 'get-state'])).stdout.trim();
        if (state !== 'device') await new Promise((r) => setTimeout(r, 100));
      }
      const r = await server.adb(['-s', serial, 'shell', 'echo via-server; exit 2']);
      assert.equal(r.stdout, 'via-server\n');
      assert.equal(r.code, 2);
    } finally {
      await server.kill();
    }
    assert.equal(adbd.exitCode(), null);
    // Abuse is logged as warnings; an "error" line would mean an internal failure.
    const errors = adbd.output().split('\n').filter((l) => l.includes('"level":"error"'));
    assert.deepEqual(errors, []);
  });
});
