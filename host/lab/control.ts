// The supervisor's control socket (<device dir>/control.sock): one JSON request line, one JSON reply
// line. Only the user who owns the state dir can reach it (a unix socket, no TCP).
import net from 'node:net';
import type { DeviceStatus } from './state.js';

export type ControlRequest =
  | { op: 'status' }
  | { op: 'unplug' }
  | { op: 'replug' }
  | { op: 'kill-adbd'; wait?: boolean }
  | { op: 'reboot'; hard?: boolean }
  | { op: 'stop' };

export interface ControlReply {
  ok: boolean;
  error?: string;
  status?: DeviceStatus;
  /** reboot: reset to adbd listening again. */
  bootMs?: number;
  connectionsReset?: number;
}

export function sendControl(socketPath: string, req: ControlRequest, timeoutMs = 30_000): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from the lab supervisor within ${timeoutMs} ms (${req.op})`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(JSON.stringify(req) + '\n'));
    socket.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as ControlReply);
      } catch (e) {
        reject(e);
      }
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (buf.indexOf('\n') < 0) reject(new Error(`lab supervisor closed the control socket without answering (${req.op})`));
    });
  });
}

export function serveControl(socketPath: string, handle: (req: ControlRequest) => Promise<ControlReply>): Promise<net.Server> {
  const server = net.createServer((socket) => {
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.on('data', (d: string) => {
      buf += d;
      if (buf.length > 64 * 1024) return socket.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let req: ControlRequest;
      try {
        req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
      } catch {
        socket.end(JSON.stringify({ ok: false, error: 'bad request' }) + '\n');
        return;
      }
      handle(req).then(
        (reply) => socket.end(JSON.stringify(reply) + '\n'),
        (e: Error) => socket.end(JSON.stringify({ ok: false, error: e.message }) + '\n'),
      );
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
