// A minimal QMP (QEMU Machine Protocol) client: JSON lines over QEMU's unix socket.
import net from 'node:net';

export class QmpClient {
  private buffer = '';
  closed = false;
  private readonly waiting: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  /** Called for asynchronous events (RESET, SHUTDOWN, ...). */
  onEvent?: (event: string, data: unknown) => void;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w.reject(new Error('QMP socket closed'));
    });
    socket.on('error', () => {});
  }

  static async connect(socketPath: string, timeoutMs = 5000): Promise<QmpClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(socketPath);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`QMP connect timeout (${socketPath})`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const client = new QmpClient(socket);
    await client.next(); // greeting
    await client.execute('qmp_capabilities');
    return client;
  }

  private onData(d: string): void {
    this.buffer += d;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if ('event' in msg) {
        this.onEvent?.(String(msg.event), msg.data);
        continue;
      }
      const w = this.waiting.shift();
      if (!w) continue;
      if ('error' in msg) w.reject(new Error(`QMP error: ${JSON.stringify(msg.error)}`));
      else w.resolve(msg.return ?? msg.QMP);
    }
  }

  private next(): Promise<unknown> {
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const p = this.next();
    this.socket.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    return p;
  }

  close(): void {
    this.socket.destroy();
  }
}
