/**
 * `tws client`: accepts local TCP connections and carries each as a stream
 * over the least-loaded of `connections` sessions to the server.
 */
import { EventEmitter } from 'node:events';
import { AddressInfo, createServer, Server, Socket } from 'node:net';
import type { Engine, EngineSession } from '../engine/types';
import { drainSessions } from '../engine/drain';
import { formatHostPort, formatPeer, HostPort } from '../util/address';
import { TwsError } from '../util/errors';
import type { Logger } from '../util/log';
import type { ConnectOptions } from './connect-options';
import { SessionSlot } from './session-slot';
import { UdpRelay } from './udp-relay';

export interface TwsClientOptions {
  listen: HostPort;
  server: URL;
  /** Target the server connects to, `host:port`. */
  remote: string;
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
  /** Do not listen for UDP. */
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

interface Waiting {
  socket: Socket;
  timer: NodeJS.Timeout;
  peer: string;
}

export class TwsClient extends EventEmitter {
  private readonly listener: Server;
  private readonly slots: SessionSlot[] = [];
  /** Sessions still carrying streams after their slot moved on (GOAWAY). */
  private readonly draining = new Set<EngineSession>();
  /** Every session up and not yet closed (its 'close' not yet emitted), draining or not. */
  private readonly unclosed = new Set<EngineSession>();
  private readonly waiting: Waiting[] = [];
  private readonly timeout: number;
  private readonly udp: UdpRelay | undefined;

  constructor(private readonly opts: TwsClientOptions) {
    super();
    this.timeout = opts.timeout ?? 5000;
    this.listener = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => this.onLocal(s));
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
        engine: opts.engine,
        logger: opts.logger,
        connect: opts.connect,
        user: opts.user,
      });
      slot.on('connect-failed', (why: string) => this.emit('connect-failed', why));
      slot.on('up', (session: EngineSession) => {
        this.unclosed.add(session);
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
    if (!opts.noUdp) this.udp = new UdpRelay(opts.listen.host, opts.remote, () => this.pick(), opts.logger);
  }

  /** Listens locally and starts the sessions; resolves with the bound address. */
  async listen(): Promise<AddressInfo> {
    const addr = await this.listenTcp();
    if (this.udp) {
      await this.udp.bind(addr.port).catch((err: NodeJS.ErrnoException) => {
        this.opts.logger.warn(`udp: cannot listen on port ${addr.port}: ${err.code ?? err.message}; carrying TCP only (--no-udp silences this)`);
      });
    }
    for (const slot of this.slots) slot.start();
    return addr;
  }

  private listenTcp(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new TwsError('TWS_ERR_LISTEN', `cannot listen on ${formatHostPort(this.opts.listen.host, this.opts.listen.port)}: ${err.code ?? err.message}`));
      };
      this.listener.once('error', onError);
      // A deep accept queue: a burst of local connections (a pool warming up) must not overflow it.
      this.listener.listen({ port: this.opts.listen.port, host: this.opts.listen.host, backlog: 4096 }, () => {
        this.listener.off('error', onError);
        // Past the listen, an error (an accept failing for want of fds) is a line, not a crash.
        this.listener.on('error', (err: NodeJS.ErrnoException) => this.opts.logger.debug(`listener: ${err.code ?? err.message}`));
        const addr = this.listener.address() as AddressInfo;
        this.opts.logger.info(
          `listening on ${formatHostPort(addr.address, addr.port)} → ${this.opts.remote} via ${this.slots.length} session(s) (engine ${this.opts.engine.name})`,
        );
        resolve(addr);
      });
    });
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

  private onLocal(socket: Socket): void {
    const peer = formatPeer(socket);
    const session = this.pick();
    if (session) {
      this.open(session, socket, peer);
      return;
    }
    const w: Waiting = {
      socket,
      peer,
      timer: setTimeout(() => {
        this.unwait(w);
        this.opts.logger.warn(`no session to the server within ${this.timeout} ms; closing connection from ${peer}`);
        socket.destroy();
      }, this.timeout),
    };
    socket.on('error', () => this.unwait(w));
    socket.on('close', () => this.unwait(w));
    this.waiting.push(w);
    this.opts.logger.debug(`connection from ${peer} waits for a session`);
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
      this.open(session, w.socket, w.peer);
    }
  }

  private open(session: EngineSession, socket: Socket, peer: string): void {
    const id = session.openStream(socket, this.opts.remote);
    if (id === 0) {
      // The session said why (out of fds, ids or memory); the local connection has been reset.
      this.opts.logger.warn(`session#${session.id}: connection from ${peer} not carried; reset`);
      return;
    }
    this.opts.logger.info(`session#${session.id} stream#${id} open from ${peer} → ${this.opts.remote}`);
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
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    this.udp?.close();
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
