// The lab device's "USB cable": a loopback TCP relay in front of QEMU's forwarded adbd port.
// The device serial is 127.0.0.1:<relay port>. Unplugging resets every connection through the
// relay and resets new ones at once, which adb sees exactly like a dropped device (offline within
// a fraction of a second); QEMU's own `set_link off` does not do that (adb keeps the stale
// connection as `device` and hangs). Replugging accepts connections again.
import net from 'node:net';

export interface RelayOptions {
  /** Port to listen on (127.0.0.1); 0 picks a free one. */
  listenPort: number;
  /** Where connections go (QEMU's hostfwd on 127.0.0.1). */
  targetPort: number;
  onEvent?: (event: string, detail?: Record<string, unknown>) => void;
}

export class PluggableRelay {
  private server?: net.Server;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private plugged = true;

  private targetPort: number;

  constructor(private readonly opts: RelayOptions) {
    this.targetPort = opts.targetPort;
  }

  /** Send new connections to another port (QEMU's forward port is known only after the relay listens). */
  retarget(port: number): void {
    this.targetPort = port;
  }

  get isPlugged(): boolean {
    return this.plugged;
  }

  get connectionCount(): number {
    return this.pairs.size;
  }

  /** Listen on 127.0.0.1 only; resolves with the port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((client) => this.accept(client));
      server.once('error', reject);
      server.listen(this.opts.listenPort, '127.0.0.1', () => {
        server.off('error', reject);
        server.on('error', (e) => this.opts.onEvent?.('relay-error', { message: e.message }));
        this.server = server;
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  private accept(client: net.Socket): void {
    if (!this.plugged) {
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    client.setNoDelay(true);
    const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort });
    upstream.setNoDelay(true);
    const pair = { client, upstream };
    this.pairs.add(pair);
    let closed = false;
    const close = (reset: boolean) => {
      if (closed) return;
      closed = true;
      this.pairs.delete(pair);
      if (reset) {
        if (!client.destroyed) client.resetAndDestroy();
        if (!upstream.destroyed) upstream.destroy();
      }
    };
    client.on('error', () => close(true));
    upstream.on('error', () => close(true));
    // A clean end on one side is passed on as a clean end (pipe() does that); the pair is done
    // once both sockets are closed.
    client.on('close', () => {
      if (!upstream.destroyed) upstream.destroy();
      close(false);
    });
    upstream.on('close', () => {
      if (!client.destroyed) client.end();
      close(false);
    });
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Cut the cable: reset every open connection; new ones are reset until replug(). */
  unplug(): number {
    this.plugged = false;
    const n = this.pairs.size;
    for (const { client, upstream } of [...this.pairs]) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
    this.opts.onEvent?.('unplugged', { connectionsReset: n });
    return n;
  }

  replug(): void {
    this.plugged = true;
    this.opts.onEvent?.('replugged');
  }

  /** Stop listening and reset everything (does not wait for lingering sockets beyond 1 s). */
  close(): Promise<void> {
    this.unplug();
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      const timer = setTimeout(resolve, 1000);
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
