/**
 * One TWS2 stream of the js engine: a local socket on one side, the session
 * on the other. Owns the stream's flow-control state in both directions.
 * The session drives it; it never touches the WebSocket itself.
 */
import type { Socket } from 'node:net';
import { EARLY_DATA_LIMIT, StreamKind } from '../../protocol/constants';
import type { DatagramPort, StreamReply } from '../types';

/** Local bytes queued beyond this pause the local socket (per stream). */
export const STREAM_QUEUE_LIMIT = 256 * 1024;
/** Local bytes queued on all of a session's streams beyond this pause each socket that reads more. */
export const SESSION_QUEUE_LIMIT = 2 * 1024 * 1024;
/** Datagrams (and bytes) held while a udp stream is not yet open; more are dropped, as UDP may. */
export const HELD_DATAGRAMS = 16;
export const HELD_DATAGRAM_BYTES = 16 * 1024;

export type StreamState = 'opening' | 'accepting' | 'open';

/** Payloads below this size are copied into shared chunks while they wait; larger ones are kept whole. */
export const GATHER_MAX = 16 * 1024;

/**
 * Bytes waiting for a local socket. A peer may send its credit as 1-byte
 * DATA frames, each a view into a 64 KiB socket read: kept as they come,
 * they would pin 64 KiB and a write request each. Small payloads are
 * copied into chunks (256 B growing to 16 KiB), so waiting bytes cost about
 * what they count for in credit.
 */
export class Gather {
  private readonly chunks: { buf: Buffer; len: number }[] = [];
  /** Bytes gathered. */
  bytes = 0;

  get empty(): boolean {
    return this.chunks.length === 0;
  }

  push(p: Buffer): void {
    this.bytes += p.length;
    if (p.length >= GATHER_MAX) {
      this.chunks.push({ buf: own(p), len: p.length });
      return;
    }
    // Fill the last chunk's spare room first, then start a new one (twice the last, 256 B to 16 KiB) with the rest.
    const last = this.chunks[this.chunks.length - 1];
    let at = 0;
    if (last && last.len < last.buf.length && last.buf.length <= GATHER_MAX) {
      at = Math.min(p.length, last.buf.length - last.len);
      p.copy(last.buf, last.len, 0, at);
      last.len += at;
      if (at === p.length) return;
    }
    const rest = p.length - at;
    const size = Math.max(rest, Math.min(GATHER_MAX, Math.max(256, 2 * (last?.buf.length ?? 128))));
    const buf = Buffer.allocUnsafe(size);
    p.copy(buf, 0, at);
    this.chunks.push({ buf, len: rest });
  }

  /** Everything gathered, in order, as filled buffers; the gather is empty afterwards. */
  take(): Buffer[] {
    this.bytes = 0;
    return this.chunks.splice(0).map((c) => (c.len === c.buf.length ? c.buf : c.buf.subarray(0, c.len)));
  }
}

/** `p`, or a copy of it when it is a small view into a much larger buffer (which it would keep alive). */
export function own(p: Buffer): Buffer {
  return p.byteLength * 2 < p.buffer.byteLength ? Buffer.from(p) : p;
}

export class JsStream {
  state: StreamState;
  local: Socket | undefined;
  /** The local end of a udp stream. */
  port: DatagramPort | undefined;
  readonly held: Buffer[] = [];
  heldBytes = 0;
  lastActive = Date.now();

  /** Bytes we may still send (peer's window minus what we sent). */
  sendCredit: number;
  /** Local bytes waiting to go out, oldest first. */
  readonly outQueue: Buffer[] = [];
  outQueued = 0;
  localEnded = false;
  finSent = false;
  /** The local socket closed after both directions ended (queued bytes may remain). */
  localClosed = false;

  /** Total bytes the peer may send us (all windows granted). */
  recvGranted: number;
  /** Bytes the peer sent us. */
  recvd = 0;
  /** Received bytes written locally but not yet returned with WINDOW. */
  unreturned = 0;
  /** The current window size (grows with auto-tuning). */
  recvWindow: number;
  /** Start (performance.now() ms) and bytes consumed of the current auto-tuning epoch. */
  epochStart = 0;
  epochBytes = 0;
  /** Delivery rate (bytes/ms) when the window last grew. */
  rateAtGrowth = 0;
  /** This epoch the peer had less than an eighth of the window left in credit at some point. */
  starved = false;
  finRecv = false;
  /** Data that arrived before the acceptor had a socket. */
  readonly early = new Gather();
  /** Data that arrived while writes to the local socket were still in flight. */
  readonly gathered = new Gather();
  /** Writes handed to the local socket and not yet done. */
  writing = 0;

  bytesIn = 0;
  bytesOut = 0;
  readonly openedAt = Date.now();
  abort: AbortController | undefined;
  done = false;
  /** The client tunnel that opened it, for its close line. */
  tunnel: string | undefined;
  /** What we answer the local socket with (an opened stream of a proxy listener), and the bytes a RESET picked. */
  reply: StreamReply | undefined;
  answer: Buffer | undefined;

  constructor(
    readonly id: number,
    readonly target: string,
    readonly kind: number,
    state: StreamState,
    opts: { sendCredit: number; recvWindow: number },
  ) {
    this.state = state;
    this.sendCredit = opts.sendCredit;
    this.recvWindow = opts.recvWindow;
    // An acceptor has granted nothing yet but must take the opener's early data.
    this.recvGranted = state === 'accepting' ? EARLY_DATA_LIMIT : opts.recvWindow;
  }

  get isUdp(): boolean {
    return this.kind === StreamKind.UDP;
  }

  /** Bytes that could go out now. */
  sendable(): number {
    return Math.min(this.outQueued, this.sendCredit);
  }

  /** Removes up to `max` bytes from the queue as one buffer (one copy when it spans chunks); only while sendable() > 0. */
  take(max: number): Buffer {
    const first = this.outQueue[0]!;  // sendable() > 0: bytes are queued, so there is a first chunk
    if (first.length >= max) {
      if (first.length === max) this.outQueue.shift();
      else this.outQueue[0] = first.subarray(max);
      this.outQueued -= max;
      return first.subarray(0, max);
    }
    const n = Math.min(max, this.outQueued);
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const chunk = this.outQueue[0]!;  // off < n <= outQueued: bytes, so chunks, remain
      const k = Math.min(chunk.length, n - off);
      chunk.copy(out, off, 0, k);
      off += k;
      if (k === chunk.length) this.outQueue.shift();
      else this.outQueue[0] = chunk.subarray(k);
    }
    this.outQueued -= n;
    return out;
  }

  /** A FIN is owed once the local side ended and everything queued went out. */
  finDue(): boolean {
    return this.localEnded && !this.finSent && this.outQueued === 0 && this.state !== 'accepting';
  }
}
