// One adb stream (an OPENed service) on one connection: its ids, the outbound queue with the
// one-WRTE-in-flight rule, and the inbound queue. A WRTE is acknowledged (OKAY) at once while
// the service's backlog is at most one payload, so the host can send the next one while we
// work on this one; beyond that the OKAY waits until the service caught up: backpressure.

/** What a service implements. */
export interface Service {
  /** One WRTE payload from the host. Resolve once consumed: while it is pending, later WRTEs wait for their OKAY. */
  onData(data: Buffer): void | Promise<void>;
  /**
   * The stream is gone: closed by the host, by us (after end()), or with its connection.
   * Release everything (kill children, close files). Called exactly once.
   */
  onClose(reason: CloseReason): void;
}

export type CloseReason = 'remote' | 'local' | 'connection' | 'protocol';

/** The connection-side operations a stream needs. */
export interface StreamTransport {
  readonly maxPayload: number;
  sendWrite(localId: number, remoteId: number, data: Buffer): void;
  /** False while the socket has too much unsent data; the stream then waits for wakeWhenWritable. */
  writable(): boolean;
  wakeWhenWritable(stream: AdbStream): void;
  sendOkay(localId: number, remoteId: number): void;
  sendClose(localId: number, remoteId: number): void;
  forget(stream: AdbStream): void;
  onServiceError(stream: AdbStream, err: unknown): void;
}

export class AdbStream {
  private service: Service | null = null;
  private readonly out: Buffer[] = [];
  private outBytes = 0;
  private awaitingAck = false;
  private ending = false;
  private closedReason: CloseReason | null = null;
  private drainWaiters: Array<() => void> = [];
  private flushScheduled = false;

  private readonly inbound: Buffer[] = [];
  /** Bytes received and not yet fully consumed by the service (queued + in progress). */
  private inboundBytes = 0;
  private delivering = false;
  /** WRTEs received but not yet acknowledged. */
  private unacked = 0;

  constructor(
    private readonly transport: StreamTransport,
    readonly localId: number,
    readonly remoteId: number,
    readonly serviceName: string,
  ) {}

  attach(service: Service): void {
    this.service = service;
    if (this.closedReason) service.onClose(this.closedReason);
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Payload size of one WRTE on this connection (services size their reads by it). */
  get maxPayload(): number {
    return this.transport.maxPayload;
  }

  /** Bytes queued but not yet sent. */
  get queuedBytes(): number {
    return this.outBytes;
  }

  private get highWater(): number {
    return 2 * this.transport.maxPayload;
  }

  /** Queue bytes for the host. Returns false when the caller should wait for waitDrain(). */
  write(data: Buffer): boolean {
    if (this.closedReason || this.ending) return false;
    if (data.length > 0) {
      this.out.push(data);
      this.outBytes += data.length;
      this.scheduleFlush();
    }
    return this.outBytes < this.highWater;
  }

  /** Resolves when the outbound queue is below the high-water mark, or the stream is closed. */
  waitDrain(): Promise<void> {
    if (this.closedReason || this.outBytes < this.highWater) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Close from our side once everything queued has been sent and acknowledged. */
  end(): void {
    if (this.closedReason || this.ending) return;
    this.ending = true;
    this.scheduleFlush();
  }

  /** Close now, dropping queued output (protocol abuse, fatal service error). */
  abort(reason: CloseReason = 'protocol'): void {
    if (this.closedReason) return;
    this.transport.sendClose(this.localId, this.remoteId);
    this.finish(reason);
  }

  // ---- called by the connection ----

  /** OKAY from the host: our last WRTE was consumed. */
  onAck(): void {
    if (!this.awaitingAck) return; // stray OKAY: ignore, as adbd does
    this.awaitingAck = false;
    this.flush();
  }

  /** WRTE from the host. Returns false if the host ignored flow control badly enough to drop the stream. */
  onWrite(data: Buffer): boolean {
    if (this.closedReason) return true;
    this.inbound.push(data);
    this.inboundBytes += data.length;
    this.unacked++;
    // A well-behaved host has one WRTE in flight; allow some slack, then call it abuse.
    if (this.inboundBytes > 4 * this.transport.maxPayload + 4096) return false;
    this.ackIfRoom();
    if (!this.delivering) void this.deliver();
    return true;
  }

  /** CLSE from the host, or the connection went away. */
  onRemoteClose(reason: CloseReason): void {
    this.finish(reason);
  }

  // ---- internals ----

  /**
   * Writes made in the same tick go out in one WRTE: a reply written as header + body must not
   * be split, because some clients (adbkit) act on the header before reading the rest.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Send the next WRTE (or the final CLSE) if the protocol and the socket allow it. */
  flush(): void {
    if (this.closedReason || this.awaitingAck) return;
    if (this.outBytes > 0) {
      if (!this.transport.writable()) {
        // A host that does not read its socket must not make us buffer without bound.
        this.transport.wakeWhenWritable(this);
        return;
      }
      const chunk = this.takeChunk(this.transport.maxPayload);
      this.awaitingAck = true;
      this.transport.sendWrite(this.localId, this.remoteId, chunk);
      if (this.outBytes < this.highWater) this.wakeDrainWaiters();
      return;
    }
    if (this.ending) {
      this.transport.sendClose(this.localId, this.remoteId);
      this.finish('local');
    }
  }

  private takeChunk(max: number): Buffer {
    const first = this.out[0]!;
    if (first.length >= max) {
      // Common for large reads: split without concatenating.
      const chunk = first.subarray(0, max);
      if (first.length === max) this.out.shift();
      else this.out[0] = first.subarray(max);
      this.outBytes -= max;
      return chunk;
    }
    const parts: Buffer[] = [];
    let size = 0;
    while (this.out.length > 0 && size < max) {
      const head = this.out[0]!;
      const room = max - size;
      if (head.length <= room) {
        parts.push(head);
        size += head.length;
        this.out.shift();
      } else {
        parts.push(head.subarray(0, room));
        this.out[0] = head.subarray(room);
        size += room;
      }
    }
    this.outBytes -= size;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
  }

  private ackIfRoom(): void {
    while (this.unacked > 0 && !this.closedReason && this.inboundBytes <= this.transport.maxPayload) {
      this.unacked--;
      this.transport.sendOkay(this.localId, this.remoteId);
    }
  }

  private async deliver(): Promise<void> {
    this.delivering = true;
    try {
      while (this.inbound.length > 0 && !this.closedReason) {
        const data = this.inbound.shift()!;
        try {
          if (this.service) await this.service.onData(data);
        } catch (err) {
          this.transport.onServiceError(this, err);
          return;
        }
        this.inboundBytes -= data.length;
        this.ackIfRoom();
      }
    } finally {
      this.delivering = false;
    }
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private finish(reason: CloseReason): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    this.out.length = 0;
    this.outBytes = 0;
    this.inbound.length = 0;
    this.inboundBytes = 0;
    this.unacked = 0;
    this.wakeDrainWaiters();
    this.transport.forget(this);
    const service = this.service;
    if (service) {
      try {
        service.onClose(reason);
      } catch (err) {
        this.transport.onServiceError(this, err);
      }
    }
  }
}
