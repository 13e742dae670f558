/**
 * One TWS2 session of the js engine: the multiplexer over one WebSocket.
 * Reads frames, keeps every stream's state, schedules DATA round-robin and
 * watches liveness. Pure TypeScript on `ws`; the reference implementation.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import {
  CloseCode, EARLY_DATA_LIMIT, HEADER_LEN, MAX_DATA, MAX_U32, RESET_NAMES, ResetCode, StreamKind, StreamKindValue,
} from '../../protocol/constants';
import * as codec from '../../protocol/frames';
import { ProtocolError, TwsError } from '../../util/errors';
import { Logger, peerText } from '../../util/log';
import { addProcessCredit, processFull, sessionShare, windowRoom } from '../credit';
import { validateSessionOptions } from '../options';
import {
  DatagramPort, EngineSession, OpenRequest, SessionOptions, SessionStats, StreamClosedInfo, StreamRefusedInfo,
} from '../types';
import { StreamIds, StreamLog } from '../stream-log';
import { HELD_DATAGRAM_BYTES, HELD_DATAGRAMS, JsStream, own, SESSION_QUEUE_LIMIT, STREAM_QUEUE_LIMIT } from './stream';

/** Keep at most this much in the WebSocket's send buffer, so pings never wait behind much DATA. */
const SEND_HIGH_WATER = 512 * 1024;
/** When several streams have data, each turn sends at most this much. */
const TURN_BYTES = 64 * 1024;
/** Closed stream ids remembered to tell late frames from id reuse. */
const RECENT_CLOSED = 4096;
/** Shortest auto-tuning epoch (ms): shorter ones measure bursts, not rates. */
const TUNE_EPOCH_MS = 20;
/** Round-trip samples kept for the base-RTT estimate (one per probe). */
const RTT_SAMPLES = 8;
/** How often an RTT probe ping goes out while the session is quiet (ms). */
const RTT_PROBE_MS = 250;
/** Quiet RTT samples needed before the window may grow: one sample can be an outlier. */
const MIN_RTT_SAMPLES = 3;
/** When the first RTT probe goes out after the session opens (ms). */
const FIRST_PROBE_MS = 200;
/** No DATA for this long makes the session quiet enough to measure its path RTT (ms). */
const QUIET_MS = 50;
/** How long we wait for the peer's close frame before dropping the TCP connection (ms). */
const CLOSE_GRACE_MS = 2000;
/**
 * We stop reading from the peer while this much waits to go out to it: what
 * it makes us answer (pongs, RESETs, WINDOWs) cannot pile up when it does not
 * read. DATA alone stays below (pump() stops at SEND_HIGH_WATER, plus a frame).
 */
const READ_GATE = 1024 * 1024;

let nextSessionId = 1;

/** What the js engine dropped rather than queue without bound, process-wide (EngineStats). */
export const jsEngineStats = { datagramsDropped: 0 };

/**
 * The WebSocket must be made with `autoPong: false` (websocket.ts and
 * nothing else makes one): the session answers pings itself.
 */
export class JsSession extends EventEmitter implements EngineSession {
  readonly id = nextSessionId++;
  peerDraining = false;
  closed = false;

  private readonly log: Logger;
  private readonly streams = new Map<number, JsStream>();
  private readonly recentClosed = new Set<number>();
  private readonly ids: StreamIds;
  private readonly ready: JsStream[] = [];
  private congested = false;
  private pumping = false;
  private draining = false;
  private lastRecv = Date.now();
  private lastPingAt = 0;
  private pingSentAt = 0n;
  /** Whether the outstanding ping was sent while no DATA moved, so its RTT is the path's. */
  private pingQuiet = false;
  /** Last time DATA went out or came in (ms). */
  private lastDataAt = 0;
  /** The last few ping round trips in ms; their minimum estimates the path delay without queueing. */
  private readonly rtts: number[] = [];
  private readonly timer: NodeJS.Timeout;
  private bytesIn = 0;
  private bytesOut = 0;
  /** Credit granted on tcp streams and not yet written locally (also counted process-wide). */
  private outstanding = 0;
  /** Bytes read from local sockets and not yet sent, all streams; and the streams paused for it. */
  private queuedOut = 0;
  private readonly pausedLocals = new Set<JsStream>();
  /** What we closed the session with, if we did. */
  private closedWith: { code: number; reason: string } | undefined;
  /** A pong is in the WebSocket's send queue; `pongOwed` is the latest ping's payload to answer after it. */
  private pongInFlight = false;
  private pongOwed: Buffer | undefined;
  /** Since when we have not read from the peer because it does not read what we send (0: reading). */
  private pausedAt = 0;
  /** Per-stream lines, rate-limited: a peer can provoke them by the thousand. */
  private readonly streamLog: StreamLog;

  constructor(private readonly ws: WebSocket, private readonly opts: SessionOptions) {
    super();
    validateSessionOptions(opts);
    this.log = opts.logger.child(`session#${this.id}`);
    this.streamLog = new StreamLog(this.log);
    this.ids = new StreamIds(opts.role, opts.firstStreamId);
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data as Buffer, isBinary));
    ws.on('ping', (data: Buffer) => {
      this.lastRecv = Date.now();
      this.answerPing(data);
      this.gateReading();
    });
    ws.on('pong', (data: Buffer) => this.onPong(data));
    ws.on('error', (err: Error) => this.log.debug(`websocket error: ${err.message}`));
    ws.on('close', (code: number, reason: Buffer) => this.onClose(code, reason.toString('utf8')));
    const tick = Math.max(10, Math.min(RTT_PROBE_MS, Math.floor(opts.timeoutMs / 4)));
    this.timer = setInterval(() => this.checkLiveness(), tick);
    this.timer.unref();
    // First RTT probe once the session settled; liveness pings come from the timer.
    setTimeout(() => this.probeRtt(), FIRST_PROBE_MS).unref();
  }

  get streamCount(): number {
    return this.streams.size;
  }

  stats(): SessionStats {
    return { streams: this.streams.size, bytesIn: this.bytesIn, bytesOut: this.bytesOut, rttMs: this.rtts[this.rtts.length - 1] };
  }

  // ---- commands from the control plane ----

  openStream(local: Socket, target: string): number {
    const s = this.newOutgoing(target, StreamKind.TCP);
    if (!s) {
      local.resetAndDestroy();
      return 0;
    }
    this.attach(s, local);
    return s.id;
  }

  openDatagramStream(port: DatagramPort, target: string): number {
    const s = this.newOutgoing(target, StreamKind.UDP);
    if (!s) {
      port.close();
      return 0;
    }
    this.attachPort(s, port);
    return s.id;
  }

  private newOutgoing(target: string, kind: StreamKindValue): JsStream | undefined {
    if (this.closed || this.peerDraining || this.ids.exhausted) return undefined;
    if (kind === StreamKind.TCP && (processFull(this.opts.processBudget) || this.sessionFull())) {
      this.log.warn(`stream to ${peerText(target)} not opened: memory budget reached (--buffer-budget)`);
      return undefined;
    }
    const id = this.ids.take();
    const s = new JsStream(id, target, kind, 'opening', { sendCredit: EARLY_DATA_LIMIT, recvWindow: this.freshWindow() });
    this.addStream(s);
    this.send(codec.encodeOpen(id, s.recvWindow, kind, target));
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

  goaway(code: number, reason: string): void {
    if (this.closed || this.draining) return;
    this.draining = true;
    this.send(codec.encodeGoaway(code, reason));
    this.log.debug(`sent GOAWAY (${reason}); ${this.streams.size} streams draining`);
    if (this.streams.size === 0) this.close(CloseCode.GOING_AWAY, reason);
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closedWith = { code, reason };
    clearInterval(this.timer);
    this.resetAllLocally(reason);
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
    this.lastRecv = Date.now();
    if (this.closed) return;
    try {
      if (!isBinary) throw new ProtocolError('text message');
      this.dispatch(codec.decodeFrame(data));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.log.warn(`protocol error from peer: ${err.message}; closing session`);
      this.close(err.closeCode ?? CloseCode.PROTOCOL_ERROR, err.message);
      return;
    }
    this.gateReading();
  }

  /**
   * Pongs are ours to send (the WebSocket is made with autoPong: false): at
   * most one is in the send queue, and of the pings that arrive meanwhile
   * only the latest is answered (RFC 6455 §5.5.3 allows it), so a peer that
   * pings and never reads cannot make pongs pile up.
   */
  private answerPing(data: Buffer): void {
    if (this.ws.readyState !== 1) return;
    if (this.pongInFlight) {
      this.pongOwed = Buffer.from(data);
      return;
    }
    this.pongInFlight = true;
    this.ws.pong(data, this.opts.role === 'client', () => {
      this.pongInFlight = false;
      const next = this.pongOwed;
      this.pongOwed = undefined;
      if (next) this.answerPing(next);
    });
  }

  /**
   * Stops reading from the peer while too much waits to go out to it (it is
   * not reading what it makes us answer); reading resumes once everything
   * queued so far is written, which an empty pong queued behind it tells us.
   */
  private gateReading(): void {
    if (this.pausedAt !== 0 || this.closed || this.ws.readyState !== 1 || this.ws.bufferedAmount < READ_GATE) return;
    this.pausedAt = Date.now();
    this.ws.pause();
    this.ws.pong(Buffer.alloc(0), this.opts.role === 'client', (err?: Error) => {
      if (err || this.closed) return;
      this.pausedAt = 0;
      this.ws.resume();
    });
  }

  private dispatch(f: codec.Frame): void {
    if (f.type === 'goaway') {
      this.peerDraining = true;
      this.log.info(`peer is going away (${f.reason || RESET_NAMES[f.code] || f.code})`);
      this.emit('goaway', f.code, f.reason);
      if (this.streams.size === 0) this.emit('idle');
      return;
    }
    if (f.type === 'open') return this.onOpen(f);
    if (f.type === 'unknown') return;
    const s = this.streams.get(f.stream);
    if (!s) {
      // Late frames for a stream we already closed are expected; frames for
      // ids never opened are not, but are harmless, so both are ignored.
      return;
    }
    switch (f.type) {
      case 'open-ok': return this.onOpenOk(s, f.window);
      case 'data': return this.onData(s, f.payload);
      case 'window': return this.onWindow(s, f.increment);
      case 'fin': return this.onFin(s);
      case 'reset': return this.onReset(s, f.code, f.reason);
      case 'datagram': return this.onDatagram(s, f.payload);
    }
  }

  private onOpen(f: { stream: number; window: number; kind: number; target: string }): void {
    const peerParity = this.opts.role === 'server' ? 1 : 0;
    if (f.stream % 2 !== peerParity) throw new ProtocolError(`OPEN with id ${f.stream} of the wrong parity`);
    if (this.streams.has(f.stream) || this.recentClosed.has(f.stream)) {
      throw new ProtocolError(`OPEN for stream ${f.stream} already in use`);
    }
    const refuse = (code: number, reason: string): void => {
      this.rememberClosed(f.stream);
      this.send(codec.encodeReset(f.stream, code, reason));
      this.refused({ stream: f.stream, target: f.target, code, reason });
    };
    if (this.draining) return refuse(ResetCode.GOING_AWAY, 'going away');
    if (this.opts.role === 'client') return refuse(ResetCode.DENIED, 'client accepts no streams');
    if (f.kind === StreamKind.UDP && this.opts.noUdp) return refuse(ResetCode.DENIED, 'udp is disabled on this server');
    if (this.streams.size >= this.opts.maxStreams) return refuse(ResetCode.TOO_MANY_STREAMS, 'too many streams');
    if (f.kind === StreamKind.TCP && processFull(this.opts.processBudget)) return refuse(ResetCode.TOO_MANY_STREAMS, 'memory budget reached');
    if (f.kind === StreamKind.TCP && this.sessionFull()) return refuse(ResetCode.TOO_MANY_STREAMS, 'session memory share reached');
    if (this.listenerCount('open-request') === 0) return refuse(ResetCode.DENIED, 'no acceptor');

    const s = new JsStream(f.stream, f.target, f.kind, 'accepting', { sendCredit: f.window, recvWindow: this.opts.initialWindow });
    s.abort = new AbortController();
    this.addStream(s);
    let answered = false;
    const req: OpenRequest = {
      stream: s.id,
      kind: f.kind,
      target: f.target,
      signal: s.abort.signal,
      accept: (socket) => {
        if (answered || s.isUdp) throw new TwsError('TWS_ERR_USAGE', 'open request answered twice, or a udp request given a socket');
        answered = true;
        if (s.done) { socket.destroy(); return; }
        this.onAccepted(s, socket);
      },
      acceptDatagrams: (port) => {
        if (answered || !s.isUdp) throw new TwsError('TWS_ERR_USAGE', 'open request answered twice, or a tcp request given a datagram port');
        answered = true;
        if (s.done) { port.close(); return; }
        this.markOpen(s);
        this.attachPort(s, port);
        s.heldBytes = 0;
        for (const d of s.held.splice(0)) port.send(d);
        if (s.finRecv) this.finish(s, 'fin', 'info');
      },
      reject: (code, reason) => {
        if (answered) throw new TwsError('TWS_ERR_USAGE', 'open request answered twice');
        answered = true;
        if (s.done) return;
        this.send(codec.encodeReset(s.id, code, reason));
        this.finish(s, `refused: ${reason}`, 'info');
      },
    };
    this.emit('open-request', req);
  }

  /** The acceptor's side: OPEN_OK out, the full window granted (sized by the session budget now, not at OPEN). */
  private markOpen(s: JsStream): void {
    s.state = 'open';
    s.abort = undefined;
    s.recvWindow = s.isUdp ? this.opts.initialWindow : this.freshWindow();
    this.setGranted(s, s.recvWindow);
    s.epochStart = performance.now();
    this.send(codec.encodeOpenOk(s.id, s.recvWindow));
  }

  private onAccepted(s: JsStream, socket: Socket): void {
    this.markOpen(s);
    this.attach(s, socket);
    for (const chunk of s.early.take()) this.deliver(s, chunk);
    if (s.finRecv) {
      this.flushGathered(s);
      socket.end();
    }
    this.log.debug(`stream#${s.id} accepted → ${peerText(s.target)}`);
  }

  private onOpenOk(s: JsStream, window: number): void {
    if (s.state !== 'opening') throw new ProtocolError(`unexpected OPEN_OK for stream ${s.id}`);
    s.state = 'open';
    s.sendCredit = window - s.bytesOut;
    s.epochStart = performance.now();
    s.heldBytes = 0;
    for (const d of s.held.splice(0)) this.sendDatagram(s, d);
    if (s.sendable() > 0) this.markReady(s);
    this.pump();
  }

  private onData(s: JsStream, payload: Buffer): void {
    if (s.isUdp) throw new ProtocolError(`DATA on udp stream ${s.id}`);
    if (s.state === 'opening') throw new ProtocolError(`DATA before OPEN_OK on stream ${s.id}`);
    if (s.finRecv) throw new ProtocolError(`DATA after FIN on stream ${s.id}`);
    this.lastDataAt = this.lastRecv;
    s.lastActive = this.lastRecv;
    s.recvd += payload.length;
    if (s.recvd > s.recvGranted) throw new ProtocolError(`stream ${s.id} exceeded its flow-control window`);
    if (s.state === 'accepting') {
      s.early.push(payload);
      return;
    }
    if (s.recvGranted - s.recvd < s.recvWindow / 8) s.starved = true;
    this.deliver(s, payload);
  }

  /** Writes peer bytes to the local socket; credit goes back only once the kernel has them. */
  private deliver(s: JsStream, payload: Buffer): void {
    if (s.local!.destroyed) return;
    // While earlier writes are in flight, payloads wait gathered (see Gather); order is kept.
    if (s.writing > 0) {
      s.gathered.push(payload);
      return;
    }
    this.flushGathered(s);
    this.writeLocal(s, own(payload));
  }

  private flushGathered(s: JsStream): void {
    if (s.gathered.empty || !s.local || s.local.destroyed) return;
    for (const chunk of s.gathered.take()) this.writeLocal(s, chunk);
  }

  private writeLocal(s: JsStream, buf: Buffer): void {
    s.writing++;
    s.local!.write(buf, (err) => {
      s.writing--;
      if (err || s.done) return;
      s.bytesIn += buf.length;
      this.bytesIn += buf.length;
      this.credit(-buf.length);
      this.consumed(s, buf.length);
      if (s.writing === 0) this.flushGathered(s);
    });
  }

  // ---- credit accounting: what the peer may still send us, per session and per process ----

  private addStream(s: JsStream): void {
    this.streams.set(s.id, s);
    if (!s.isUdp) this.credit(s.recvGranted - s.bytesIn);
  }

  /** Sets the total the peer may send on `s` (a grant), counted against both budgets. */
  private setGranted(s: JsStream, granted: number): void {
    if (!s.isUdp) this.credit(granted - s.recvGranted);
    s.recvGranted = granted;
  }

  private credit(delta: number): void {
    this.outstanding += delta;
    addProcessCredit(delta);
  }

  /**
   * This session holds its share of the process budget (a quarter: a client
   * has two sessions by default) already: its new streams are refused, so
   * one client cannot take the budget from everyone.
   */
  private sessionFull(): boolean {
    return this.outstanding + EARLY_DATA_LIMIT > this.share();
  }

  /** A server's sessions are different parties and get a quarter each; a client's all serve its own users. */
  private share(): number {
    return this.opts.role === 'server' ? sessionShare(this.opts.processBudget) : this.opts.processBudget;
  }

  /** Room for larger windows under this session's and the process's budgets. */
  private windowRoom(): number {
    // Larger windows may use half the session's share at most: the other half keeps room for new streams' minimum windows.
    return windowRoom(this.outstanding, Math.min(this.opts.sessionBudget, Math.floor(this.share() / 2)), this.opts.processBudget);
  }

  /** The window for a new stream: the initial one while the budgets have room, else the minimum. */
  private freshWindow(): number {
    return Math.max(EARLY_DATA_LIMIT, Math.min(this.opts.initialWindow, this.windowRoom()));
  }

  /** Counts bytes written locally; returns credit, growing the window when the sender is window-limited. */
  private consumed(s: JsStream, n: number): void {
    s.unreturned += n;
    s.epochBytes += n;
    const now = performance.now();
    const elapsed = now - s.epochStart;
    if (s.epochBytes >= s.recvWindow && elapsed >= TUNE_EPOCH_MS) {
      // The window is the limit when the peer (nearly) ran out of credit while
      // our socket kept up (starved, little queued here), or when rate × base RTT nears the window (a
      // long path: the base RTT is the minimum of pings sent while no DATA
      // moved). Growth continues only while it pays off, i.e. the rate rose by
      // a quarter since the last growth: a window grown beyond that only fills
      // queues and delays every other stream of the session. Epochs of at least
      // TUNE_EPOCH_MS keep the rate estimate from being noise.
      const rate = s.epochBytes / elapsed;
      const baseRtt = this.rtts.length >= MIN_RTT_SAMPLES ? Math.min(...this.rtts) : 0;
      const keptUp = (s.local?.writableLength ?? 0) + s.gathered.bytes < s.recvWindow / 2;
      const limited = (s.starved && keptUp) || rate * 2 * baseRtt >= s.recvWindow;
      const grow = Math.min(s.recvWindow, this.opts.maxWindow - s.recvWindow);
      if (grow > 0 && limited && rate > 1.25 * s.rateAtGrowth && grow <= this.windowRoom()) {
        s.recvWindow += grow;
        s.unreturned += grow;
        s.rateAtGrowth = rate;
        if (this.log.enabled('debug')) {
          this.log.debug(`stream#${s.id} window → ${s.recvWindow} (${(rate / 1000).toFixed(1)} MB/s, base rtt ${baseRtt.toFixed(2)} ms)`);
        }
      }
      s.epochStart = now;
      s.epochBytes = 0;
      s.starved = false;
    }
    if (s.finRecv || s.unreturned < s.recvWindow / 4) return;
    this.setGranted(s, s.recvGranted + s.unreturned);
    this.send(codec.encodeWindow(s.id, s.unreturned));
    s.unreturned = 0;
  }

  private onWindow(s: JsStream, increment: number): void {
    s.sendCredit += increment;
    if (s.sendCredit > MAX_U32) throw new ProtocolError(`stream ${s.id} window overflow`);
    if (s.state !== 'accepting' && s.sendable() > 0) {
      this.markReady(s);
      this.pump();
    }
  }

  private onFin(s: JsStream): void {
    if (s.finRecv) throw new ProtocolError(`second FIN on stream ${s.id}`);
    if (s.state === 'opening') throw new ProtocolError(`FIN before OPEN_OK on stream ${s.id}`);
    s.finRecv = true;
    if (s.isUdp) {
      // A udp stream has no half-close: FIN simply ends it.
      if (s.state === 'open') this.finish(s, 'fin', 'info');
      return;
    }
    if (s.state === 'open') {
      this.flushGathered(s);
      s.local!.end();
    }
  }

  private onReset(s: JsStream, code: number, reason: string): void {
    const what = `peer reset: ${RESET_NAMES[code] ?? `code ${code}`}${reason ? ` (${reason})` : ''}`;
    s.abort?.abort();
    this.finish(s, what, code === ResetCode.CANCELLED ? 'debug' : 'info', true);
  }

  private onDatagram(s: JsStream, payload: Buffer): void {
    if (!s.isUdp) throw new ProtocolError(`DATAGRAM on tcp stream ${s.id}`);
    if (s.state === 'opening') throw new ProtocolError(`DATAGRAM before OPEN_OK on stream ${s.id}`);
    s.lastActive = Date.now();
    s.bytesIn += payload.length;
    this.bytesIn += payload.length;
    if (s.state === 'accepting') return this.hold(s, payload);
    s.port!.send(payload);
  }

  /** Sends one datagram; like UDP it is dropped rather than queued when the link is full. */
  private sendDatagram(s: JsStream, payload: Buffer): void {
    if (s.done) return;
    s.lastActive = Date.now();
    if (s.state === 'opening') return this.hold(s, payload);
    if (this.ws.bufferedAmount > SEND_HIGH_WATER) {
      jsEngineStats.datagramsDropped++;
      return;
    }
    s.bytesOut += payload.length;
    this.bytesOut += payload.length;
    this.send(codec.encodeDatagram(s.id, payload));
  }

  /** Holds a datagram for a stream not open yet (it may wait seconds for DNS), within bounds; the rest are dropped and counted. */
  private hold(s: JsStream, payload: Buffer): void {
    if (s.held.length >= HELD_DATAGRAMS || s.heldBytes + payload.length > HELD_DATAGRAM_BYTES) {
      jsEngineStats.datagramsDropped++;
      return;
    }
    s.held.push(payload);
    s.heldBytes += payload.length;
  }

  private attachPort(s: JsStream, port: DatagramPort): void {
    s.port = port;
    port.onDatagram = (payload) => this.sendDatagram(s, payload);
  }

  // ---- local sockets ----

  private attach(s: JsStream, local: Socket): void {
    s.local = local;
    local.setNoDelay(true);
    local.on('data', (chunk: Buffer) => {
      s.lastActive = Date.now();
      s.outQueue.push(chunk);
      s.outQueued += chunk.length;
      this.queuedOut += chunk.length;
      // A peer that grants credit and never reads must not make us read every
      // local socket into memory: each stream, and the session as a whole, stops reading at a limit.
      if (!s.localPaused && (s.outQueued >= STREAM_QUEUE_LIMIT || this.queuedOut >= SESSION_QUEUE_LIMIT)) {
        s.localPaused = true;
        this.pausedLocals.add(s);
        local.pause();
      }
      if (s.sendable() > 0) {
        this.markReady(s);
        this.pump();
      }
    });
    local.on('end', () => {
      s.localEnded = true;
      this.maybeFin(s);
    });
    local.on('error', (err: NodeJS.ErrnoException) => {
      if (s.done) return;
      this.send(codec.encodeReset(s.id, ResetCode.CANCELLED, 'local socket error'));
      this.finish(s, `local error: ${err.code ?? err.message}`, 'info', true);
    });
    local.on('close', () => {
      if (s.done) return;
      if (s.localEnded && s.finRecv) {
        // Both directions ended normally, so Node closed the socket; what it
        // read may still be queued for credit, and the FIN goes after it.
        s.localClosed = true;
        if (s.finSent) this.finish(s, 'fin', 'info');
      } else {
        this.send(codec.encodeReset(s.id, ResetCode.CANCELLED, 'local socket closed'));
        this.finish(s, 'local socket closed', 'info');
      }
    });
  }

  private maybeFin(s: JsStream): void {
    if (!s.finDue() || this.closed) return;
    s.finSent = true;
    this.send(codec.encodeFin(s.id));
    if (s.localClosed) this.finish(s, 'fin', 'info');
  }

  // ---- scheduling ----

  private markReady(s: JsStream): void {
    if (!this.ready.includes(s)) this.ready.push(s);
  }

  /** Sends queued DATA round-robin while the WebSocket's send buffer has room. */
  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    try {
      while (!this.congested && this.ready.length > 0) {
        const s = this.ready.shift()!;
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
        this.lastDataAt = Date.now();
        this.bytesOut += n;
        this.send(frame);
        if (s.sendable() > 0) this.ready.push(s);
        else this.maybeFin(s);
      }
    } finally {
      this.pumping = false;
    }
    this.resumeLocals();
  }

  /** Local sockets paused for a full queue read again once their stream's and the session's queues are half empty. */
  private resumeLocals(): void {
    if (this.pausedLocals.size === 0 || this.queuedOut >= SESSION_QUEUE_LIMIT / 2) return;
    for (const s of this.pausedLocals) {
      if (s.outQueued >= STREAM_QUEUE_LIMIT / 2) continue;
      s.localPaused = false;
      this.pausedLocals.delete(s);
      s.local?.resume();
    }
  }

  private send(frame: Buffer): void {
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

  // ---- liveness ----

  /** True when no DATA moved for a while and nothing waits to be sent: an RTT sample now measures the path, not our queues. */
  private quiet(now = Date.now()): boolean {
    return now - this.lastDataAt >= QUIET_MS && this.ws.bufferedAmount === 0;
  }

  private probeRtt(): void {
    if (!this.closed && this.quiet()) this.ping();
  }

  private ping(): void {
    if (this.ws.readyState !== 1) return;
    this.lastPingAt = Date.now();
    this.pingQuiet = this.quiet(this.lastPingAt);
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
  }

  private checkLiveness(): void {
    const now = Date.now();
    if (this.pausedAt !== 0 && now - this.pausedAt > this.opts.timeoutMs) {
      // It sends and never reads: it gets a close frame it will not read either, and the socket goes after the grace.
      this.log.warn(`peer is not reading (${this.ws.bufferedAmount} bytes waiting for it); closing session`);
      this.close(CloseCode.POLICY, 'peer is not reading');
      return;
    }
    const quiet = now - this.lastRecv;
    // While we hold off reading, its silence is ours, not the peer's.
    if (quiet > this.opts.timeoutMs && this.pausedAt === 0) {
      this.log.warn(`peer silent for ${quiet} ms (timeout ${this.opts.timeoutMs} ms); closing session`);
      this.closed = true;
      clearInterval(this.timer);
      this.resetAllLocally('session timed out');
      this.ws.terminate();
      return;
    }
    const idle = this.opts.idleTimeoutMs;
    for (const s of [...this.streams.values()]) {
      if (s.state === 'accepting') continue;
      if (s.isUdp && now - s.lastActive > this.opts.udpTimeoutMs) {
        this.send(codec.encodeReset(s.id, ResetCode.IDLE, 'udp idle'));
        this.finish(s, 'idle', 'info');
      } else if (!s.isUdp && idle > 0 && s.state === 'open' && now - s.lastActive > idle) {
        this.send(codec.encodeReset(s.id, ResetCode.IDLE, 'idle'));
        this.finish(s, 'idle', 'info', true);
      }
    }
    const sincePing = now - this.lastPingAt;
    if ((quiet >= this.opts.timeoutMs / 2 && sincePing >= this.opts.timeoutMs / 2) || (sincePing >= RTT_PROBE_MS && this.quiet(now))) {
      this.ping();
    }
  }

  // ---- teardown ----

  private onClose(code: number, reason: string): void {
    clearInterval(this.timer);
    this.closed = true;
    this.resetAllLocally('session closed');
    this.streamLog.flush();
    // We closed and the peer never answered (1006): why it ended is our reason, as the native engine reports it.
    if (code === CloseCode.ABNORMAL && this.closedWith) this.emit('close', this.closedWith.code, this.closedWith.reason);
    else this.emit('close', code, reason);
  }

  /** An OPEN refused before a stream existed: a rate-limited line, and an event for metrics. */
  private refused(info: StreamRefusedInfo): void {
    this.streamLog.refused(info);
    this.emit('stream-refused', info);
  }

  private resetAllLocally(why: string): void {
    for (const s of [...this.streams.values()]) {
      s.abort?.abort();
      this.finish(s, why, 'debug', true);
    }
  }

  /** Frees a stream exactly once: logs its close line with bytes each way. */
  private finish(s: JsStream, how: string, level: 'info' | 'debug', abortive = false): void {
    if (s.done) return;
    s.done = true;
    this.streams.delete(s.id);
    this.queuedOut -= s.outQueued;
    this.pausedLocals.delete(s);
    if (!s.isUdp) this.credit(-(s.recvGranted - s.bytesIn));
    this.rememberClosed(s.id);
    const i = this.ready.indexOf(s);
    if (i >= 0) this.ready.splice(i, 1);
    if (s.local && !s.local.destroyed) {
      if (abortive) s.local.resetAndDestroy();
      else s.local.destroy();
    }
    if (s.port) {
      s.port.onDatagram = undefined;
      s.port.close();
    }
    const info: StreamClosedInfo = { stream: s.id, target: s.target, bytesIn: s.bytesIn, bytesOut: s.bytesOut, how };
    this.streamLog.closed(level, info, s.openedAt);
    this.emit('stream-closed', info);
    if (this.streams.size === 0) {
      if (this.draining && !this.closed) this.close(CloseCode.GOING_AWAY, 'drained');
      else if (this.peerDraining) this.emit('idle');
    }
  }

  private rememberClosed(id: number): void {
    this.recentClosed.add(id);
    if (this.recentClosed.size > RECENT_CLOSED) {
      this.recentClosed.delete(this.recentClosed.values().next().value as number);
    }
  }
}
