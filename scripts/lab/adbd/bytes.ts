// A FIFO of bytes that arrive in arbitrary pieces (TCP reads, WRTE payloads) and are consumed
// in protocol-sized pieces (24-byte headers, sync requests). Avoids copying when a piece lies
// inside one received chunk.

export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // bytes already consumed from chunks[0]
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(data: Buffer): void {
    if (data.length === 0) return;
    this.chunks.push(data);
    this.total += data.length;
  }

  /** The first n bytes without consuming them (n <= length). */
  peek(n: number): Buffer {
    if (n > this.total) throw new RangeError(`peek(${n}) beyond ${this.total} queued bytes`);
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    let offset = this.head;
    for (const c of this.chunks) {
      const take = Math.min(c.length - offset, n - copied);
      c.copy(out, copied, offset, offset + take);
      copied += take;
      offset = 0;
      if (copied === n) break;
    }
    return out;
  }

  /** Consume and return the first n bytes (n <= length). */
  take(n: number): Buffer {
    const out = this.peek(n);
    this.skip(n);
    return out;
  }

  /** Like take(), but the result never aliases a queued chunk (safe to keep long-term). */
  takeCopy(n: number): Buffer {
    const first = this.chunks[0];
    const aliases = first !== undefined && first.length - this.head >= n;
    const out = this.take(n);
    return aliases ? Buffer.from(out) : out;
  }

  /** Consume up to n bytes, returning what was taken (possibly fewer than n). */
  takeUpTo(n: number): Buffer {
    return this.take(Math.min(n, this.total));
  }

  skip(n: number): void {
    if (n > this.total) throw new RangeError(`skip(${n}) beyond ${this.total} queued bytes`);
    this.total -= n;
    while (n > 0) {
      const first = this.chunks[0]!;
      const left = first.length - this.head;
      if (left > n) {
        this.head += n;
        return;
      }
      n -= left;
      this.chunks.shift();
      this.head = 0;
    }
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.total = 0;
  }
}
