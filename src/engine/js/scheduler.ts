/**
 * The js session's send side: every frame goes out through send(), and DATA
 * through a round-robin ready list that pump() drains while the WebSocket's
 * send buffer has room. It also decides which local sockets read: each while
 * its stream has credit beyond what it holds and room in its queue, and the
 * session's queue has room; none once the session's is full, until it drained
 * (see net/local-reads.ts: a stopped socket reads nothing). Bytes read beyond a
 * stream's credit (at most one read each) wait for the peer, not for us: they
 * do not count towards the session's queue, so streams the peer gives no
 * credit cannot stop those it does (as in the native engine, which reads a
 * local socket only as far as its credit goes).
 */
import type { WebSocket } from 'ws';
import { HEADER_LEN, MAX_DATA } from '../../protocol/constants';
import * as codec from '../../protocol/frames';
import { startReading, stopReading } from '../../net/local-reads';
import { JsStream, SESSION_QUEUE_LIMIT, STREAM_QUEUE_LIMIT } from './stream';

/** Keep at most this much in the WebSocket's send buffer (bytes), so pings never wait behind much DATA. */
export const SEND_HIGH_WATER = 512 * 1024;
/**
 * When several streams have data, each turn sends at most this much (bytes):
 * a whole frame, as native/core/mux.h's kTurnBytes (why there).
 */
const TURN_BYTES = 256 * 1024;

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
  /** Of those, the bytes beyond their stream's credit (waiting for a WINDOW); each stream's share. */
  private waitingOut = 0;
  private readonly waiting = new Map<JsStream, number>();
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

  /** `s` has its local socket: it reads unless the session's queue is full or it has no credit. */
  attach(s: JsStream): void {
    this.stopped.add(s);
    this.maybeResume(s);
  }

  /** Queues bytes read from `s`'s local socket and sends what its credit allows. */
  enqueue(s: JsStream, chunk: Buffer): void {
    s.outQueue.push(chunk);
    s.outQueued += chunk.length;
    this.queuedOut += chunk.length;
    this.recount(s);
    // A peer that grants credit and never reads must not make us read every
    // local socket into memory: a stream stops reading at its limit or its
    // credit, and at the session's limit every stream stops at once, so that
    // no more than the read that crossed it comes in (each socket that still
    // read would bring one).
    if (this.sendableOut() >= SESSION_QUEUE_LIMIT) {
      this.queueFull = true;
      for (const r of this.reading) this.stop(r);
    } else if (!this.mayRead(s)) {
      this.stop(s);
    }
    this.wake(s);
  }

  /** `s` may send now (new data or credit): its turn is queued and the send loop runs. */
  wake(s: JsStream): void {
    this.credited(s);
    if (s.sendable() > 0) this.pump();
  }

  /** `s`'s credit or queue changed: it is queued for a turn if it can send, and reads again if it may. */
  credited(s: JsStream): void {
    this.recount(s);
    if (s.sendable() > 0) this.markReady(s);
    else this.maybeResume(s);
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
        // Its queue and credit both fell by n: what it holds beyond credit is unchanged.
        this.maybeResume(s);
        if (s.sendable() > 0) this.ready.push(s);
        else this.hooks.drained(s);
      }
    } finally {
      this.pumping = false;
    }
    this.resumeAfterFull();
  }

  /** A stream ended: its queued bytes, reading and turn are dropped (others may read in the room it leaves). */
  forget(s: JsStream): void {
    this.queuedOut -= s.outQueued;
    this.waitingOut -= this.waiting.get(s) ?? 0;
    this.waiting.delete(s);
    this.reading.delete(s);
    this.stopped.delete(s);
    const i = this.ready.indexOf(s);
    if (i >= 0) this.ready.splice(i, 1);
    this.resumeAfterFull();
  }

  /** Bytes queued that only wait for the WebSocket (those beyond their stream's credit wait for the peer). */
  private sendableOut(): number {
    return this.queuedOut - this.waitingOut;
  }

  /** Updates what `s` holds beyond its credit. */
  private recount(s: JsStream): void {
    const w = Math.max(0, s.outQueued - Math.max(0, s.sendCredit));
    this.waitingOut += w - (this.waiting.get(s) ?? 0);
    if (w > 0) this.waiting.set(s, w);
    else this.waiting.delete(s);
  }

  /** Whether `s`'s socket may keep reading: room in its queue, and credit beyond what it holds. */
  private mayRead(s: JsStream): boolean {
    return s.outQueued < STREAM_QUEUE_LIMIT && s.outQueued < s.sendCredit;
  }

  private stop(s: JsStream): void {
    if (!this.reading.delete(s)) return;
    this.stopped.add(s);
    stopReading(s.local!);  // only attached streams (with a local socket) read
  }

  /** Once the session's queue is half empty after it was full, every stopped socket that may read again does. */
  private resumeAfterFull(): void {
    if (!this.queueFull || this.sendableOut() >= SESSION_QUEUE_LIMIT / 2) return;
    this.queueFull = false;
    for (const s of this.stopped) this.maybeResume(s);
  }

  /** `s`'s stopped socket reads again if the session's queue is not full, its own is half empty, and it has credit beyond it. */
  private maybeResume(s: JsStream): void {
    if (this.hooks.closed() || this.queueFull || !this.stopped.has(s)) return;
    if (s.outQueued >= STREAM_QUEUE_LIMIT / 2 || s.outQueued >= s.sendCredit) return;
    this.stopped.delete(s);
    this.reading.add(s);
    startReading(s.local!);  // only streams with a local socket are stopped
  }
}
