// The TCP listener: one Connection per accepted socket; shutdown hangs up every child.
import net from 'node:net';
import type { DaemonContext } from './config.js';
import { Connection } from './connection.js';
import { hangUp } from './services/subprocess.js';

export interface RunningDaemon {
  address: string;
  port: number;
  close(): Promise<void>;
}

export function startServer(ctx: DaemonContext, listen: string, port: number): Promise<RunningDaemon> {
  const connections = new Set<Connection>();
  const server = net.createServer((socket) => {
    try {
      const conn = new Connection(socket, ctx);
      connections.add(conn);
      socket.once('close', () => connections.delete(conn));
    } catch (err) {
      ctx.log.error('could not set up connection', { err: String(err) });
      socket.destroy();
    }
  });
  // Accept errors (EMFILE...) must not end the daemon.
  server.on('error', (err) => ctx.log.error('listener error', { err: err.message }));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: listen, port, exclusive: true }, () => {
      server.off('error', reject);
      const addr = server.address() as net.AddressInfo;
      resolve({
        address: addr.address,
        port: addr.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const c of connections) c.drop('daemon shutting down', 'info');
            for (const child of ctx.children) hangUp(child, true);
          }),
      });
    });
  });
}
