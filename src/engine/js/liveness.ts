/**
 * The js session's liveness: pings after silence and a few RTT probes each
 * time DATA stops (none after that until DATA moves again: an idle session
 * sends only what liveness needs), pongs (ours to send, bounded), the peer
 * timeout, the gate that stops reading from a peer that does not read, and
 * the idle and udp timeouts of streams. One timer drives it all.
 */
import type { WebSocket } from 'ws';
import { CloseCode } from '../../protocol/constants';
import type { Logger } from '../../util/log';
import type { SessionOptions } from '../types';
import { pongAnswerer } from './pongs';
import type { JsStream } from './stream';
import type { StreamTable } from './stream-table';

/** Round-trip samples kept for the base-RTT estimate (one per probe). */
const RTT_SAMPLES = 8;
/** How often an RTT probe ping goes out while the session is quiet (ms). */
const RTT_PROBE_MS = 250;
/** RTT probes after DATA last moved (or the session opened); then none until DATA moves again. */
const QUIET_PROBES = 3;
/** Quiet RTT samples needed before the window may grow: one sample can be an outlier. */
const MIN_RTT_SAMPLES = 3;
/** When the first RTT probe goes out after the session opens (ms). */
const FIRST_PROBE_MS = 200;
/** No DATA for this long makes the session quiet enough to measure its path RTT (ms). */
const QUIET_MS = 50;
/**
 * We stop reading from the peer while this much waits to go out to it
 * (bytes): what it makes us answer (pongs, RESETs, WINDOWs) cannot pile up
 * when it does not read. DATA alone stays below (the scheduler stops at
 * SEND_HIGH_WATER, plus a frame).
 */
const READ_GATE = 1024 * 1024;

/** What liveness tells the session, and asks it about. */
export interface LivenessHooks {
  closed(): boolean;
  /** The peer has not read for the timeout: close the session (code, reason). */
  close(code: number, reason: string): void;
  /** Nothing came from the peer for the timeout: drop the session at once. */
  timedOut(why: string): void;
  /** `s` was idle too long: RESET it (code 7, `reason`) and end it. */
  idle(s: JsStream, reason: string, abortive: boolean): void;
}

export class Liveness {
  /** Last time anything (frame, ping, pong) came from the peer (ms). */
  lastRecv = Date.now();
  /** Last time DATA went out or came in (ms). */
  lastDataAt = 0;
  private lastPingAt = 0;
  private pingSentAt = 0n;
  /** Whether the outstanding ping was sent while no DATA moved, so its RTT is the path's. */
  private pingQuiet = false;
  /** Quiet pings sent since DATA last moved at `probedData`. */
  private probes = 0;
  private probedData = 0;
  /** The last few ping round trips in ms; their minimum estimates the path delay without queueing. */
  private readonly rtts: number[] = [];
  /** Their minimum once there are MIN_RTT_SAMPLES of them, else 0 (ms): kept, as every local write asks for it. */
  private baseRtt = 0;
  /** Pongs are ours to send (the WebSocket is made with autoPong: false), one in the send queue at most (pongs.ts). */
  private readonly answerPing: (ping: Buffer) => void;
  /** Since when we have not read from the peer because it does not read what we send (0: reading). */
  private pausedAt = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    private readonly opts: SessionOptions,
    private readonly log: Logger,
    private readonly streams: StreamTable,
    private readonly hooks: LivenessHooks,
  ) {
    this.answerPing = pongAnswerer(ws, opts.role === 'client');
    ws.on('ping', (data: Buffer) => {
      this.lastRecv = Date.now();
      this.answerPing(data);
      this.gateReading();
    });
    ws.on('pong', (data: Buffer) => this.onPong(data));
    const tick = Math.max(10, Math.min(RTT_PROBE_MS, Math.floor(opts.timeoutMs / 4)));
    this.timer = setInterval(() => this.check(), tick);
    this.timer.unref();
    // First RTT probe once the session settled; liveness pings come from the timer.
    setTimeout(() => this.probeRtt(), FIRST_PROBE_MS).unref();
  }

  /** The latest ping round trip (ms), if any. */
  get lastRttMs(): number | undefined {
    return this.rtts[this.rtts.length - 1];
  }

  /** The path's round trip without queueing (ms): the least of the last samples, 0 until there are enough. */
  baseRttMs(): number {
    return this.baseRtt;
  }

  /** Stops the timer: the session is closed. */
  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * Stops reading from the peer while too much waits to go out to it (it is
   * not reading what it makes us answer); reading resumes once everything
   * queued so far is written, which an empty pong queued behind it tells us.
   */
  gateReading(): void {
    if (this.pausedAt !== 0 || this.hooks.closed() || this.ws.readyState !== 1 || this.ws.bufferedAmount < READ_GATE) return;
    this.pausedAt = Date.now();
    this.ws.pause();
    this.ws.pong(Buffer.alloc(0), this.opts.role === 'client', (err?: Error) => {
      if (err || this.hooks.closed()) return;
      this.pausedAt = 0;
      this.ws.resume();
    });
  }

  /** True when no DATA moved for a while and nothing waits to be sent: an RTT sample now measures the path, not our queues. */
  private quiet(now = Date.now()): boolean {
    return now - this.lastDataAt >= QUIET_MS && this.ws.bufferedAmount === 0;
  }

  private probeRtt(): void {
    if (!this.hooks.closed() && this.quiet() && this.probesSinceData() < QUIET_PROBES) this.ping();
  }

  /** Quiet pings sent since DATA last moved. */
  private probesSinceData(): number {
    return this.lastDataAt === this.probedData ? this.probes : 0;
  }

  private ping(): void {
    if (this.ws.readyState !== 1) return;
    this.lastPingAt = Date.now();
    this.pingQuiet = this.quiet(this.lastPingAt);
    if (this.pingQuiet) {
      this.probes = this.probesSinceData() + 1;
      this.probedData = this.lastDataAt;
    }
    this.pingSentAt = process.hrtime.bigint();
    const payload = Buffer.allocUnsafe(8);
    payload.writeBigUInt64BE(this.pingSentAt);
    this.ws.ping(payload);
  }

  private onPong(data: Buffer): void {
    this.lastRecv = Date.now();
    if (data.length !== 8 || data.readBigUInt64BE(0) !== this.pingSentAt || !this.pingQuiet) return;
    this.pingQuiet = false;
    this.rtts.push(Number(process.hrtime.bigint() - this.pingSentAt) / 1e6);
    if (this.rtts.length > RTT_SAMPLES) this.rtts.shift();
    this.baseRtt = this.rtts.length >= MIN_RTT_SAMPLES ? Math.min(...this.rtts) : 0;
  }

  private check(): void {
    const now = Date.now();
    if (this.pausedAt !== 0 && now - this.pausedAt > this.opts.timeoutMs) {
      // It sends and never reads: it gets a close frame it will not read either, and the socket goes after the grace.
      this.log.warn(`peer is not reading (${this.ws.bufferedAmount} bytes waiting for it); closing session`);
      this.hooks.close(CloseCode.POLICY, 'peer is not reading');
      return;
    }
    const quiet = now - this.lastRecv;
    // While we hold off reading, its silence is ours, not the peer's.
    if (quiet > this.opts.timeoutMs && this.pausedAt === 0) {
      const why = `peer silent for ${quiet} ms`;
      this.log.warn(`${why} (timeout ${this.opts.timeoutMs} ms); closing session`);
      this.hooks.timedOut(why);
      return;
    }
    this.expireIdleStreams(now);
    const sincePing = now - this.lastPingAt;
    if ((quiet >= this.opts.timeoutMs / 2 && sincePing >= this.opts.timeoutMs / 2) ||
      (sincePing >= RTT_PROBE_MS && this.quiet(now) && this.probesSinceData() < QUIET_PROBES)) {
      this.ping();
    }
  }

  /** Udp streams end after udpTimeoutMs without a datagram, open tcp streams after idleTimeoutMs without bytes (0: never). */
  private expireIdleStreams(now: number): void {
    const idle = this.opts.idleTimeoutMs;
    for (const s of this.streams.list()) {
      if (s.state === 'accepting') continue;
      if (s.isUdp && now - s.lastActive > this.opts.udpTimeoutMs) {
        this.hooks.idle(s, 'udp idle', false);
      } else if (!s.isUdp && idle > 0 && s.state === 'open' && now - s.lastActive > idle) {
        this.hooks.idle(s, 'idle', true);
      }
    }
  }
}
