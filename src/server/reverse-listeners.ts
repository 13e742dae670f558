/**
 * Reverse tunnels on the server (docs/protocol.md, "Reverse tunnels"): a
 * client's LISTEN binds a port here when --allow-reverse (or its user's
 * allow_reverse) permits; each connection accepted there becomes a stream
 * this server opens over the least-loaded live session of that client, its
 * target the bind as the LISTEN spelled it. Listeners are keyed by (user,
 * client token, bind), so every session of one client joins one listener,
 * and outlive their client's sessions by a grace period, so a reconnect
 * finds them again.
 */
import { createServer, isIP, Server, Socket } from 'node:net';
import type { EngineSession } from '../engine/types';
import { ListenError } from '../protocol/constants';
import type { ControlFrame } from '../protocol/frames';
import type { AllowList } from '../policy/allow-list';
import { formatHostPort, formatPeer, parseHostPort } from '../util/address';
import { IpAddress, ipText, parseBindIp, sourceKey } from '../util/ip';
import { openLines } from '../engine/stream-log';
import { Logger, peerText, RateLimitedLog } from '../util/log';
import { stopReading } from '../net/local-reads';

/**
 * Listeners one client (token) may hold, one session (whatever tokens it
 * sends: the client chooses them), and one user (or the shared password) in all.
 */
export const MAX_LISTENERS_PER_CLIENT = 16;
export const MAX_LISTENERS_PER_SESSION = 16;
export const MAX_LISTENERS_PER_USER = 64;
/**
 * Connections a listener holds while none of its client's sessions is up
 * (more are closed), at most this many from one address, and at most this
 * many in all (each also takes one of the server's stream slots, so waiting
 * connections fit the fd plan: see ReverseOptions.waitingSlots).
 */
export const MAX_WAITING = 64;
export const MAX_WAITING_PER_SOURCE = 16;
export const MAX_WAITING_TOTAL = 1024;

export interface ReverseOptions {
  logger: Logger;
  /** The rules for `user` (undefined: the shared password) as they are now; undefined = nothing allowed. */
  rulesFor(user: string | undefined): AllowList | undefined;
  /** How long a listener stays without any session of its client (ms). */
  graceMs: number;
  /** Streams a session may carry; a connection beyond it is closed. */
  maxStreams: number;
  /** The server's stream slots (the fd plan): a waiting connection holds one until it is carried or gone. */
  waitingSlots?: { hold(): boolean; release(): void };
}

/** A session's share of the server's stream slots (the file descriptor plan), when it has one. */
export interface SessionSlots {
  /** Why one more stream would be refused, or undefined. */
  full(): string | undefined;
  take(stream: number): void;
  /**
   * Slots the engines hold ahead (answer ahead) are taken back, and `retry`
   * called once they are; false, and nothing done, when none are out.
   */
  reclaim?(retry: () => void): boolean;
}

interface Waiting {
  socket: Socket;
  source: string;
  timer: NodeJS.Timeout;
  /** Its 'readable' watch, until it has spoken. */
  watch: (() => void) | undefined;
}

interface Listener {
  key: string;
  user: string | undefined;
  /** The owner's key: one client process of one user. */
  client: string;
  /** As the LISTEN spelled it: the target of the streams. */
  bind: string;
  /** What it binds: the canonical address (the rules checked it). */
  ip: IpAddress;
  port: number;
  /** `reverse 8080` (escaped and capped: the bind came from a peer). */
  name: string;
  server: Server;
  up: boolean;
  /** The sessions carrying it, each with the request its LISTEN_OK answered (a later LISTEN_ERR names it). */
  sessions: Map<EngineSession, number>;
  /** LISTENs waiting for the bind to finish. */
  joining: { session: EngineSession; request: number }[];
  waiting: Waiting[];
  grace: NodeJS.Timeout | undefined;
}

export class ReverseListeners {
  private readonly listeners = new Map<string, Listener>();
  private readonly slots = new Map<EngineSession, SessionSlots>();
  private readonly log: Logger;
  private readonly refusals: RateLimitedLog;
  /** The server is stopping: no new listener. */
  private stopped = false;
  /** Connections waiting for their client, over every listener. */
  private waitingTotal = 0;

  constructor(private readonly opts: ReverseOptions) {
    this.log = opts.logger;
    this.refusals = new RateLimitedLog(opts.logger, 'refused reverse tunnels');
  }

  get size(): number {
    return this.listeners.size;
  }

  /** Takes `session`'s LISTEN frames; `user` is who it authenticated as; its streams count against `slots`. */
  attach(session: EngineSession, user: string | undefined, slots?: SessionSlots): void {
    if (slots) this.slots.set(session, slots);
    session.on('control', (f: ControlFrame) => {
      if (f.type === 'listen') this.onListen(session, user, f.request, f.token, f.bind);
    });
    session.on('close', () => this.detach(session));
  }

  private refuse(session: EngineSession, request: number, code: number, name: string, reason: string): void {
    this.refusals.line('info', `session#${session.id}: ${name} refused: ${reason}`);
    session.sendControl({ type: 'listen-err', stream: 0, request, code, reason });
  }

  private onListen(session: EngineSession, user: string | undefined, request: number, token: Buffer, bind: string): void {
    const name = `reverse ${peerText(bind, 80)}`;
    if (this.stopped) return this.refuse(session, request, ListenError.FAILED, name, 'listen failed: server shutting down');
    const hp = parseHostPort(bind);
    if (typeof hp === 'string' || !isIP(hp.host) || hp.port === 0) {
      return this.refuse(session, request, ListenError.BAD_ADDRESS, name, 'bad address: expected an IP address and a port 1-65535');
    }
    const ip = parseBindIp(hp.host);
    if (typeof ip !== 'object') return this.refuse(session, request, ListenError.BAD_ADDRESS, name, `bad address: ${ip ?? 'not an IP address'}`);
    if (!this.allows(user, ip, hp.port)) {
      return this.refuse(session, request, ListenError.NOT_ALLOWED, name, 'not allowed (no --allow-reverse rule matches)');
    }
    const host = ipText(ip);
    const client = `${user ?? ''}\n${token.toString('hex')}`;
    const key = `${client}\n${bind}`;
    const existing = this.listeners.get(key);
    const onIt = existing !== undefined && (existing.sessions.has(session) || existing.joining.some((j) => j.session === session));
    const sessionFull = (): void => this.refuse(session, request, ListenError.LIMIT, name, `too many listeners (${MAX_LISTENERS_PER_SESSION} per session)`);
    if (existing) {
      if (!onIt && this.held(session) >= MAX_LISTENERS_PER_SESSION) return sessionFull();
      if (existing.up) return this.join(existing, session, request);
      existing.joining.push({ session, request });
      return;
    }
    const mine = [...this.listeners.values()];
    if (mine.filter((l) => l.client === client).length >= MAX_LISTENERS_PER_CLIENT) {
      return this.refuse(session, request, ListenError.LIMIT, name, `too many listeners (${MAX_LISTENERS_PER_CLIENT} per client)`);
    }
    if (this.held(session) >= MAX_LISTENERS_PER_SESSION) return sessionFull();
    if (mine.filter((l) => l.user === user).length >= MAX_LISTENERS_PER_USER) {
      return this.refuse(session, request, ListenError.LIMIT, name, `too many listeners (${MAX_LISTENERS_PER_USER} per user)`);
    }
    const l: Listener = {
      key, user, client, bind, ip, port: hp.port, name, up: false,
      server: createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => this.onConnection(l, s)),
      sessions: new Map(), joining: [{ session, request }], waiting: [], grace: undefined,
    };
    this.listeners.set(key, l);
    l.server.once('error', (err: NodeJS.ErrnoException) => {
      this.listeners.delete(key);
      const inUse = err.code === 'EADDRINUSE';
      const why = inUse ? `address in use: ${formatHostPort(host, hp.port)}` : `listen failed: ${err.code ?? err.message}`;
      for (const j of l.joining.splice(0)) {
        if (!j.session.closed) this.refuse(j.session, j.request, inUse ? ListenError.ADDRESS_IN_USE : ListenError.FAILED, name, why);
      }
    });
    // [::] binds IPv6 only: an IPv6 rule never stands for IPv4 addresses (`*` covers 0.0.0.0 as well).
    l.server.listen({ host, port: hp.port, backlog: 511, ipv6Only: ip.family === 'ipv6' }, () => {
      l.server.on('error', (err: NodeJS.ErrnoException) => this.log.debug(`${name}: ${err.code ?? err.message}`));
      l.up = true;
      this.log.info(`${name}: listening on ${formatHostPort(host, hp.port)} for session#${session.id}${user ? ` (user ${user})` : ''}`);
      for (const j of l.joining.splice(0)) this.join(l, j.session, j.request);
      if (l.sessions.size === 0) this.startGrace(l);
    });
  }

  /** Listeners `session` carries or waits to join. */
  private held(session: EngineSession): number {
    let n = 0;
    for (const l of this.listeners.values()) if (l.sessions.has(session) || l.joining.some((j) => j.session === session)) n++;
    return n;
  }

  private join(l: Listener, session: EngineSession, request: number): void {
    if (session.closed) return;
    l.sessions.set(session, request);
    if (l.grace) {
      clearTimeout(l.grace);
      l.grace = undefined;
      this.log.info(`${l.name}: its client is back (session#${session.id})`);
    }
    session.sendControl({ type: 'listen-ok', stream: 0, request, port: l.port });
    for (const w of [...l.waiting]) {
      this.unwait(l, w);
      // Next tick: Node settles a socket's flowing mode a tick after its 'readable' watch goes (unwait), and
      // would resume it behind the back of an engine that attached to it in between.
      process.nextTick(() => this.carry(l, w.socket));
    }
  }

  private detach(session: EngineSession): void {
    this.slots.delete(session);
    for (const l of this.listeners.values()) {
      l.joining = l.joining.filter((j) => j.session !== session);
      if (l.sessions.delete(session) && l.sessions.size === 0 && l.up) this.startGrace(l);
    }
  }

  private startGrace(l: Listener): void {
    if (l.grace) return;
    this.log.info(`${l.name}: no session of its client is up; closing it in ${this.opts.graceMs} ms unless the client comes back`);
    l.grace = setTimeout(() => this.close(l, `its client did not come back within ${this.opts.graceMs} ms`), this.opts.graceMs);
  }

  /** Closes a listener; `code` tells its sessions (LISTEN_ERR for the request they were answered on), so they ask again later. */
  private close(l: Listener, why: string, code?: number): void {
    if (this.listeners.get(l.key) !== l) return;
    this.listeners.delete(l.key);
    clearTimeout(l.grace);
    if (code !== undefined) {
      for (const [session, request] of l.sessions) session.sendControl({ type: 'listen-err', stream: 0, request, code, reason: `listener closed: ${why}` });
    }
    for (const w of [...l.waiting]) {
      this.unwait(l, w);
      w.socket.destroy();
    }
    l.server.close();
    this.log.info(`${l.name}: closed (${why})`);
  }

  private live(l: Listener): EngineSession | undefined {
    let best: EngineSession | undefined;
    for (const s of l.sessions.keys()) {
      if (s.closed || s.peerDraining) continue;
      if (!best || s.streamCount < best.streamCount) best = s;
    }
    return best;
  }

  private onConnection(l: Listener, socket: Socket): void {
    socket.on('error', () => undefined);
    if (this.live(l)) return this.carry(l, socket);
    // Anyone who reaches the port can make it wait: bounded per listener, per address and in all, and each
    // holds a stream slot, so waiting connections cannot take the fds sessions need.
    const source = sourceKey(socket.remoteAddress ?? '');
    const why = l.waiting.length >= MAX_WAITING ? `${MAX_WAITING} already wait for the client`
      : l.waiting.filter((x) => x.source === source).length >= MAX_WAITING_PER_SOURCE ? `${MAX_WAITING_PER_SOURCE} from this address already wait for the client`
        : this.waitingTotal >= MAX_WAITING_TOTAL ? `${MAX_WAITING_TOTAL} connections already wait at reverse tunnels`
          : this.opts.waitingSlots && !this.opts.waitingSlots.hold() ? 'the server is at its stream limit' : undefined;
    if (why) {
      this.refusals.line('warn', `${l.name}: connection from ${formatPeer(socket)} closed: ${why}`);
      socket.destroy();
      return;
    }
    this.waitingTotal++;
    const w: Waiting = {
      socket,
      source,
      timer: setTimeout(() => {
        this.unwait(l, w);
        socket.destroy();
      }, this.opts.graceMs),
      watch: undefined,
    };
    // Watched until its first bytes, so a peer that goes without a word is noticed (a socket nobody reads
    // never sees its FIN or RST: it would keep its place, then be carried, dead, to the client's target).
    // Once it has spoken, what it sent (one read at most) and any FIN after it wait in the socket for the stream.
    const gone = (): void => {
      if (!this.unwait(l, w)) return;
      this.refusals.line('debug', `${l.name}: connection from ${formatPeer(socket)} went before its client came back`);
      socket.destroy();
    };
    const onReadable = (): void => {
      if (socket.readableLength === 0) return void socket.read();  // nothing buffered: at the end of the stream this makes 'end' come
      // It spoke: it reads no further until carried (what it sends next stays in the kernel).
      socket.off('readable', onReadable);
      w.watch = undefined;
      stopReading(socket);
    };
    w.watch = onReadable;
    socket.on('readable', onReadable);
    socket.once('end', gone);
    socket.once('close', gone);
    l.waiting.push(w);
  }

  /** `w` stops waiting (carried, gone or timed out): its place, slot and listeners go; false if it was not waiting. */
  private unwait(l: Listener, w: Waiting): boolean {
    const i = l.waiting.indexOf(w);
    if (i < 0) return false;
    l.waiting.splice(i, 1);
    this.waitingTotal--;
    this.opts.waitingSlots?.release();
    clearTimeout(w.timer);
    if (w.watch) w.socket.off('readable', w.watch);
    w.socket.removeAllListeners('end');
    w.socket.removeAllListeners('close');
    return true;
  }

  private carry(l: Listener, socket: Socket, retried = false): void {
    if (this.listeners.get(l.key) !== l || socket.destroyed) {
      socket.destroy();
      return;
    }
    const peer = formatPeer(socket);
    const session = this.live(l);
    if (!session) {
      socket.destroy();
      return;
    }
    if (session.streamCount >= this.opts.maxStreams) {
      this.refusals.line('warn', `session#${session.id}: connection from ${peer} (${l.name}) closed: ${this.opts.maxStreams} streams open (--max-streams)`);
      socket.resetAndDestroy();
      return;
    }
    const slots = this.slots.get(session);
    const full = slots?.full();
    // As for an OPEN: a reserve out with an engine must not refuse what the budget would take.
    if (full && !retried && slots?.reclaim?.(() => this.carry(l, socket, true))) return;
    if (full) {
      this.refusals.line('warn', `session#${session.id}: connection from ${peer} (${l.name}) closed: ${full}`);
      socket.resetAndDestroy();
      return;
    }
    const id = session.openStream(socket, l.bind, { tunnel: l.name });
    if (id === 0) {
      this.refusals.line('warn', `session#${session.id}: connection from ${peer} (${l.name}) not carried; reset`);
      return;
    }
    slots?.take(id);
    openLines(session, this.log).line('info', `stream#${id} open from ${peer} → client (${l.name})`);
  }

  /** After a reload: listeners the rules no longer allow are closed. */
  recheck(): void {
    for (const l of [...this.listeners.values()]) {
      if (!this.allows(l.user, l.ip, l.port)) this.close(l, 'no longer allowed after a reload', ListenError.NOT_ALLOWED);
    }
  }

  private allows(user: string | undefined, ip: IpAddress, port: number): boolean {
    return this.opts.rulesFor(user)?.matchBind(ip, port) !== undefined;
  }

  /** Closes every listener (the server is stopping). */
  closeAll(): void {
    this.stopped = true;
    for (const l of [...this.listeners.values()]) this.close(l, 'server shutting down');
  }
}
