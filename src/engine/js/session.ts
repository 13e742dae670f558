/**
 * One TWS2 session of the js engine: the multiplexer over one WebSocket.
 * Pure TypeScript on `ws`; the reference implementation. This is the facade
 * the control plane calls, and the owner of the stream table and of every
 * stream's end; its parts do the rest: dispatch.ts (frames in), relay.ts
 * (local sockets and ports), scheduler.ts (frames out, round-robin DATA),
 * flow.ts (credit and window auto-tuning) and liveness.ts (pings, timeouts).
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import { CloseCode, EARLY_DATA_LIMIT, RESET_NAMES, ResetCode, StreamKind, StreamKindValue } from '../../protocol/constants';
import * as codec from '../../protocol/frames';
import { ProtocolError } from '../../util/errors';
import { Logger, peerText } from '../../util/log';
import { validateSessionOptions } from '../options';
import { StreamIds, StreamLog } from '../stream-log';
import { answerLocal, checkReply } from '../reply';
import type { DatagramPort, EngineSession, OpenStreamOptions, SessionOptions, SessionStats, StreamClosedInfo, StreamRefusedInfo } from '../types';
import { Dispatcher } from './dispatch';
import { SessionFlow } from './flow';
import { Liveness } from './liveness';
import { LocalRelay } from './relay';
import { Scheduler } from './scheduler';
import { JsStream } from './stream';
import { StreamTable } from './stream-table';

export { jsEngineStats } from './relay';

/** How long we wait for the peer's close frame before dropping the TCP connection (ms). */
const CLOSE_GRACE_MS = 2000;

let nextSessionId = 1;

/**
 * The WebSocket must be made with `autoPong: false` (websocket.ts and
 * nothing else makes one): the session answers pings itself.
 */
export class JsSession extends EventEmitter implements EngineSession {
  readonly id = nextSessionId++;
  peerDraining = false;
  closed = false;

  private readonly log: Logger;
  private readonly streams = new StreamTable();
  private readonly ids: StreamIds;
  private draining = false;
  private bytesIn = 0;
  private bytesOut = 0;
  /** What we closed the session with, if we did. */
  private closedWith: { code: number; reason: string } | undefined;
  /** Why the connection was lost without a close frame, when we know (a socket error, our timeout). */
  private lostWith = '';
  /** Per-stream lines, rate-limited: a peer can provoke them by the thousand. */
  private readonly streamLog: StreamLog;
  private readonly sched: Scheduler;
  private readonly flow: SessionFlow;
  private readonly relay: LocalRelay;
  private readonly live: Liveness;
  private readonly dispatcher: Dispatcher;

  constructor(private readonly ws: WebSocket, opts: SessionOptions) {
    super();
    validateSessionOptions(opts);
    this.log = opts.logger.child(`session#${this.id}`);
    this.streamLog = new StreamLog(this.log);
    this.ids = new StreamIds(opts.role, opts.firstStreamId);
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data as Buffer, isBinary));
    this.live = new Liveness(ws, opts, this.log, this.streams, {
      closed: () => this.closed,
      close: (code, reason) => this.close(code, reason),
      timedOut: (why) => this.timedOut(why),
      idle: (s, reason, abortive) => {
        this.sched.send(codec.encodeReset(s.id, ResetCode.IDLE, reason));
        this.finish(s, 'idle', 'info', abortive);
      },
    });
    ws.on('error', (err: Error) => this.onWsError(err));
    ws.on('close', (code: number, reason: Buffer) => this.onClose(code, reason.toString('utf8')));
    this.sched = new Scheduler(ws, {
      closed: () => this.closed,
      sentData: (n) => {
        this.live.lastDataAt = Date.now();
        this.bytesOut += n;
      },
      drained: (s) => this.relay.maybeFin(s),
    });
    this.flow = new SessionFlow(opts, this.log, () => this.live.baseRttMs());
    this.relay = new LocalRelay(this.sched, this.flow, {
      closed: () => this.closed,
      finish: (s, how, level, abortive) => this.finish(s, how, level, abortive),
      countIn: (n) => { this.bytesIn += n; },
      countOut: (n) => { this.bytesOut += n; },
    });
    const parts = { opts, log: this.log, streams: this.streams, flow: this.flow, sched: this.sched, relay: this.relay, live: this.live };
    this.dispatcher = new Dispatcher(parts, {
      draining: () => this.draining,
      peerGoingAway: (code, reason) => this.peerGoingAway(code, reason),
      refuse: (info) => {
        this.streams.rememberClosed(info.stream);
        this.sched.send(codec.encodeReset(info.stream, info.code, info.reason));
        this.refused(info);
      },
      acceptors: () => this.listenerCount('open-request'),
      openRequest: (req) => this.emit('open-request', req),
      control: (f) => this.emit('control', f),
      addStream: (s) => this.addStream(s),
      finish: (s, how, level, abortive) => this.finish(s, how, level, abortive),
    });
  }

  get streamCount(): number {
    return this.streams.size;
  }

  stats(): SessionStats {
    return { streams: this.streams.size, bytesIn: this.bytesIn, bytesOut: this.bytesOut, rttMs: this.live.lastRttMs };
  }

  // ---- commands from the control plane ----

  openStream(local: Socket, target: string, opts: OpenStreamOptions = {}): number {
    if (opts.reply) checkReply(opts.reply);
    const s = this.newOutgoing(target, StreamKind.TCP, opts.tunnel);
    if (!s) {
      if (opts.reply) answerLocal(local, opts.reply.otherwise);
      else local.resetAndDestroy();
      return 0;
    }
    s.reply = opts.reply;
    this.relay.attach(s, local);
    return s.id;
  }

  sendControl(f: codec.ControlFrame): void {
    if (this.closed) return;
    this.sched.send(codec.encodeControl(f));
  }

  openDatagramStream(port: DatagramPort, target: string, tunnel?: string): number {
    const s = this.newOutgoing(target, StreamKind.UDP, tunnel);
    if (!s) {
      port.close();
      return 0;
    }
    this.relay.attachPort(s, port);
    return s.id;
  }

  private newOutgoing(target: string, kind: StreamKindValue, tunnel: string | undefined): JsStream | undefined {
    if (this.closed || this.peerDraining || this.ids.exhausted) return undefined;
    if (kind === StreamKind.TCP && (this.flow.processFull() || this.flow.sessionFull())) {
      this.streamLog.notOpened(`stream to ${peerText(target)} not opened: memory budget reached (--buffer-budget)`);
      return undefined;
    }
    const id = this.ids.take();
    const s = new JsStream(id, target, kind, 'opening', { sendCredit: EARLY_DATA_LIMIT, recvWindow: this.flow.freshWindow() });
    s.tunnel = tunnel;
    this.addStream(s);
    this.sched.send(codec.encodeOpen(id, s.recvWindow, kind, target));
    if (this.ids.low) this.idsRunningOut();
    return s;
  }

  /**
   * Ids are never reused within a session, so one that has opened nearly
   * 2^31 streams stops opening more: it drains (GOAWAY, so the peer knows)
   * and says so with a 'goaway' event, and the client's slot brings up a
   * fresh session while this one finishes its streams.
   */
  private idsRunningOut(): void {
    if (this.peerDraining) return;
    this.log.info('stream ids running out; draining this session for a new one');
    this.peerDraining = true;
    this.goaway(ResetCode.GOING_AWAY, 'stream ids exhausted');
    this.emit('goaway', ResetCode.GOING_AWAY, 'stream ids exhausted');
  }

  closeStream(id: number, code: number = ResetCode.CANCELLED): void {
    const s = this.streams.get(id);
    if (!s || s.done || this.closed) return;
    s.abort?.abort();
    this.sched.send(codec.encodeReset(s.id, code, RESET_NAMES[code] ?? 'closed'));
    this.finish(s, 'closed locally', 'info', true);
  }

  goaway(code: number, reason: string): void {
    if (this.closed || this.draining) return;
    this.sched.send(codec.encodeGoaway(code, reason));
    // Datagrams have no end a drain could wait for: udp streams end now
    // (RESET 9, after the GOAWAY). Before `draining` is set, so the last of
    // them ending does not close the session: that is done below.
    for (const s of this.streams.list()) {
      if (!s.isUdp) continue;
      s.abort?.abort();
      this.sched.send(codec.encodeReset(s.id, ResetCode.GOING_AWAY, reason));
      this.finish(s, 'going away', 'info');
    }
    this.draining = true;
    this.log.debug(`sent GOAWAY (${reason}); ${this.streams.size} streams draining`);
    if (this.streams.size === 0) this.close(CloseCode.GOING_AWAY, reason);
  }

  close(code: number, reason: string, how = reason): void {
    if (this.closed) return;
    this.closed = true;
    this.closedWith = { code, reason };
    this.live.stop();
    this.resetAllLocally(how);
    try {
      this.ws.close(code, codec.clampReason(reason));  // at most 120 bytes, whole characters
    } catch {
      this.ws.terminate();
    }
    // A peer that never answers our close frame must not hold the socket open.
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  // ---- frames in ----

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.live.lastRecv = Date.now();
    if (this.closed) return;
    try {
      if (!isBinary) throw new ProtocolError('text message');
      this.dispatcher.dispatch(codec.decodeFrame(data));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.log.warn(`protocol error from peer: ${err.message}; closing session`);
      this.close(err.closeCode ?? CloseCode.PROTOCOL_ERROR, err.message, 'protocol error');
      return;
    }
    this.live.gateReading();
  }

  /** Only the first GOAWAY changes anything (and is logged): repeats are ignored. */
  private peerGoingAway(code: number, reason: string): void {
    if (this.peerDraining) return;
    this.peerDraining = true;
    this.log.info(`peer is going away (${reason || RESET_NAMES[code] || code})`);
    this.emit('goaway', code, reason);
    if (this.streams.size === 0) this.emit('idle');
  }

  // ---- teardown ----

  /** Nothing came from the peer for the timeout (liveness logged it): the connection is dropped, no close handshake. */
  private timedOut(why: string): void {
    this.lostWith = why;
    this.closed = true;
    this.live.stop();
    this.resetAllLocally('session timed out');
    this.ws.terminate();
  }

  /** ws found a frame it cannot take (its codes start WS_ERR_): it closes the WebSocket itself; the streams end now. */
  private onWsError(err: Error): void {
    this.log.debug(`websocket error: ${err.message}`);
    if (this.closed || !String((err as NodeJS.ErrnoException).code).startsWith('WS_ERR_')) return;
    this.closed = true;
    this.live.stop();
    this.resetAllLocally('protocol error');
  }

  private onClose(code: number, reason: string): void {
    this.live.stop();
    this.closed = true;
    // Streams still open here: the peer closed first, or the connection went without a close handshake.
    this.resetAllLocally(code === CloseCode.ABNORMAL ? 'session lost' : 'peer closed the session');
    this.streamLog.flush();
    // We closed and the peer never answered (1006): why it ended is our reason, as the native engine reports it.
    if (code === CloseCode.ABNORMAL && this.closedWith) this.emit('close', this.closedWith.code, this.closedWith.reason);
    else this.emit('close', code, code === CloseCode.ABNORMAL ? this.lostWith : reason);
  }

  /** The connection failed (ECONNRESET, say): ws closes 1006 without a word, so the session remembers why. */
  connectionFailed(why: string): void {
    this.lostWith ||= why;
  }

  /** An OPEN refused before a stream existed: a rate-limited line, and an event for metrics. */
  private refused(info: StreamRefusedInfo): void {
    this.streamLog.refused(info);
    this.emit('stream-refused', info);
  }

  /** Every stream ends, its local socket reset; each gets its close line, with `why`. */
  private resetAllLocally(why: string): void {
    for (const s of this.streams.list()) {
      s.abort?.abort();
      this.finish(s, why, 'info', true);
    }
  }

  private addStream(s: JsStream): void {
    this.streams.add(s);
    this.flow.track(s);
  }

  /** Frees a stream exactly once: logs its close line with bytes each way. */
  private finish(s: JsStream, how: string, level: 'info' | 'debug', abortive = false): void {
    if (s.done) return;
    s.done = true;
    this.streams.remove(s);
    this.sched.forget(s);
    this.flow.release(s);
    this.relay.release(s, abortive);
    const info: StreamClosedInfo = { stream: s.id, target: s.target, tunnel: s.tunnel, bytesIn: s.bytesIn, bytesOut: s.bytesOut, how };
    this.streamLog.closed(level, info, s.openedAt);
    this.emit('stream-closed', info);
    if (this.streams.size === 0) {
      if (this.draining && !this.closed) this.close(CloseCode.GOING_AWAY, 'drained');
      else if (this.peerDraining) this.emit('idle');
    }
  }
}
