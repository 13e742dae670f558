/**
 * `tws client`: accepts local TCP connections (and UDP datagrams) on each of
 * its tunnels and carries each as a stream over the least-loaded of
 * `connections` sessions to the server; every stream names its own target,
 * so all tunnels share the sessions. A proxy listener (HTTP CONNECT, SOCKS5)
 * is a tunnel whose connections say their own target first.
 */
import { EventEmitter } from 'node:events';
import { AddressInfo, createServer, Server, Socket } from 'node:net';
import { isLoopbackBind, ReverseSpec, TunnelSpec } from '../config/tunnels';
import { answerLocal } from '../engine/reply';
import type { Engine, EngineSession, StreamReply } from '../engine/types';
import { drainSessions } from '../engine/drain';
import { sessionName } from '../engine/session-close';
import { openLines } from '../engine/stream-log';
import { formatHostPort, formatPeer, HostPort } from '../util/address';
import { TwsError } from '../util/errors';
import { Logger, peerText, RateLimitedLog } from '../util/log';
import type { ConnectOptions } from './connect-options';
import { EngineAccept } from './engine-accept';
import { CONNECT_REPLY, HTTP_CONNECT, readConnectRequest, TOO_MANY_NEGOTIATING } from './http-connect';
import { NegotiationLimit } from './negotiation-limit';
import { ReverseTunnels } from './reverse';
import { CLIENT_MAX_STREAMS, SessionSlot } from './session-slot';
import type { SocksLogins } from './socks/auth';
import { SocksListener } from './socks/listener';
import { UdpRelay } from './udp-relay';

export interface TwsClientOptions {
  /** tws-rust's one tunnel (with `remote`): TCP, and UDP on the same address unless noUdp. */
  listen?: HostPort;
  server: URL;
  /** Target the server connects `listen`'s connections to, `host:port`. */
  remote?: string;
  /** More tunnels (-L), each TCP or UDP; at least one tunnel or proxy listener in all. */
  tunnels?: readonly TunnelSpec[];
  /** An HTTP CONNECT proxy listener (--http-connect); loopback addresses only. */
  httpConnect?: HostPort;
  /** A SOCKS5 listener (-D): CONNECT and UDP ASSOCIATE to any target the server allows. */
  socks?: HostPort;
  /** RFC 1929 logins the SOCKS listener requires; without them it must listen on loopback. */
  socksLogins?: SocksLogins;
  /** Reverse tunnels (-R): ports the server listens on, carried back to targets this client reaches. */
  reverse?: readonly ReverseSpec[];
  passwd: string;
  /** Sessions to keep open; default 2. */
  connections?: number;
  /** Liveness timeout and how long a new connection waits for a session (ms); default 5000. */
  timeout?: number;
  /** Base reconnect delay in ms; default 1000. */
  retryTimeout?: number;
  /** Idle time before a udp association ends (ms); default 60000. */
  udpTimeout?: number;
  /** Reset tcp streams idle this long (ms); default 0 = never. */
  idleTimeout?: number;
  /** Do not listen for UDP on `listen` (-L /udp tunnels are not affected). */
  noUdp?: boolean;
  /** MiB of credit all sessions may have outstanding (see SessionOptions.processBudget); 0/undefined = automatic. */
  bufferBudget?: number;
  /** Streams a session may hold beyond which one the server opens is refused (RESET 5); default 1024. */
  maxStreams?: number;
  engine: Engine;
  logger: Logger;
  /** Upgrade headers and, for wss://, trusted roots, SNI, verification. */
  connect?: ConnectOptions;
  /** User to authenticate as (the server has a users file). */
  user?: string;
  /** Speak tws-rust 0.2's protocol (docs/legacy.md): one tunnel, listen with remote; no tunnels, proxies, reverse or user. */
  legacy?: boolean;
}

/** One local listener: a TCP server, or a UDP relay, or (tws-rust's -l/-r) both. */
interface LocalTunnel {
  listen: HostPort;
  remote: string;
  /** How logs and `addresses` name it: `-L 2222:db:22`, or `-l ADDR -r TARGET`. */
  name: string;
  /** ` (-L 2222:db:22)` for log lines; empty for -l/-r, whose lines stay as they were. */
  label: string;
  tcp?: Server;
  /** When the engine accepts `tcp`'s connections itself (`tcp` closes once it does; `bound` is its address). */
  native?: EngineAccept;
  bound?: AddressInfo;
  udp?: UdpRelay;
  socks?: SocksListener;
  /** A proxy listener: reads where each connection goes (undefined: it was answered or dropped). */
  proxy?: (socket: Socket, peer: string) => Promise<{ target: string; reply: StreamReply } | undefined>;
  /** A UDP side that cannot bind is a warning (-l/-r), not an error (-L /udp). */
  udpOptional: boolean;
}

/** A local connection to carry: where to, how logs name its tunnel, what the engine answers it with. */
interface Carried {
  socket: Socket;
  peer: string;
  remote: string;
  /** ` (-L …)` / ` (socks)` for log lines, or empty. */
  label: string;
  /** The tunnel's name for the engine's stream lines, or undefined (-l/-r). */
  tunnel?: string;
  reply?: StreamReply;
}

interface Waiting extends Carried {
  timer: NodeJS.Timeout;
}

/** Connections a listener holds while no session is up (as the native engine does); more are closed. */
export const MAX_WAITING = 1024;

export class TwsClient extends EventEmitter {
  private readonly tunnels: LocalTunnel[] = [];
  private readonly slots: SessionSlot[] = [];
  /** Sessions still carrying streams after their slot moved on (GOAWAY). */
  private readonly draining = new Set<EngineSession>();
  /** Every session up and not yet closed (its 'close' not yet emitted), draining or not. */
  private readonly unclosed = new Set<EngineSession>();
  private readonly waiting: Waiting[] = [];
  /** Lines anyone who reaches a local port can provoke, one per connection, while no session is up. */
  private readonly waitLines: RateLimitedLog;
  /** The HTTP CONNECT proxy's answers to requests it refuses (400, 405, 408). */
  private readonly proxyAnswers: RateLimitedLog;
  private readonly timeout: number;

  constructor(private readonly opts: TwsClientOptions) {
    super();
    if (!(opts.listen && opts.remote) && !opts.tunnels?.length && !opts.httpConnect && !opts.socks && !opts.reverse?.length) {
      throw new TwsError('TWS_ERR_CONFIG', 'a client needs a tunnel: listen with remote, tunnels, httpConnect, socks or reverse');
    }
    const proxyAt = opts.httpConnect;
    if (proxyAt && !isLoopbackBind(proxyAt.host)) {
      throw new TwsError('TWS_ERR_CONFIG', `--http-connect: refusing to listen on ${formatHostPort(proxyAt.host, proxyAt.port)}: a proxy open to the network lets anyone `
        + 'reach what the server reaches; bind 127.0.0.1 (the default) or [::1], and reach it from elsewhere through ssh -L');
    }
    if (opts.socks && !opts.socksLogins && !isLoopbackBind(opts.socks.host)) {
      throw new TwsError('TWS_ERR_CONFIG',
        `a SOCKS listener on ${formatHostPort(opts.socks.host, opts.socks.port)} would be open to the network: give it logins (--socks-auth FILE) or bind it to loopback`);
    }
    if (opts.legacy && (opts.tunnels?.length || proxyAt || opts.socks || opts.reverse?.length || opts.user !== undefined || !opts.remote)) {
      throw new TwsError('TWS_ERR_CONFIG', 'legacy: a tws-rust session carries one tunnel, listen with remote; no tunnels, httpConnect, socks, reverse or user');
    }
    const reverse = opts.reverse?.length
      ? new ReverseTunnels(opts.reverse, { logger: opts.logger, retryTimeout: opts.retryTimeout ?? 1000, maxStreams: opts.maxStreams ?? CLIENT_MAX_STREAMS })
      : undefined;
    this.timeout = opts.timeout ?? 5000;
    this.waitLines = new RateLimitedLog(opts.logger, 'connections closed with no session up');
    this.proxyAnswers = new RateLimitedLog(opts.logger, `${HTTP_CONNECT} requests answered`);
    const n = opts.connections ?? 2;
    for (let i = 1; i <= n; i++) {
      const slot = new SessionSlot(i, {
        server: opts.server,
        passwd: opts.passwd,
        timeout: this.timeout,
        retryTimeout: opts.retryTimeout ?? 1000,
        udpTimeout: opts.udpTimeout,
        idleTimeout: opts.idleTimeout,
        bufferBudget: opts.bufferBudget,
        maxStreams: opts.maxStreams,
        acceptStreams: reverse !== undefined,
        engine: opts.engine,
        logger: opts.logger,
        connect: opts.connect,
        user: opts.user,
        legacyTarget: opts.legacy ? opts.remote : undefined,
      });
      slot.on('connect-failed', (why: string) => this.emit('connect-failed', why));
      slot.on('up', (session: EngineSession, features: string[]) => {
        this.unclosed.add(session);
        reverse?.attach(session, features);
        session.on('goaway', () => this.draining.add(session));
        session.on('close', () => {
          this.draining.delete(session);
          this.unclosed.delete(session);
        });
        this.emit('session', session, slot.index);
        this.flushWaiting();
        for (const t of this.tunnels) t.native?.sessionUp();
      });
      this.slots.push(slot);
    }
    if (opts.listen && opts.remote) {
      const name = `-l ${formatHostPort(opts.listen.host, opts.listen.port)} -r ${opts.remote}`;
      this.addTunnel(opts.listen, opts.remote, name, '', { tcp: true, udp: !opts.noUdp, udpOptional: true });
    }
    for (const t of opts.tunnels ?? []) {
      this.addTunnel(t.listen, t.remote, t.name, ` (${t.name})`, { tcp: !t.udp, udp: t.udp, udpOptional: false });
    }
    if (proxyAt) {
      const limit = new NegotiationLimit(HTTP_CONNECT, opts.logger);
      const proxy = async (socket: Socket, peer: string): Promise<{ target: string; reply: StreamReply } | undefined> => {
        const release = limit.admit(socket, peer);
        if (!release) {
          answerLocal(socket, TOO_MANY_NEGOTIATING, 100);
          return undefined;
        }
        const target = await readConnectRequest(socket, this.timeout, this.proxyAnswers, peer);
        if (target === undefined) return undefined;  // answered: its place is held until the socket is gone (admit)
        release();
        return { target, reply: CONNECT_REPLY };
      };
      this.addTunnel(proxyAt, '*', HTTP_CONNECT, ` (${HTTP_CONNECT})`, { tcp: true, udp: false, udpOptional: false }, proxy);
    }
    if (opts.socks) {
      const socks = new SocksListener({
        logins: opts.socksLogins,
        timeout: this.timeout,
        udpTimeout: opts.udpTimeout ?? 60000,
        logger: opts.logger,
        carry: (socket, peer, remote, reply) => this.carry({ socket, peer, remote, label: ' (socks)', tunnel: 'socks', reply }),
        pick: () => this.pick(),
      });
      this.tunnels.push({ listen: opts.socks, remote: 'SOCKS5', name: 'socks', label: ' (socks)', tcp: socks.server, socks, udpOptional: false });
    }
  }

  private addTunnel(listen: HostPort, remote: string, name: string, label: string, kind: { tcp: boolean; udp: boolean; udpOptional: boolean },
    proxy?: LocalTunnel['proxy']): void {
    const tunnel: LocalTunnel = { listen, remote, name, label, udpOptional: kind.udpOptional, proxy };
    if (kind.tcp) tunnel.tcp = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => this.onLocal(s, tunnel));
    if (kind.udp) tunnel.udp = new UdpRelay(listen.host, remote, label ? name : '', () => this.pick(), this.opts.logger);
    this.tunnels.push(tunnel);
  }

  /**
   * Listens on every tunnel and starts the sessions; resolves with the first
   * tunnel's bound address (see `addresses` for all). A tunnel that cannot
   * listen closes the ones already listening and rejects.
   */
  async listen(): Promise<AddressInfo> {
    const addrs: AddressInfo[] = [];
    try {
      for (const t of this.tunnels) addrs.push(await this.listenTunnel(t));
    } catch (err) {
      this.closeListeners();
      throw err;
    }
    for (const r of this.opts.reverse ?? []) {
      this.opts.logger.info(`${r.name}: asking the server to listen on ${r.bind} → ${r.remote} via ${this.slots.length} session(s) (engine ${this.opts.engine.name})`);
    }
    for (const slot of this.slots) slot.start();
    return addrs[0] ?? ({ address: '', family: '', port: 0 } as AddressInfo);
  }

  /** The bound address of each tunnel, in the order given (-l/-r first). */
  get addresses(): { name: string; address: AddressInfo | undefined }[] {
    return this.tunnels.map((t) => ({
      name: t.name,
      address: (t.bound ?? t.tcp?.address() ?? t.udp?.address()) as AddressInfo | undefined,
    }));
  }

  private async listenTunnel(t: LocalTunnel): Promise<AddressInfo> {
    const addr = t.tcp ? await this.listenTcp(t, t.tcp) : undefined;
    if (!t.udp) return addr!;
    const port = addr?.port ?? t.listen.port;
    try {
      const bound = await t.udp.bind(port);
      return addr ?? bound;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (!t.udpOptional) {
        throw new TwsError('TWS_ERR_LISTEN', `cannot listen for udp on ${formatHostPort(t.listen.host, port)}${t.label}: ${err.code ?? err.message}`);
      }
      this.opts.logger.warn(`udp: cannot listen on port ${port}: ${err.code ?? err.message}; carrying TCP only (--no-udp silences this)`);
      return addr!;
    }
  }

  private listenTcp(t: LocalTunnel, listener: Server): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new TwsError('TWS_ERR_LISTEN', `cannot listen on ${formatHostPort(t.listen.host, t.listen.port)}${t.label}: ${err.code ?? err.message}`));
      };
      listener.once('error', onError);
      // A deep accept queue: a burst of local connections (a pool warming up) must not overflow it.
      listener.listen({ port: t.listen.port, host: t.listen.host, backlog: 4096 }, () => {
        listener.off('error', onError);
        // Past the listen, an error (an accept failing for want of fds) is a line, not a crash.
        listener.on('error', (err: NodeJS.ErrnoException) => this.opts.logger.debug(`listener${t.label}: ${err.code ?? err.message}`));
        const addr = listener.address() as AddressInfo;
        this.acceptInEngine(t, listener, addr);
        this.opts.logger.info(
          `listening on ${formatHostPort(addr.address, addr.port)} → ${t.remote}${t.label} via ${this.slots.length} session(s) (engine ${this.opts.engine.name})`,
        );
        resolve(addr);
      });
    });
  }

  /** A plain tunnel's connections go straight to the engine where it can take them (see engine-accept.ts). */
  private acceptInEngine(t: LocalTunnel, listener: Server, addr: AddressInfo): void {
    // Proxy listeners (HTTP CONNECT, SOCKS5) read their client first: JavaScript keeps them.
    // So does --legacy: tws-rust sessions run in TypeScript (engine/legacy/), never on the I/O thread.
    if (t.proxy || t.socks || this.opts.legacy) return;
    t.bound = addr;
    t.native = EngineAccept.start(this.opts.engine, listener, {
      remote: t.remote, label: t.label, tunnel: t.label ? t.name : undefined, pick: () => this.pick(), timeoutMs: this.timeout, logger: this.opts.logger,
      opened: (session, id, peer) => this.logOpened(session, id, peer, t.remote, t.label),
      // Until the engine says it watches its duplicate of the socket, both accept (either path carries a connection).
      started: () => {
        if (!t.native) return;
        listener.close();
        this.opts.logger.debug(`listener${t.label}: the engine accepts its connections`);
      },
      failed: (code) => {
        t.native = undefined;
        this.opts.logger.warn(`listener${t.label}: the engine cannot watch it (${code}); accepting in JavaScript instead`);
      },
    });
  }

  private closeListeners(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const t of this.tunnels) {
      t.native?.close();
      t.native = undefined;
      const tcp = t.tcp;
      if (tcp?.listening) closing.push(new Promise<void>((resolve) => tcp.close(() => resolve())));
      t.udp?.close();
      t.socks?.close();
    }
    this.waitLines.flush();
    this.proxyAnswers.flush();
    return Promise.all(closing).then(() => undefined);
  }

  /** Live sessions, for tests and metrics. */
  get liveSessions(): EngineSession[] {
    return this.slots.map((s) => s.session).filter((s): s is EngineSession => !!s && !s.closed && !s.peerDraining);
  }

  private pick(): EngineSession | undefined {
    let best: EngineSession | undefined;
    for (const s of this.liveSessions) {
      if (!best || s.streamCount < best.streamCount) best = s;
    }
    return best;
  }

  private onLocal(socket: Socket, tunnel: LocalTunnel): void {
    const peer = formatPeer(socket);
    const name = tunnel.label ? tunnel.name : undefined;
    if (!tunnel.proxy) return this.carry({ socket, peer, remote: tunnel.remote, label: tunnel.label, tunnel: name });
    void tunnel.proxy(socket, peer).then((c) => {
      if (c && !socket.destroyed) this.carry({ socket, peer, remote: c.target, label: tunnel.label, tunnel: name, reply: c.reply });
    });
  }

  /** Opens a stream for `c` on the least-loaded session, or waits up to `timeout` for one. */
  private carry(c: Carried): void {
    const session = this.pick();
    if (session) {
      this.open(session, c);
      return;
    }
    const { socket, peer, label } = c;
    // As many per listener as the native engine holds: the rest of a flood is turned away, not held.
    if (this.waiting.reduce((n, x) => n + (x.label === label ? 1 : 0), 0) >= MAX_WAITING) {
      this.waitLines.line('warn', `connection from ${peer}${label} closed: ${MAX_WAITING} connections of its listener already wait for a session`);
      if (c.reply) answerLocal(socket, c.reply.otherwise);
      else socket.destroy();
      return;
    }
    const w: Waiting = {
      ...c,
      timer: setTimeout(() => {
        this.unwait(w);
        this.waitLines.line('warn', `no session to the server within ${this.timeout} ms; closing connection from ${peer}${label}`);
        if (c.reply) answerLocal(socket, c.reply.otherwise);
        else socket.destroy();
      }, this.timeout),
    };
    socket.on('error', () => this.unwait(w));
    socket.on('close', () => this.unwait(w));
    this.waiting.push(w);
    this.opts.logger.debug(`connection from ${peer}${label} waits for a session`);
  }

  private unwait(w: Waiting): void {
    const i = this.waiting.indexOf(w);
    if (i >= 0) this.waiting.splice(i, 1);
    clearTimeout(w.timer);
  }

  private flushWaiting(): void {
    while (this.waiting.length > 0) {
      const session = this.pick();
      if (!session) return;
      const w = this.waiting.shift()!;
      clearTimeout(w.timer);
      w.socket.removeAllListeners('error');
      w.socket.removeAllListeners('close');
      this.open(session, w);
    }
  }

  private open(session: EngineSession, c: Carried): void {
    // With a reply (proxy listeners), the engine answers the local client once the server accepted or refused.
    const id = session.openStream(c.socket, c.remote, { tunnel: c.tunnel, reply: c.reply });
    if (id === 0) {
      // The session said why (out of fds, ids or memory); the local connection has been reset (or answered with reply.otherwise).
      this.opts.logger.warn(`${sessionName(session)}: connection from ${c.peer}${c.label} not carried; ${c.reply ? 'answered' : 'reset'}`);
      return;
    }
    this.logOpened(session, id, c.peer, c.remote, c.label);
    // Still paused (pauseOnConnect): the engine reads it when it has room.
  }

  /** A stream's open line, whichever side accepted its connection (here, or the engine: engine-accept.ts). */
  private logOpened(session: EngineSession, id: number, peer: string, remote: string, label: string): void {
    // A proxy's target came from its local client: capped, and escaped by the sink.
    openLines(session, this.opts.logger).line('info', `stream#${id} open from ${peer} → ${peerText(remote)}${label}`);
  }

  /**
   * Graceful stop: stop accepting, let open streams finish for `drainMs`,
   * then close every session with 1001 (see drainSessions); resolves once
   * their close handshakes are done (or after drainSessions' wait): a process
   * that exits sooner can cut a close frame off (a wss:// one, above all), and
   * the server logs 1006.
   */
  async shutdown(drainMs: number): Promise<void> {
    const closed = this.closeListeners();
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.socket.destroy();
    }
    const sessions = [...this.unclosed];
    for (const slot of this.slots) slot.stop();
    await drainSessions(sessions, drainMs, 'client shutting down');
    await closed;
  }
}
