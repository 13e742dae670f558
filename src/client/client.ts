/**
 * `tws client`: accepts local TCP connections (and UDP datagrams) on each of
 * its tunnels and carries each as a stream over the least-loaded of
 * `connections` sessions to the server; every stream names its own target,
 * so all tunnels share the sessions.
 */
import { EventEmitter } from 'node:events';
import { AddressInfo, createServer, Server, Socket } from 'node:net';
import type { ReverseSpec, TunnelSpec } from '../config/tunnels';
import type { Engine, EngineSession } from '../engine/types';
import { drainSessions } from '../engine/drain';
import { formatHostPort, formatPeer, HostPort } from '../util/address';
import { TwsError } from '../util/errors';
import type { Logger } from '../util/log';
import type { ConnectOptions } from './connect-options';
import { ReverseTunnels } from './reverse';
import { SessionSlot } from './session-slot';
import { UdpRelay } from './udp-relay';

export interface TwsClientOptions {
  /** tws-rust's one tunnel (with `remote`): TCP, and UDP on the same address unless noUdp. */
  listen?: HostPort;
  server: URL;
  /** Target the server connects `listen`'s connections to, `host:port`. */
  remote?: string;
  /** More tunnels (-L), each TCP or UDP; at least one tunnel in all. */
  tunnels?: readonly TunnelSpec[];
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
  engine: Engine;
  logger: Logger;
  /** Upgrade headers and, for wss://, trusted roots, SNI, verification. */
  connect?: ConnectOptions;
  /** User to authenticate as (the server has a users file). */
  user?: string;
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
  udp?: UdpRelay;
  /** A UDP side that cannot bind is a warning (-l/-r), not an error (-L /udp). */
  udpOptional: boolean;
}

interface Waiting {
  socket: Socket;
  timer: NodeJS.Timeout;
  peer: string;
  tunnel: LocalTunnel;
}

export class TwsClient extends EventEmitter {
  private readonly tunnels: LocalTunnel[] = [];
  private readonly slots: SessionSlot[] = [];
  /** Sessions still carrying streams after their slot moved on (GOAWAY). */
  private readonly draining = new Set<EngineSession>();
  /** Every session up and not yet closed (its 'close' not yet emitted), draining or not. */
  private readonly unclosed = new Set<EngineSession>();
  private readonly waiting: Waiting[] = [];
  private readonly timeout: number;

  constructor(private readonly opts: TwsClientOptions) {
    super();
    if (!(opts.listen && opts.remote) && !opts.tunnels?.length && !opts.reverse?.length) {
      throw new TwsError('TWS_ERR_CONFIG', 'a client needs a tunnel: listen with remote, tunnels, or reverse');
    }
    const reverse = opts.reverse?.length
      ? new ReverseTunnels(opts.reverse, { logger: opts.logger, retryTimeout: opts.retryTimeout ?? 1000 })
      : undefined;
    this.timeout = opts.timeout ?? 5000;
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
        acceptStreams: reverse !== undefined,
        engine: opts.engine,
        logger: opts.logger,
        connect: opts.connect,
        user: opts.user,
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
  }

  private addTunnel(listen: HostPort, remote: string, name: string, label: string, kind: { tcp: boolean; udp: boolean; udpOptional: boolean }): void {
    const tunnel: LocalTunnel = { listen, remote, name, label, udpOptional: kind.udpOptional };
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
      address: (t.tcp?.address() ?? t.udp?.address()) as AddressInfo | undefined,
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
        this.opts.logger.info(
          `listening on ${formatHostPort(addr.address, addr.port)} → ${t.remote}${t.label} via ${this.slots.length} session(s) (engine ${this.opts.engine.name})`,
        );
        resolve(addr);
      });
    });
  }

  private closeListeners(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const t of this.tunnels) {
      const tcp = t.tcp;
      if (tcp?.listening) closing.push(new Promise<void>((resolve) => tcp.close(() => resolve())));
      t.udp?.close();
    }
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
    const session = this.pick();
    if (session) {
      this.open(session, socket, peer, tunnel);
      return;
    }
    const w: Waiting = {
      socket,
      peer,
      tunnel,
      timer: setTimeout(() => {
        this.unwait(w);
        this.opts.logger.warn(`no session to the server within ${this.timeout} ms; closing connection from ${peer}${tunnel.label}`);
        socket.destroy();
      }, this.timeout),
    };
    socket.on('error', () => this.unwait(w));
    socket.on('close', () => this.unwait(w));
    this.waiting.push(w);
    this.opts.logger.debug(`connection from ${peer}${tunnel.label} waits for a session`);
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
      this.open(session, w.socket, w.peer, w.tunnel);
    }
  }

  private open(session: EngineSession, socket: Socket, peer: string, tunnel: LocalTunnel): void {
    const id = session.openStream(socket, tunnel.remote, tunnel.label ? tunnel.name : undefined);
    if (id === 0) {
      // The session said why (out of fds, ids or memory); the local connection has been reset.
      this.opts.logger.warn(`session#${session.id}: connection from ${peer}${tunnel.label} not carried; reset`);
      return;
    }
    this.opts.logger.info(`session#${session.id} stream#${id} open from ${peer} → ${tunnel.remote}${tunnel.label}`);
    // Still paused (pauseOnConnect): the engine reads it when it has room.
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
