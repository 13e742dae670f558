/**
 * One tws-rust session (docs/legacy.md) on a `ws` WebSocket, either side,
 * behind the same EngineSession interface as the engines' TWS2 sessions, so
 * the server's policy, limits, logs and metrics and the client's slots,
 * placement and UDP relay take it unchanged. Both engines carry legacy
 * sessions here, in TypeScript: tws-rust's messages are too unlike TWS2's
 * frames to share the native mux.
 *
 * The session starts in its handshake: a server waits for the client's
 * AUTH/NOW/TARGET, a client sends it and waits for `hello`. Then it emits
 * 'authenticated' (synchronously, before the next message is read) and runs
 * streams: 6-character ids, CONNECTION OK/CLOSED/PAUSE/RESUME, P and U data,
 * a WebSocket ping each `timeout` ms answered before the next.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import { CloseCode, ResetCode, StreamKind } from '../../protocol/constants';
import { pongAnswerer } from '../js/pongs';
import { setMaxPayload } from '../js/websocket';
import { answerLocal } from '../reply';
import { StreamLog } from '../stream-log';
import type { DatagramPort, LegacyOptions, LegacySessionHandle, OpenRequest, OpenStreamOptions, SessionOptions, SessionStats, StreamClosedInfo } from '../types';
import { TwsError } from '../../util/errors';
import type { Logger, LogLevel } from '../../util/log';
import { EARLY_BYTES, EARLY_DATAGRAMS, readsWebSocket, SEND_HIGH, writeQueueVerdict } from './flow';
import * as wire from './wire';

/** The protocol label of these sessions in logs and metrics. */
export const LEGACY_PROTOCOL = 'tws-rust';

/** What tws-rust sessions (on either engine) dropped rather than queue without bound: each engine's stats() adds it. */
export const legacyStats = { datagramsDropped: 0 };
/** How long we wait for the peer's close frame before dropping the connection (ms). */
const CLOSE_GRACE_MS = 2000;
/** How long a stream's local socket may take to flush what it holds after the stream ended (ms). */
const LINGER_MS = 10_000;
/**
 * What we may owe a peer that does not read before we stop reading it too
 * (and start again at half): every message weighed with what ws keeps for
 * it, so that our small answers (OK, CLOSED, PAUSE) to its small requests
 * cannot pile up without bound. Data stops well below (SEND_HIGH).
 */
const UNSENT_LIMIT = 4 * SEND_HIGH;
const MESSAGE_WEIGHT = 256;

let nextSessionId = 1;

/**
 * What all legacy sessions of the process hold unflushed, against
 * SessionOptions.processBudget: past it every session stops reading its
 * WebSocket, and those that stopped for it read again once it is down to half.
 */
const processQueue = { bytes: 0, stalled: new Set<LegacySession>() };

interface Stream {
  id: string;
  /** The number logs and StreamClosedInfo name it by. */
  n: number;
  udp: boolean;
  state: 'opening' | 'open';
  local?: Socket;
  port?: DatagramPort;
  /** Payload (or datagrams) that came before the stream was connected. */
  early: Buffer[];
  earlyBytes: number;
  /** Bytes handed to the local socket and not yet flushed, and early ones held (holdEarly). */
  queued: number;
  /** We sent PAUSE. */
  pausedByUs: boolean;
  /** The peer sent PAUSE. */
  pausedByPeer: boolean;
  bytesIn: number;
  bytesOut: number;
  openedAt: number;
  tunnel?: string;
  reply?: OpenStreamOptions['reply'];
  /** Server: the open request, until answered; aborted if the stream ends first. */
  request?: AbortController;
  lastActive: number;
  idleTimer?: NodeJS.Timeout;
}

export class LegacySession extends EventEmitter implements LegacySessionHandle {
  readonly id = nextSessionId++;
  readonly protocol = LEGACY_PROTOCOL as 'tws-rust';
  readonly peerDraining = false;
  closed = false;
  /** The handshake is done (server: the client proved the password; client: the server said hello). */
  authenticated = false;
  /** The session's target (`host:port`, IPv6 bracketed): where every stream goes. */
  target = '';

  private readonly log: Logger;
  private readonly streamLog: StreamLog;
  private readonly streams = new Map<string, Stream>();
  private readonly byNumber = new Map<number, Stream>();
  private nextStream = 1;
  private draining = false;
  private congested = false;
  private readingWs = true;
  /** Bytes all streams' local sockets hold unflushed. */
  private queuedTotal = 0;
  /** What we handed ws and it has not written yet, each message weighed (UNSENT_LIMIT). */
  private unsent = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private rttMs: number | undefined;
  private pingSentAt = 0;
  private awaitingPong = false;
  private readonly ticker: NodeJS.Timeout;
  private readonly handshakeTimer: NodeJS.Timeout;
  private closedWith: { code: number; reason: string; how?: string } | undefined;
  private lostWith = '';
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(private readonly ws: WebSocket, private readonly opts: SessionOptions, private readonly legacy: LegacyOptions) {
    super();
    this.log = opts.logger.child(`session#${this.id} (${LEGACY_PROTOCOL})`);
    this.streamLog = new StreamLog(this.log);
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData, isBinary: boolean) => {
      try {
        this.onMessage(data as Buffer, isBinary);
      } catch (err) {
        // A bug here must end this session, not the process.
        this.close(CloseCode.INTERNAL, `internal error: ${(err as Error).message}`);
      }
    });
    // One pong in the send queue at most, the latest ping's: a peer that pings and never reads (before its handshake too) cannot pile them up.
    ws.on('ping', pongAnswerer(ws, opts.role === 'client'));
    ws.on('pong', () => {
      this.awaitingPong = false;
      this.rttMs = Date.now() - this.pingSentAt;
    });
    ws.on('error', (err: Error & { code?: string }) => {
      this.lostWith = err.code ?? err.message;
      // ws closed the connection itself for a bad frame (and sent the peer its close code): say that, not 1006.
      if (err.code?.startsWith('WS_ERR_')) {
        const tooBig = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH';
        this.closedWith ??= { code: tooBig ? CloseCode.TOO_BIG : CloseCode.PROTOCOL_ERROR, reason: tooBig ? `message over ${this.authenticated ? wire.MAX_BINARY : wire.MAX_TEXT} bytes` : err.message };
      }
    });
    ws.on('close', (code: number, reason: Buffer) => this.onClose(code, reason.toString('utf8')));
    this.ticker = setInterval(() => this.tick(), opts.timeoutMs);
    this.handshakeTimer = setTimeout(() => this.close(CloseCode.POLICY, `no handshake within ${opts.timeoutMs} ms`), opts.timeoutMs);
    if (opts.role === 'client') {
      this.target = wire.bracketTarget(legacy.target ?? '') ?? '';
      this.sendText(wire.authMessage(legacy.passwd, wire.handshakeBody(Date.now(), legacy.target ?? '')));
    }
  }

  /** The connection failed (ECONNRESET, say): what a 1006 close then says. */
  connectionFailed(why: string): void {
    this.lostWith ||= why;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  stats(): SessionStats {
    return { streams: this.streams.size, bytesIn: this.bytesIn, bytesOut: this.bytesOut, ...(this.rttMs === undefined ? {} : { rttMs: this.rttMs }) };
  }

  // ---- messages in

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    if (!isBinary) return this.onText(data.toString('utf8'));
    if (!this.authenticated) return this.protocolError('data before the handshake');
    const msg = wire.parseBinary(data);
    if (typeof msg === 'string') return this.protocolError(msg);
    const s = this.streams.get(msg.id);
    // Data for a stream that just ended (our CLOSED crossed it) is dropped.
    if (!s) return;
    if (msg.kind === 'U' ? !s.udp : s.udp) return this.protocolError(`${msg.kind} message on a ${s.udp ? 'udp' : 'tcp'} stream`);
    s.bytesIn += msg.payload.length;
    this.bytesIn += msg.payload.length;
    if (s.udp) return this.datagramIn(s, msg.payload);
    this.payloadIn(s, msg.payload);
  }

  private onText(text: string): void {
    const msg = wire.parseText(text);
    if (typeof msg === 'string') return this.protocolError(msg, text.length > wire.MAX_TEXT ? CloseCode.TOO_BIG : CloseCode.PROTOCOL_ERROR);
    if (!this.authenticated) return this.handshake(msg);
    switch (msg.type) {
      case 'hello': return this.protocolError('hello after the handshake');
      case 'connection': return this.connectionState(msg.id, msg.state);
      case 'auth': {
        if (this.opts.role === 'client') return this.protocolError('AUTH from the server');
        if (!wire.macMatches(this.legacy.passwd, msg.body, msg.mac)) return this.close(CloseCode.POLICY, 'bad MAC on a message');
        const body = wire.parseAuthBody(msg.body);
        if (typeof body === 'string') return this.protocolError(body);
        if (body.type === 'handshake') return this.protocolError('a second handshake');
        return this.newStream(body.id, body.udp);
      }
    }
  }

  private handshake(msg: wire.LegacyText): void {
    if (this.opts.role === 'client') {
      if (msg.type !== 'hello') return this.protocolError('the server did not answer hello');
      return this.up();
    }
    if (msg.type !== 'auth') return this.close(CloseCode.POLICY, 'the first message is not AUTH');
    // Not a secret: a wrong password and a forged MAC read the same.
    if (!wire.macMatches(this.legacy.passwd, msg.body, msg.mac)) return this.close(CloseCode.POLICY, 'bad MAC (wrong password?)');
    const body = wire.parseAuthBody(msg.body);
    if (typeof body === 'string') return this.close(CloseCode.POLICY, body);
    if (body.type !== 'handshake') return this.close(CloseCode.POLICY, 'the first message is not NOW/TARGET');
    const skew = body.now - Date.now();
    if (Math.abs(skew) > wire.CLOCK_WINDOW_MS) {
      return this.close(CloseCode.POLICY, `NOW is ${Math.round(Math.abs(skew) / 1000)} s ${skew > 0 ? 'ahead of' : 'behind'} our clock (window ±${wire.CLOCK_WINDOW_MS} ms)`);
    }
    this.target = body.target;
    this.sendText(wire.HELLO);
    this.up();
  }

  private up(): void {
    clearTimeout(this.handshakeTimer);
    this.authenticated = true;
    // Past the handshake, data messages (adopt.ts took only the handshake's size until now).
    setMaxPayload(this.ws, wire.MAX_BINARY);
    this.emit('authenticated');
  }

  private connectionState(id: string, state: wire.ConnectionState): void {
    const s = this.streams.get(id);
    if (!s) return;
    switch (state) {
      case 'OK':
        if (this.opts.role === 'client' && s.state === 'opening' && !s.udp) this.opened(s);
        return;
      case 'CLOSED':
        if (s.state === 'opening' && this.opts.role === 'client') return this.refused(s);
        return this.finish(s, 'fin', 'info', { tellPeer: false, local: 'end' });
      case 'PAUSE':
      case 'RESUME':
        s.pausedByPeer = state === 'PAUSE';
        return this.applyReading(s);
    }
  }

  private protocolError(why: string, code: number = CloseCode.PROTOCOL_ERROR): void {
    this.close(code, why);
  }

  // ---- streams: server side

  private newStream(id: string, udp: boolean): void {
    if (this.streams.has(id)) return this.protocolError(`stream id ${id} is already open`);
    const n = this.nextStream++;
    const refuse = (code: number, reason: string): void => {
      this.sendText(wire.connectionMessage(id, 'CLOSED'));
      this.streamLog.refused({ stream: n, target: this.target, code, reason });
      this.emit('stream-refused', { stream: n, target: this.target, code, reason });
    };
    if (this.draining) return refuse(ResetCode.GOING_AWAY, 'session draining');
    if (udp && this.opts.noUdp) return refuse(ResetCode.DENIED, 'udp is off (--no-udp)');
    if (this.streams.size >= this.opts.maxStreams) return refuse(ResetCode.TOO_MANY_STREAMS, `${this.opts.maxStreams} streams open (--max-streams)`);
    const s = this.addStream(id, n, udp);
    const abort = new AbortController();
    s.request = abort;
    let answered = false;
    const answer = (): boolean => {
      if (answered) throw new TwsError('TWS_ERR_USAGE', `stream#${n}: open request answered twice`);
      answered = true;
      s.request = undefined;
      return this.streams.get(id) === s && !this.closed;
    };
    const req: OpenRequest = {
      stream: n,
      kind: udp ? StreamKind.UDP : StreamKind.TCP,
      target: this.target,
      signal: abort.signal,
      accept: (socket: Socket) => {
        if (!answer()) return void socket.destroy();
        s.local = socket;
        this.watchLocal(s, socket);
        this.sendText(wire.connectionMessage(id, 'OK'));
        this.opened(s);
      },
      acceptDatagrams: (port: DatagramPort) => {
        if (!answer()) return port.close();
        // tws-rust sends no OK for a udp stream: its datagrams flow at once.
        this.openedDatagrams(s, port);
      },
      reject: (code: number, reason: string) => {
        if (!answer()) return;
        this.sendText(wire.connectionMessage(id, 'CLOSED'));
        this.finish(s, `refused: ${reason}`, code === ResetCode.DENIED ? 'warn' : 'info', { tellPeer: false, local: 'destroy' });
      },
      nameTunnel: (name: string) => { s.tunnel = name; },
    };
    this.emit('open-request', req);
  }

  private addStream(id: string, n: number, udp: boolean): Stream {
    const s: Stream = {
      id, n, udp, state: 'opening', early: [], earlyBytes: 0, queued: 0, pausedByUs: false, pausedByPeer: false,
      bytesIn: 0, bytesOut: 0, openedAt: Date.now(), lastActive: Date.now(),
    };
    this.streams.set(id, s);
    this.byNumber.set(n, s);
    return s;
  }

  // ---- streams: client side

  openStream(local: Socket, _target: string, opts: OpenStreamOptions = {}): number {
    if (this.closed || this.draining || !this.authenticated) {
      if (opts.reply) answerLocal(local, opts.reply.otherwise);
      else local.destroy();
      return 0;
    }
    const s = this.addStream(this.freshId(), this.nextStream++, false);
    s.local = local;
    s.tunnel = opts.tunnel;
    s.reply = opts.reply;
    // Until the server says OK the local socket is not read (tws-rust's client waits too); its end or error ends the stream.
    local.pause();
    this.watchLocal(s, local);
    this.sendText(wire.authMessage(this.legacy.passwd, wire.newConnectionBody(s.id, false)));
    return s.n;
  }

  openDatagramStream(port: DatagramPort, _target: string, tunnel?: string): number {
    if (this.closed || this.draining || !this.authenticated) return 0;
    const s = this.addStream(this.freshId(), this.nextStream++, true);
    s.tunnel = tunnel;
    this.sendText(wire.authMessage(this.legacy.passwd, wire.newConnectionBody(s.id, true)));
    this.openedDatagrams(s, port);
    return s.n;
  }

  private freshId(): string {
    for (;;) {
      const id = wire.idFrom(randomBytes(wire.ID_LENGTH));
      if (!this.streams.has(id)) return id;
    }
  }

  /** The peer refused a stream we opened (CLOSED before OK). */
  private refused(s: Stream): void {
    const reply = s.reply;
    if (reply && s.local) {
      answerLocal(s.local, reply.otherwise);
      s.local = undefined;
    }
    this.finish(s, 'refused: closed by the server', 'info', { tellPeer: false, local: 'destroy' });
  }

  // ---- both sides: relaying

  /** A tcp stream is connected: early data goes first, then the local socket is read. */
  private opened(s: Stream): void {
    const local = s.local!;
    s.state = 'open';
    if (s.reply && this.opts.role === 'client') local.write(s.reply.ok);
    local.setNoDelay?.(true);
    local.on('data', (chunk: Buffer) => {
      s.bytesOut += chunk.length;
      this.bytesOut += chunk.length;
      s.lastActive = Date.now();
      this.send(Buffer.concat([wire.dataHeader('P', s.id), chunk]));
    });
    // tws-rust has no half-close: our side's EOF ends the stream both ways.
    local.on('end', () => this.finish(s, 'fin', 'info', { tellPeer: true, local: 'end' }));
    this.releaseEarly(s);
    for (const chunk of s.early.splice(0)) this.writeLocal(s, chunk);
    this.applyReading(s);
  }

  private openedDatagrams(s: Stream, port: DatagramPort): void {
    s.state = 'open';
    s.port = port;
    port.onDatagram = (payload: Buffer) => {
      if (!this.streams.has(s.id)) return;
      if (payload.length > wire.MAX_DATAGRAM) return void legacyStats.datagramsDropped++;
      // A full link drops datagrams rather than queueing them: UDP may lose, memory may not grow.
      if (this.ws.bufferedAmount >= SEND_HIGH) return void legacyStats.datagramsDropped++;
      s.bytesOut += payload.length;
      this.bytesOut += payload.length;
      s.lastActive = Date.now();
      this.send(Buffer.concat([wire.dataHeader('U', s.id), payload]));
    };
    this.releaseEarly(s);
    for (const d of s.early.splice(0)) port.send(d);
    this.armIdle(s);
  }

  private datagramIn(s: Stream, payload: Buffer): void {
    s.lastActive = Date.now();
    if (s.port) return s.port.send(payload);
    // Before the server's udp socket is ready: a few are held, the rest dropped.
    if (s.early.length < EARLY_DATAGRAMS) this.holdEarly(s, payload);
    else legacyStats.datagramsDropped++;
  }

  /**
   * Holds payload that came before the stream was connected (copied: it may
   * be a view of a large read), counted as queued: many streams opening at
   * once weigh on the session's and the process's budgets like open ones.
   */
  private holdEarly(s: Stream, payload: Buffer): void {
    s.early.push(Buffer.from(payload));
    s.earlyBytes += payload.length;
    this.account(s, payload.length);
    this.checkWsReading();
  }

  /** The early data goes out now (and is counted again as it is written): it is no longer held. */
  private releaseEarly(s: Stream): void {
    this.account(s, -s.earlyBytes);
    s.earlyBytes = 0;
  }

  private payloadIn(s: Stream, payload: Buffer): void {
    s.lastActive = Date.now();
    if (s.state === 'opening') {
      // tws-rust's client waits for OK; early data is bounded all the same.
      if (s.earlyBytes + payload.length > EARLY_BYTES) return this.finish(s, `protocol error: more than ${EARLY_BYTES} bytes before the stream was connected`, 'warn', { tellPeer: true, local: 'destroy' });
      return this.holdEarly(s, payload);
    }
    this.writeLocal(s, payload);
  }

  private writeLocal(s: Stream, payload: Buffer): void {
    const local = s.local;
    if (!local || local.destroyed || payload.length === 0) return;
    const n = payload.length;
    this.account(s, n);
    local.write(payload, () => {
      // Held until written or dropped (Node calls back on destroy too), also after the stream ended: its socket
      // may linger with what it holds (finish), which must weigh on the budgets as long as it does.
      this.account(s, -n);
      if (this.streams.get(s.id) === s) this.checkQueue(s);
      this.checkWsReading();
    });
    this.checkQueue(s);
    this.checkWsReading();
  }

  /** PAUSE / RESUME the peer for this stream, or close it when it floods past PAUSE. */
  private checkQueue(s: Stream): void {
    if (!this.streams.has(s.id)) return;
    const v = writeQueueVerdict(s.queued, s.pausedByUs);
    if (v === 'flood') {
      return this.finish(s, `flooded: ${s.queued} bytes queued after PAUSE`, 'warn', { tellPeer: true, local: 'destroy' });
    }
    if (v === 'pause' || v === 'resume') {
      s.pausedByUs = v === 'pause';
      this.sendText(wire.connectionMessage(s.id, v === 'pause' ? 'PAUSE' : 'RESUME'));
    }
  }

  /** `delta` bytes more (or fewer) held for stream `s`'s local socket: the stream's, the session's and the process's counts. */
  private account(s: Stream, delta: number): void {
    s.queued += delta;
    this.queuedTotal += delta;
    processQueue.bytes += delta;
    if (delta < 0 && processQueue.stalled.size > 0 && processQueue.bytes <= this.opts.processBudget / 2) {
      for (const stalled of [...processQueue.stalled]) stalled.checkWsReading();
    }
  }

  /** Stops reading the WebSocket while this session's queues pass its budget, or all sessions' pass the process's. */
  private checkWsReading(): void {
    if (this.closed) return;
    const own = readsWebSocket(this.queuedTotal, this.opts.sessionBudget, this.readingWs);
    const all = readsWebSocket(processQueue.bytes, this.opts.processBudget, this.readingWs);
    const heard = readsWebSocket(this.unsent, UNSENT_LIMIT, this.readingWs);
    if (all) processQueue.stalled.delete(this);
    else processQueue.stalled.add(this);
    const read = own && all && heard;
    if (read === this.readingWs) return;
    this.readingWs = read;
    if (read) this.ws.resume();
    else this.ws.pause();
  }

  /** Reads a stream's local socket only when it is open, the peer has not paused it, and the WebSocket has room. */
  private applyReading(s: Stream): void {
    const local = s.local;
    if (!local || s.state !== 'open' || local.destroyed) return;
    if (s.pausedByPeer || this.congested || this.closed) local.pause();
    else local.resume();
  }

  private send(data: Buffer | string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    const weight = data.length + MESSAGE_WEIGHT;
    this.unsent += weight;
    this.ws.send(data, () => {
      this.unsent -= weight;
      if (!this.readingWs) this.checkWsReading();
      if (this.congested && this.ws.bufferedAmount < SEND_HIGH / 2) {
        this.congested = false;
        for (const s of this.streams.values()) this.applyReading(s);
      }
    });
    if (!this.congested && this.ws.bufferedAmount >= SEND_HIGH) {
      this.congested = true;
      for (const s of this.streams.values()) s.local?.pause();
    }
    if (this.readingWs && this.unsent >= UNSENT_LIMIT) this.checkWsReading();
  }

  private sendText(text: string): void {
    this.send(text);
  }

  /** A stream's local socket failing or closing ends the stream, whatever its state. */
  private watchLocal(s: Stream, local: Socket): void {
    local.on('error', (err: NodeJS.ErrnoException) => this.localGone(s, `local error: ${err.code ?? err.message}`));
    local.on('close', () => this.localGone(s, 'local socket closed'));
  }

  private localGone(s: Stream, how: string): void {
    if (this.streams.get(s.id) !== s) return;
    this.finish(s, how, how.startsWith('local error') ? 'warn' : 'info', { tellPeer: true, local: 'destroy' });
  }

  private armIdle(s: Stream): void {
    const wait = s.lastActive + this.opts.udpTimeoutMs - Date.now();
    s.idleTimer = setTimeout(() => {
      if (this.streams.get(s.id) !== s) return;
      if (Date.now() - s.lastActive >= this.opts.udpTimeoutMs) this.finish(s, 'idle', 'info', { tellPeer: true, local: 'destroy' });
      else this.armIdle(s);
    }, Math.max(wait, 10));
    s.idleTimer.unref();
  }

  /**
   * Ends a stream once: CLOSED to the peer when it does not know yet, the
   * local socket ended (after what it holds) or destroyed, one close line and
   * one 'stream-closed'.
   */
  private finish(s: Stream, how: string, level: LogLevel, o: { tellPeer: boolean; local: 'end' | 'destroy' }): void {
    if (this.streams.get(s.id) !== s) return;
    this.streams.delete(s.id);
    this.byNumber.delete(s.n);
    clearTimeout(s.idleTimer);
    s.request?.abort();
    if (o.tellPeer && !this.closed) this.sendText(wire.connectionMessage(s.id, 'CLOSED'));
    // What the local socket holds stays counted until it is written or dropped (writeLocal); early data was never handed to it.
    this.releaseEarly(s);
    s.early.length = 0;
    const local = s.local;
    if (local) {
      local.removeAllListeners('data');
      local.on('error', () => undefined);
      if (o.local === 'end' && !local.destroyed) {
        local.end();
        // A local peer that never reads what is left must not hold the socket forever.
        setTimeout(() => local.destroy(), LINGER_MS).unref();
      } else {
        local.destroy();
      }
    }
    s.port?.close();
    this.checkWsReading();
    const info: StreamClosedInfo = { stream: s.n, target: this.target, bytesIn: s.bytesIn, bytesOut: s.bytesOut, how, ...(s.tunnel ? { tunnel: s.tunnel } : {}) };
    this.streamLog.closed(level, info, s.openedAt);
    this.emit('stream-closed', info);
    if (this.draining && this.streams.size === 0) this.emit('idle');
  }

  closeStream(n: number): void {
    const s = this.byNumber.get(n);
    if (s) this.finish(s, 'closed locally', 'info', { tellPeer: true, local: 'destroy' });
  }

  /** tws-rust has no reverse tunnels. */
  sendControl(): void {
    return undefined;
  }

  // ---- session

  private tick(): void {
    if (this.closed || !this.authenticated) return;
    if (this.awaitingPong) {
      this.lostWith = `no pong within ${this.opts.timeoutMs} ms`;
      this.closedWith = { code: CloseCode.ABNORMAL, reason: this.lostWith, how: 'session timed out' };
      this.ws.terminate();
      return;
    }
    this.awaitingPong = true;
    this.pingSentAt = Date.now();
    this.ws.ping();
    this.endIdleStreams();
  }

  /** --idle-timeout for tcp streams, checked each tick (so up to `timeout` late): tws-rust has no RESET, so CLOSED. */
  private endIdleStreams(): void {
    const limit = this.opts.idleTimeoutMs;
    if (limit <= 0) return;
    const now = Date.now();
    for (const s of [...this.streams.values()]) {
      if (!s.udp && s.state === 'open' && now - s.lastActive >= limit) this.finish(s, 'idle', 'info', { tellPeer: true, local: 'destroy' });
    }
  }

  /**
   * tws-rust has no GOAWAY: new streams are refused (CLOSED), udp streams
   * end now, open tcp streams may finish; 'idle' once none is left.
   */
  goaway(): void {
    if (this.draining || this.closed) return;
    this.draining = true;
    for (const s of [...this.streams.values()]) {
      if (s.udp) this.finish(s, 'closed locally', 'info', { tellPeer: true, local: 'destroy' });
    }
    if (this.streams.size === 0) setImmediate(() => { if (!this.closed) this.emit('idle'); });
  }

  close(code: number, reason: string, how?: string): void {
    if (this.closed) return;
    this.closedWith ??= { code, reason, how };
    this.shutStreams(how ?? reason);
    this.closed = true;
    clearInterval(this.ticker);
    clearTimeout(this.handshakeTimer);
    try {
      this.ws.close(code, closeReason(reason));
    } catch {
      this.ws.terminate();
    }
    this.closeTimer = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  private shutStreams(how: string): void {
    for (const s of [...this.streams.values()]) this.finish(s, how, 'info', { tellPeer: false, local: 'destroy' });
  }

  private onClose(code: number, reason: string): void {
    processQueue.stalled.delete(this);
    clearInterval(this.ticker);
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.closeTimer);
    const ours = this.closedWith;
    const how = ours?.how ?? ours?.reason ?? (code === CloseCode.ABNORMAL ? 'session lost' : 'peer closed the session');
    this.closed = true;
    this.shutStreams(how);
    this.streamLog.flush();
    const finalCode = ours?.code ?? code;
    const finalReason = ours?.reason ?? (code === CloseCode.ABNORMAL ? this.lostWith : reason);
    this.emit('close', finalCode, finalReason);
  }
}

/** `reason` cut to what a close frame holds (123 bytes), on a character boundary. */
function closeReason(reason: string): string {
  let r = reason;
  while (Buffer.byteLength(r) > 120) r = r.slice(0, -1);
  return r;
}
