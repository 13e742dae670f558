/**
 * The native engine: a typed wrapper over the addon's NativeEngine (the
 * boundary is typed in native-addon.ts). Sockets are handed over by fd
 * (the addon dups them) and JavaScript's copies destroyed without a FIN;
 * every byte JavaScript already read goes along. Control events come back in
 * batches and are turned into the same EngineSession events as the js
 * engine's, including the per-stream close log line.
 */
import { EventEmitter } from 'node:events';
import { Server, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { constants as osConstants } from 'node:os';
import { HEADER_LEN, ResetCode } from '../protocol/constants';
import { ControlFrame, decodeFrame, encodeControl } from '../protocol/frames';
import { TwsError } from '../util/errors';
import { Logger, peerText } from '../util/log';
import { unpackEvents } from './native-addon';
import type { NativeAddon, NativeCore, NativeEvent, NativeSessionOptions } from './native-addon';
import { validateSessionOptions } from './options';
import {
  DatagramPort, Engine, EngineSession, EngineTls, LocalAcceptEvents, LocalAcceptor, OpenRequest, OpenStreamOptions, PendingUpgrade, SessionOptions, SessionStats,
  StreamClosedInfo, StreamRefusedInfo, TlsClientSettings,
} from './types';
import { adoptLegacy, legacyStats } from './legacy/adopt';
import { answerLocal, checkReply } from './reply';
import { describeClose } from './session-close';
import { StreamIds, StreamLog } from './stream-log';

/** `EMFILE` for 24: how a failed handoff names its errno. */
function errnoName(err: number): string {
  const e = osConstants.errno as Record<string, number>;
  return Object.keys(e).find((k) => e[k] === err) ?? `errno ${err}`;
}

/** SessionOptions as the addon takes them. */
function nativeOptions(options: SessionOptions): NativeSessionOptions {
  return {
    server: options.role === 'server',
    timeoutMs: options.timeoutMs,
    initialWindow: options.initialWindow,
    maxWindow: options.maxWindow,
    maxStreams: options.maxStreams,
    udpTimeoutMs: options.udpTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    sessionBudget: options.sessionBudget,
    processBudget: options.processBudget,
    noUdp: options.noUdp,
    acceptStreams: options.acceptStreams ?? false,
  };
}

/** The fd under a Node socket or server (TCP or a pipe), if it has one. */
function fdOf(handleOwner: Socket | Server): number | undefined {
  const fd = (handleOwner as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The fd of a plain TCP socket, and the bytes JavaScript already read from it. */
function takeOver(socket: Socket): { fd: number; buffered: Buffer } | undefined {
  const fd = fdOf(socket);
  if (fd === undefined) return undefined;
  const chunks: Buffer[] = [];
  for (let c: Buffer | null = socket.read(); c !== null; c = socket.read()) chunks.push(c);
  return { fd, buffered: Buffer.concat(chunks) };
}

class NativeSession extends EventEmitter implements EngineSession {
  /**
   * The number logs and the control plane know it by (`session#N`), given
   * when it becomes a session (see numbered): a TLS front or a handshake
   * that fails takes none, so session numbers count sessions.
   */
  id = 0;
  peerDraining = false;
  closed = false;
  private readonly ids: StreamIds;
  private readonly streams = new Map<number, { target: string; tunnel?: string; openedAt: number; abort?: AbortController; port?: DatagramPort }>();
  private bytesIn = 0;
  private bytesOut = 0;
  private rttMs: number | undefined;
  private log: Logger;
  /** Per-stream lines, rate-limited: a peer can provoke them by the thousand. */
  private streamLog: StreamLog;
  /** Native listeners by id: what their streams are called (shared by the engine's sessions). */
  localListeners: ReadonlyMap<number, { target: string; tunnel?: string }> = new Map();
  /** While the engine runs this client session's TLS and upgrade: who waits for the response head. */
  upgrade: { resolve(head: string): void; reject(err: Error): void } | undefined;

  /** `coreId`: the addon's name for it (fronts and sessions share that space). */
  constructor(readonly coreId: number, private readonly core: NativeCore, private readonly opts: SessionOptions) {
    super();
    this.ids = new StreamIds(opts.role, opts.firstStreamId);
    this.log = opts.logger;
    this.streamLog = new StreamLog(this.log);
  }

  /** Gives the session its number: at adopt, or for a wss:// client once its upgrade is accepted. */
  numbered(id: number): this {
    this.id = id;
    this.log = this.opts.logger.child(`session#${id}`);
    this.streamLog = new StreamLog(this.log);
    return this;
  }

  /** The next stream id, or 0 when none is left; running low drains the session (see idsRunningOut). */
  private takeStreamId(): number {
    return this.takeStreamIds(1).first;
  }

  /** Up to `n` ids (first, first + 2, …; first 0 when none is left); running low drains the session. */
  private takeStreamIds(n: number): { first: number; count: number } {
    const ids = this.ids.takeBlock(n);
    if (ids.first !== 0 && this.ids.low && !this.peerDraining) {
      // Ids are never reused within a session: drain it (GOAWAY, so the peer
      // knows) and let the client's slot bring up a fresh one meanwhile.
      this.log.info('stream ids running out; draining this session for a new one');
      this.peerDraining = true;
      queueMicrotask(() => {
        this.goaway(ResetCode.GOING_AWAY, 'stream ids exhausted');
        this.emit('goaway', ResetCode.GOING_AWAY, 'stream ids exhausted');
      });
    }
    return ids;
  }

  /**
   * Ids for a native listener's next streams (Engine.acceptLocal), or
   * undefined when this session takes no new ones.
   */
  grantIds(n: number, ahead = false): { first: number; count: number } | undefined {
    if (this.closed || this.peerDraining || (ahead && this.ids.beforeLow === 0)) return undefined;
    const ids = this.takeStreamIds(n);
    return ids.first === 0 ? undefined : ids;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  stats(): SessionStats {
    return { streams: this.streams.size, bytesIn: this.bytesIn, bytesOut: this.bytesOut, rttMs: this.rttMs };
  }

  openStream(local: Socket, target: string, opts: OpenStreamOptions = {}): number {
    if (opts.reply) checkReply(opts.reply);
    // Not carried: the local connection is reset, or answered as a session that ended would answer it.
    const refuse = (): number => {
      if (opts.reply) answerLocal(local, opts.reply.otherwise);
      else local.resetAndDestroy();
      return 0;
    };
    const unavailable = this.closed || this.peerDraining;
    const taken = unavailable ? undefined : takeOver(local);
    const id = taken ? this.takeStreamId() : 0;
    if (!taken || id === 0) {
      if (!unavailable) this.streamLog.notOpened(`connection not carried: ${taken ? 'no stream id left' : 'not a plain TCP socket'}`);
      return refuse();
    }
    const err = this.core.openStream(this.coreId, id, taken.fd, target, taken.buffered, opts.reply);
    if (err !== 0) {
      // The engine could not take the socket (no fd left to dup it): nothing is left behind.
      this.streamLog.notOpened(`stream#${id} not opened: cannot hand the local socket to the engine (${errnoName(err)})`);
      return refuse();
    }
    this.streams.set(id, { target, tunnel: opts.tunnel, openedAt: Date.now() });
    local.destroy();
    return id;
  }

  openFdStream(fds: { read: number; write: number }, target: string, opts: OpenStreamOptions = {}): number {
    if (opts.reply) checkReply(opts.reply);
    const id = this.closed || this.peerDraining ? 0 : this.takeStreamId();
    if (id === 0) return 0;
    const err = this.core.openStream(this.coreId, id, fds.read, target, Buffer.alloc(0), opts.reply, fds.write);
    if (err !== 0) {
      this.log.warn(`stream#${id} not opened: cannot hand fds ${fds.read} and ${fds.write} to the engine (${errnoName(err)})`);
      return 0;
    }
    this.streams.set(id, { target, tunnel: opts.tunnel, openedAt: Date.now() });
    return id;
  }

  openDatagramStream(port: DatagramPort, target: string, tunnel?: string): number {
    if (this.closed || this.peerDraining) {
      port.close();
      return 0;
    }
    const id = this.takeStreamId();
    if (id === 0) {
      port.close();
      return 0;
    }
    this.streams.set(id, { target, tunnel, openedAt: Date.now(), port });
    port.onDatagram = (payload) => this.core.sendDatagram(this.coreId, id, payload);
    this.core.openDatagramStream(this.coreId, id, target);
    return id;
  }

  closeStream(id: number, code: number = ResetCode.CANCELLED): void {
    if (this.closed || !this.streams.has(id)) return;
    this.core.closeStream(this.coreId, id, code);
  }

  sendControl(f: ControlFrame): void {
    if (this.closed) return;
    const frame = encodeControl(f);
    this.core.sendControl(this.coreId, frame[0]!, frame.subarray(HEADER_LEN));
  }

  goaway(code: number, reason: string): void {
    if (!this.closed) this.core.goaway(this.coreId, code, reason);
  }

  grantAhead(slots: number, timeoutMs: number): void {
    if (!this.closed) this.core.grantAhead(this.coreId, slots, timeoutMs);
  }

  revokeAhead(): void {
    if (!this.closed) this.core.revokeAhead(this.coreId);
  }

  close(code: number, reason: string, how = reason): void {
    if (!this.closed) this.core.closeSession(this.coreId, code, reason, how);
  }

  /** Turns one native event into EngineSession events. [JS thread] */
  handle(e: NativeEvent): void {
    switch (e.type) {
      case 'open-request': return this.onOpenRequest(e.stream, e.code, e.text);
      case 'local-opened': {
        const l = this.localListeners.get(e.code);
        this.streams.set(e.stream, { target: l?.target ?? '', tunnel: l?.tunnel, openedAt: Date.now() });
        return;
      }
      case 'opened-ahead':
        this.streams.set(e.stream, { target: e.text, openedAt: Date.now() });
        this.emit('opened-ahead', { stream: e.stream, target: e.text });
        return;
      case 'ahead-returned':
        this.emit('ahead-returned', e.code);
        return;
      case 'stream-closed': return this.onStreamClosed(e);
      case 'refused': {
        const info: StreamRefusedInfo = { stream: e.stream, target: e.text, code: e.code, reason: e.note ?? '' };
        this.streamLog.refused(info);
        this.emit('stream-refused', info);
        return;
      }
      case 'goaway':
        this.peerDraining = true;
        this.log.info('peer is going away');
        this.emit('goaway', ResetCode.GOING_AWAY, '');
        return;
      case 'idle':
        this.emit('idle');
        return;
      case 'window':
        this.log.debug(`stream#${e.stream} ${e.text}`);
        return;
      case 'rtt':
        this.rttMs = e.code / 1000;
        return;
      case 'upgrade-head':
        this.upgrade?.resolve(e.text);
        this.upgrade = undefined;
        return;
      case 'datagram':
        this.streams.get(e.stream)?.port?.send(e.payload!);
        return;
      case 'control': {
        // Checked by the engine with the rules of frames.ts: decoding cannot fail.
        const head = Buffer.alloc(HEADER_LEN);
        head[0] = e.code;
        this.emit('control', decodeFrame(Buffer.concat([head, e.payload!])) as ControlFrame);
        return;
      }
      case 'session-closed':
        this.explainClose(e.code, e.text);
        this.closed = true;
        this.upgrade?.reject(new TwsError('TWS_ERR_HANDSHAKE', e.text || describeClose(e.code, '')));
        this.upgrade = undefined;
        // The engine ended every stream it had before this event; one still
        // here never reached it (opened as the session went): it ends too, once.
        for (const id of [...this.streams.keys()]) {
          this.onStreamClosed({ ...e, type: 'stream-closed', stream: id, bytesIn: 0, bytesOut: 0, text: 'session lost' });
        }
        this.streamLog.flush();
        this.bytesIn = Math.max(this.bytesIn, e.bytesIn);
        this.bytesOut = Math.max(this.bytesOut, e.bytesOut);
        this.emit('close', e.code, e.text);
        return;
    }
  }

  /** The warnings the js engine writes when it ends a session for a timeout or a protocol error. */
  private explainClose(code: number, text: string): void {
    if (this.id === 0) return;  // a wss:// client's failed upgrade (no number yet) is its slot's to report
    if (text.startsWith('peer silent')) this.log.warn(`${text} (timeout ${this.opts.timeoutMs} ms); closing session`);
    else if (code === 1002 || code === 1009) this.log.warn(`protocol error: ${text}; session closed`);
  }

  private onOpenRequest(stream: number, kind: number, target: string): void {
    const abort = new AbortController();
    this.streams.set(stream, { target, openedAt: Date.now(), abort });
    let answered = false;
    const once = (): boolean => {
      if (answered) throw new TwsError('TWS_ERR_USAGE', 'open request answered twice');
      answered = true;
      // Answered: nothing is left to cancel, and an idle stream should not hold an AbortController.
      const entry = this.streams.get(stream);
      if (entry) entry.abort = undefined;
      return !abort.signal.aborted;
    };
    const req: OpenRequest = {
      stream,
      kind,
      target,
      signal: abort.signal,
      accept: (socket) => {
        if (!once()) { socket.destroy(); return; }
        const taken = takeOver(socket);
        const err = taken ? this.core.acceptStream(this.coreId, stream, taken.fd, taken.buffered) : -1;
        socket.destroy();
        if (err !== 0) {
          // Answered all the same (RESET 8), so the peer is not left waiting and the stream is reported closed.
          const why = `cannot hand over the socket${err > 0 ? ` (${errnoName(err)})` : ''}`;
          this.log.warn(`stream#${stream} → ${peerText(target)}: ${why}`);
          this.core.rejectStream(this.coreId, stream, ResetCode.INTERNAL, why);
        }
      },
      acceptDatagrams: (port) => {
        if (!once()) { port.close(); return; }
        const entry = this.streams.get(stream);
        if (entry) entry.port = port;
        port.onDatagram = (payload) => this.core.sendDatagram(this.coreId, stream, payload);
        this.core.acceptDatagrams(this.coreId, stream);
      },
      dial: (address, port, timeoutMs) => {
        if (once()) this.core.dialStream(this.coreId, stream, address, port, timeoutMs);
      },
      reject: (code, reason) => {
        if (once()) this.core.rejectStream(this.coreId, stream, code, reason);
      },
      nameTunnel: (name) => {
        const entry = this.streams.get(stream);
        if (entry) entry.tunnel = name;
      },
    };
    this.emit('open-request', req);
  }

  private onStreamClosed(e: NativeEvent): void {
    const s = this.streams.get(e.stream);
    this.streams.delete(e.stream);
    s?.abort?.abort();
    if (s?.port) {
      s.port.onDatagram = undefined;
      s.port.close();
    }
    this.bytesIn += e.bytesIn;
    this.bytesOut += e.bytesOut;
    // As the js engine does: peer RESETs 6 (cancelled: the other side's app closed) at debug.
    const level = /^peer reset: cancelled\b/.test(e.text) ? 'debug' : 'info';
    const info: StreamClosedInfo = { stream: e.stream, target: s?.target ?? '', tunnel: s?.tunnel, bytesIn: e.bytesIn, bytesOut: e.bytesOut, how: e.text };
    this.streamLog.closed(level, info, s?.openedAt);
    this.emit('stream-closed', info);
  }
}

/**
 * Creates the native engine over a loaded addon with `threads` I/O threads
 * (default 1); sessions are spread over them round-robin. Threads start with
 * the first session they get. `busyPollUs`: see --busy-poll.
 */
export function createNativeEngine(addon: NativeAddon, threads = 1, busyPollUs = 0): Engine {
  const sessions = new Map<number, { session: NativeSession; core: number }>();
  const cores: (NativeCore | undefined)[] = new Array(Math.max(1, threads)).fill(undefined);
  const load: number[] = cores.map(() => 0);
  // TLS contexts by roots: building one from a system bundle takes tens of ms, so
  // reconnects reuse it (the client passes the same roots string every time).
  const tlsContexts = new Map<string, object | string>();
  const tlsContext = (tls: TlsClientSettings): object | string => {
    const key = tls.insecure ? '' : tls.ca;
    let context = tlsContexts.get(key);
    if (context === undefined) {
      context = addon.tlsClientContext(tls.ca, tls.insecure);
      tlsContexts.set(key, context);
    }
    return context;
  };
  // The addon's ids (sessions, fronts and listeners: one space) and, apart, the numbers sessions are known by.
  let lastId = 0;
  // Test hook only (never documented): a low ceiling, to see the ids come round.
  const idCeiling = Number(process.env.TWS_TEST_ADDON_ID_CEILING) || 0xffff_ffff;
  let nextSessionNumber = 1;
  // Who hears why a front's TLS failed, by front id (fronts share the id space with sessions).
  const tlsFailureHandlers = new Map<number, (reason: string) => void>();
  // Native listeners (acceptLocal) by id: the same id space as sessions and fronts.
  const listeners = new Map<number, { target: string; tunnel?: string; events: LocalAcceptEvents }>();
  /**
   * The next addon id: a uint32 as the addon reads it, never 0, never one
   * still in use. A wss:// server spends one per TCP connection, so a long
   * run does come round (2^32 connections), and a live session must not
   * share its id with a new one.
   */
  const takeId = (): number => {
    for (;;) {
      lastId = lastId >= idCeiling ? 1 : lastId + 1;
      if (!sessions.has(lastId) && !listeners.has(lastId) && !tlsFailureHandlers.has(lastId)) return lastId;
    }
  };
  const onListener = (e: NativeEvent): void => {
    const l = listeners.get(e.session);
    if (!l) return;
    if (e.stream === 1) l.events.timedOut(e.text);
    else if (e.code !== 0) l.events.acceptFailed(errnoName(e.code));
    else l.events.wantsSession(e.bytesIn, e.stream === 2);
  };
  const onEvents = (events: NativeEvent[]): void => {
    for (const e of events) {
      if (e.type === 'tls-failed') {
        tlsFailureHandlers.get(e.session)?.(e.text);
        tlsFailureHandlers.delete(e.session);
        continue;
      }
      if (e.type === 'listener') {
        onListener(e);
        continue;
      }
      const entry = sessions.get(e.session);
      if (!entry) continue;
      try {
        entry.session.handle(e);
        if (e.type === 'local-opened') listeners.get(e.code)?.events.opened(entry.session, e.stream, e.text);
      } catch (err) {
        // A listener that throws must not cost the rest of the batch (a lost
        // stream-closed or session-closed would leave its state behind).
        process.emitWarning(`tws: ${e.type} handler threw: ${(err as Error).message}`);
      }
      if (e.type === 'session-closed') {
        sessions.delete(e.session);
        // A core with no sessions must not keep the process alive.
        release(entry.core);
      }
    }
  };
  // What a core runs (sessions, listeners) keeps the process alive; a core with nothing must not.
  const hold = (index: number): void => {
    if (load[index]!++ === 0) cores[index]?.ref();
  };
  const release = (index: number): void => {
    if (--load[index]! === 0) cores[index]?.unref();
  };
  // Server-side TLS connections before their upgrade: the pair socket JavaScript reads → where the TLS runs.
  const fronts = new WeakMap<Socket, { front: number; core: number }>();
  const coreAt = (index: number): NativeCore => (cores[index] ??= new addon.NativeEngine(unpackEvents(addon.eventKinds, onEvents), { busyPollUs }));
  /** A new session on the next core (round-robin) or on `at`; `register` once the core owns it. */
  const newSession = (options: SessionOptions, at?: number): { session: NativeSession; core: NativeCore; register(): void } => {
    const id = takeId();
    const index = at ?? id % cores.length;
    const core = coreAt(index);
    const session = new NativeSession(id, core, options);
    session.localListeners = listeners;
    return {
      session,
      core,
      register() {
        sessions.set(id, { session, core: index });
        hold(index);
      },
    };
  };
  const closeSoon = (session: NativeSession, code: number, text: string): void =>
    queueMicrotask(() => session.handle({ type: 'session-closed', session: session.coreId, stream: 0, code, bytesIn: 0, bytesOut: 0, text }));
  // TLS in the engine: wss:// sessions without JavaScript in their data path.
  const tls: EngineTls = {
    serverContext(cert, key) {
      return addon.tlsServerContext(cert.toString(), key.toString());
    },
    frontTls(socket, context, onTlsFailure) {
      const id = takeId();
      const index = id % cores.length;
      const taken = takeOver(socket);
      if (!taken || taken.buffered.length > 0) {
        socket.destroy();
        return taken ? 'bytes arrived before the TLS handshake could start' : 'not a plain TCP socket';
      }
      const fd = coreAt(index).frontTls(id, taken.fd, context);
      const { remoteAddress, remotePort } = socket;
      socket.destroy();
      if (typeof fd === 'string') return fd;
      const pair = new Socket({ fd, readable: true, writable: true });
      // The HTTP server names peers by these; the pair itself has none.
      Object.defineProperty(pair, 'remoteAddress', { value: remoteAddress });
      Object.defineProperty(pair, 'remotePort', { value: remotePort });
      fronts.set(pair, { front: id, core: index });
      if (onTlsFailure) {
        tlsFailureHandlers.set(id, onTlsFailure);
        // The event can arrive after the pair has closed: forget the handler a little later.
        pair.once('close', () => setTimeout(() => tlsFailureHandlers.delete(id), 1000).unref());
      }
      return pair;
    },
    adoptTls(socket, tls, request, options): PendingUpgrade {
      validateSessionOptions(options);
      const { session, core, register } = newSession(options);
      const response = new Promise<string>((resolve, reject) => { session.upgrade = { resolve, reject }; });
      const taken = takeOver(socket);
      // Nothing can have arrived before our ClientHello; bytes here would be lost, so refuse.
      const context = tlsContext(tls);
      const why = typeof context === 'string' ? `TLS: ${context}`
        : !taken ? 'not a plain TCP socket' : taken.buffered.length > 0 ? 'the server spoke before the TLS handshake' : '';
      if (why) {
        socket.destroy();
        closeSoon(session, 1011, why);
      } else {
        // Events come on a later turn of the event loop, so registering after the call is in time.
        const names = { servername: tls.servername, verifyName: tls.verifyName };
        const bad = core.adoptTls(session.coreId, taken!.fd, context as object, names, request, nativeOptions(options));
        socket.destroy();
        if (bad) closeSoon(session, 1011, `TLS: ${bad}`);
        else register();
      }
      return {
        response,
        accept: () => {
          core.upgraded(session.coreId);
          return session.numbered(nextSessionNumber++);
        },
        abort: () => session.close(1000, 'upgrade abandoned'),
      };
    },
  };
  return {
    name: 'native',
    adoptsTlsSockets: false,
    // tws-rust sessions run on ws in TypeScript, as on the js engine (engine/legacy/adopt.ts says why).
    adoptLegacy,
    stats: () => {
      let datagramsDropped = legacyStats.datagramsDropped;  // tws-rust sessions run in TypeScript
      let fronts = 0;
      for (const core of cores) {
        const st = core?.stats();
        datagramsDropped += st?.datagramsDropped ?? 0;
        fronts += st?.fronts ?? 0;
      }
      return { datagramsDropped, fronts };
    },
    adopt(socket, head, preamble, options) {
      validateSessionOptions(options);
      const front = fronts.get(socket);
      const { session, core, register } = newSession(options, front?.core);
      session.numbered(nextSessionNumber++);
      // A TLS socket's fd carries ciphertext: such a socket cannot be handed over (adoptsTlsSockets is false).
      const taken = socket instanceof TLSSocket ? undefined : takeOver(socket);
      if (!taken) {
        socket.destroy();
        closeSoon(session, 1011, 'not a plain TCP socket');
        return session;
      }
      // The TLS connection behind a pair becomes the session (the pair goes); a plain socket is adopted.
      if (front) tlsFailureHandlers.delete(front.front);
      const bytes = Buffer.concat([head, taken.buffered]);
      const err = front ? core.adoptFront(session.coreId, front.front, taken.fd, bytes, preamble, nativeOptions(options))
        : core.adopt(session.coreId, taken.fd, bytes, preamble, nativeOptions(options));
      // destroy(), never end(): our dup keeps the connection, and end() would send a FIN.
      socket.destroy();
      // Events come on a later turn of the event loop, so registering after the call is in time.
      if (err === 0) register();
      else closeSoon(session, 1011, `cannot take over the socket (${errnoName(err)})`);
      return session;
    },
    tls,
    acceptLocal(server, target, tunnel, timeoutMs, events): LocalAcceptor | undefined {
      // A listener lives on one I/O thread and opens streams of that thread's sessions only.
      if (cores.length !== 1) return undefined;
      const fd = fdOf(server);
      if (fd === undefined) return undefined;
      const id = takeId();
      const core = coreAt(0);
      listeners.set(id, { target, tunnel, events });
      if (core.listen(id, fd, target, timeoutMs) !== 0) {
        listeners.delete(id);
        return undefined;
      }
      // The listener keeps the process alive as Node's server did.
      hold(0);
      let closed = false;
      return {
        grant(session, ahead) {
          const s = sessions.get((session as NativeSession).coreId);
          const ids = s && s.session === session && !closed ? s.session.grantIds(LOCAL_ID_BLOCK, ahead) : undefined;
          if (ids) core.grantListener(id, s!.session.coreId, ids.first, ids.count);
          return ids !== undefined;
        },
        close() {
          if (closed) return;
          closed = true;
          core.closeListener(id);
          listeners.delete(id);
          release(0);
        },
      };
    },
  };
}

/** Stream ids a native listener gets at a time (it asks for more with a few left). */
const LOCAL_ID_BLOCK = 32;
