/**
 * The js session's send side: every frame goes out through send(), and DATA
 * through a round-robin ready list that pump() drains while the WebSocket's
 * send buffer has room. It also decides which local sockets read: each while
 * its stream's queue and the session's have room, none once the session's is
 * full, until it drained (see local-reads.ts: a stopped socket reads nothing).
 */
import type { WebSocket } from 'ws';
import { HEADER_LEN, MAX_DATA } from '../../protocol/constants';
import * as codec from '../../protocol/frames';
import { startReading, stopReading } from './local-reads';
import { JsStream, SESSION_QUEUE_LIMIT, STREAM_QUEUE_LIMIT } from './stream';

/** Keep at most this much in the WebSocket's send buffer (bytes), so pings never wait behind much DATA. */
export const SEND_HIGH_WATER = 512 * 1024;
/** When several streams have data, each turn sends at most this much (bytes). */
const TURN_BYTES = 64 * 1024;

/** What the scheduler tells the session. */
export interface SchedulerHooks {
  /** The session is closed: nothing more is pumped. */
  closed(): boolean;
  /** `n` bytes of DATA went into the send buffer. */
  sentData(n: number): void;
  /** `s` has nothing left that could go out now (its FIN may be due). */
  drained(s: JsStream): void;
}

export class Scheduler {
  /** Streams with data and credit, in turn order; each at most once. */
  private readonly ready: JsStream[] = [];
  /** The send buffer is past SEND_HIGH_WATER: pumping waits until a frame's write completes. */
  private congested = false;
  private pumping = false;
  /** Bytes read from local sockets and not yet sent, all streams. */
  private queuedOut = 0;
  /** Streams whose local socket reads; those stopped for want of room, oldest first. */
  private readonly reading = new Set<JsStream>();
  private readonly stopped = new Set<JsStream>();
  /** The session's queue reached its limit: no local socket reads until it is half empty. */
  private queueFull = false;

  constructor(private readonly ws: WebSocket, private readonly hooks: SchedulerHooks) {}

  /** The send buffer is past its high-water mark: what may be dropped (datagrams) is. */
  get full(): boolean {
    return this.ws.bufferedAmount > SEND_HIGH_WATER;
  }

  /** Sends one frame; past the high-water mark the first such frame stops pumping until it is written. */
  send(frame: Buffer): void {
    if (this.ws.readyState !== 1) return;
    if (this.ws.bufferedAmount + frame.length < SEND_HIGH_WATER || this.congested) {
      this.ws.send(frame);
      return;
    }
    // The WebSocket's send buffer is full: stop pumping until this frame is written.
    this.congested = true;
    this.ws.send(frame, () => {
      this.congested = false;
      this.pump();
    });
  }

  /** `s` has its local socket: it reads unless the session's queue is full. */
  attach(s: JsStream): void {
    this.stopped.add(s);
    this.resumeLocals();
  }

  /** Queues bytes read from `s`'s local socket and sends what its credit allows. */
  enqueue(s: JsStream, chunk: Buffer): void {
    s.outQueue.push(chunk);
    s.outQueued += chunk.length;
    this.queuedOut += chunk.length;
    // A peer that grants credit and never reads must not make us read every
    // local socket into memory: a stream stops reading at its limit, and at
    // the session's every stream stops at once, so that no more than the
    // read that crossed it comes in (each socket that still read would bring one).
    if (this.queuedOut >= SESSION_QUEUE_LIMIT) {
      this.queueFull = true;
      for (const r of this.reading) this.stop(r);
    } else if (s.outQueued >= STREAM_QUEUE_LIMIT) {
      this.stop(s);
    }
    this.wake(s);
  }

  /** `s` may send now (new data or credit): its turn is queued and the send loop runs. */
  wake(s: JsStream): void {
    if (s.sendable() > 0) {
      this.markReady(s);
      this.pump();
    }
  }

  /** Queues `s` for a turn (once) without running the send loop. */
  markReady(s: JsStream): void {
    if (!this.ready.includes(s)) this.ready.push(s);
  }

  /** Sends queued DATA round-robin while the WebSocket's send buffer has room. */
  pump(): void {
    if (this.pumping || this.hooks.closed()) return;
    this.pumping = true;
    try {
      let s: JsStream | undefined;
      while (!this.congested && (s = this.ready.shift()) !== undefined) {
        if (s.done) continue;
        const turn = this.ready.length > 0 ? TURN_BYTES : MAX_DATA;
        const n = Math.min(s.sendable(), turn);
        if (n <= 0) continue;
        const payload = s.take(n);
        this.queuedOut -= n;
        const frame = Buffer.allocUnsafe(HEADER_LEN + n);
        codec.encodeDataHeader(s.id).copy(frame, 0);
        payload.copy(frame, HEADER_LEN);
        s.sendCredit -= n;
        s.bytesOut += n;
        this.hooks.sentData(n);
        this.send(frame);
        if (s.sendable() > 0) this.ready.push(s);
        else this.hooks.drained(s);
      }
    } finally {
      this.pumping = false;
    }
    this.resumeLocals();
  }

  /** A stream ended: its queued bytes, reading and turn are dropped (others may read in the room it leaves). */
  forget(s: JsStream): void {
    this.queuedOut -= s.outQueued;
    this.reading.delete(s);
    this.stopped.delete(s);
    const i = this.ready.indexOf(s);
    if (i >= 0) this.ready.splice(i, 1);
    this.resumeLocals();
  }

  private stop(s: JsStream): void {
    if (!this.reading.delete(s)) return;
    this.stopped.add(s);
    stopReading(s.local!);  // only attached streams (with a local socket) read
  }

  /** Stopped local sockets read again once the session's queue is not full (or half empty since it was) and their stream's is half empty. */
  private resumeLocals(): void {
    if (this.hooks.closed()) return;
    if (this.queueFull && this.queuedOut < SESSION_QUEUE_LIMIT / 2) this.queueFull = false;
    if (this.queueFull) return;
    for (const s of this.stopped) {
      if (s.outQueued >= STREAM_QUEUE_LIMIT / 2) continue;
      this.stopped.delete(s);
      this.reading.add(s);
      startReading(s.local!);  // only streams with a local socket are stopped
    }
  }
}
